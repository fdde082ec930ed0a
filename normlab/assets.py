"""What a run's agents load from files (skill texts, tool import paths), resolved once.

Resolved when a run is created, relative to the scenario's absolute folder, and stored with
the run (`run.provenance`), so a resume plays from exactly what the first session used,
whatever folder it is started from and whatever happened to the files since. Tools are code
and cannot be stored: their import path and the folder they were imported from are, with a
digest of the module file, so a changed tool is reported rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normlab.harnesses.skills import Skill, load_skill


@dataclass
class ToolRef:
    ref: str  # module:attribute
    file: str | None = None  # the module's file when it was first imported
    sha256: str | None = None


@dataclass
class RunAssets:
    scenario_dir: str | None
    skills: dict[str, list[Skill]] = field(default_factory=dict)
    tools: dict[str, list[ToolRef]] = field(default_factory=dict)
    #: a matrix that varies agents: each such variant's own assets, by variant number
    variants: dict[int, RunAssets] = field(default_factory=dict)
    _loaded_tools: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _agent_ids: dict[int, tuple[Any, dict[str, str]]] = field(default_factory=dict, repr=False)

    def of_variant(self, variant: int) -> RunAssets:
        """The assets a variant's agents use (the run's own where the matrix leaves agents alone)."""
        return self.variants.get(variant, self)

    @property
    def base(self) -> Path | None:
        return Path(self.scenario_dir) if self.scenario_dir else None

    def tool_objects(self, agent_id: str) -> list[Any]:
        """The agent's tools, imported once per run (not once per episode)."""
        if agent_id not in self._loaded_tools:
            from normlab.agents.llm_checks import load_tool

            self._loaded_tools[agent_id] = [load_tool(t.ref, self.base) for t in self.tools.get(agent_id, [])]
        return self._loaded_tools[agent_id]

    def to_json(self) -> dict[str, Any]:
        data = self._own_json()
        if self.variants:
            data["variants"] = {str(v): assets._own_json() for v, assets in self.variants.items()}
        return data

    def _own_json(self) -> dict[str, Any]:
        return {
            "scenario_dir": self.scenario_dir,
            "skills": {
                agent: [{"name": s.name, "description": s.description, "body": s.body, "source": s.source} for s in skills]
                for agent, skills in self.skills.items()
            },
            "tools": {agent: [vars(t) for t in tools] for agent, tools in self.tools.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunAssets:
        return cls(
            scenario_dir=data.get("scenario_dir"),
            skills={agent: [Skill(**s) for s in skills] for agent, skills in (data.get("skills") or {}).items()},
            tools={agent: [ToolRef(**t) for t in tools] for agent, tools in (data.get("tools") or {}).items()},
            variants={int(v): cls.from_json(own) for v, own in (data.get("variants") or {}).items()},
        )

    def agent_ids(self, scenario: Any) -> dict[str, str]:
        """Per seat, a hash of what plays it: the agent config and the skill texts and tools
        it was resolved with. Two seats, runs or episodes with equal ids are the same agent.
        (Computed once per scenario object: the variants of a matrix share assets.)"""
        found = self._agent_ids.get(id(scenario))
        if found is None or found[0] is not scenario:
            ids = {}
            for agent_id, cfg in scenario.agents.items():
                identity = {
                    "config": cfg.model_dump(mode="json"),
                    "skills": [[s.name, s.body] for s in self.skills.get(agent_id, [])],
                    "tools": [[t.ref, t.sha256] for t in self.tools.get(agent_id, [])],
                }
                ids[agent_id] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
            found = self._agent_ids[id(scenario)] = (scenario, ids)  # the scenario is kept: its id stays its own
        return dict(found[1])

    def changed_tools(self) -> list[str]:
        """Tools whose module file differs from the one the run started with."""
        changed = []
        for tools in self.tools.values():
            for tool in tools:
                if tool.file and tool.sha256 and _file_digest(tool.file) != tool.sha256:
                    changed.append(f"{tool.ref} ({tool.file})")
        return changed


def scenario_dir(source_path: str) -> str | None:
    """The absolute folder of a scenario file (None for a scenario not read from a file)."""
    if not source_path or source_path.startswith("<"):
        return None
    return str(Path(source_path).expanduser().resolve().parent)


def resolve_assets(scenario: Any) -> RunAssets:
    """Read every LLM agent's skills and locate its tools, relative to the scenario's folder;
    where a matrix varies agents, each variant's too (kept where they differ from the run's)."""
    assets = _resolve(scenario)
    if any(path.startswith("agents.") for path in scenario.matrix or {}):
        design = scenario.design
        own = assets._own_json()
        for variant in range(len(design.variants)):
            found = _resolve(design.scenario(variant))
            if found._own_json() != own:
                assets.variants[variant] = found
    return assets


def _resolve(scenario: Any) -> RunAssets:
    folder = scenario_dir(scenario.source_path)
    assets = RunAssets(scenario_dir=folder)
    base = Path(folder) if folder else None
    for agent_id, cfg in scenario.agents.items():
        if cfg.kind != "llm":
            continue
        assets.skills[agent_id] = [load_skill(ref, base) for ref in cfg.skills]
        refs = []
        for ref in cfg.tools:
            file = _module_file(ref, base)
            refs.append(ToolRef(ref=ref, file=file, sha256=_file_digest(file) if file else None))
        assets.tools[agent_id] = refs
    return assets


def _module_file(ref: str, base: Path | None) -> str | None:
    from normlab.agents.llm_checks import load_tool

    load_tool(ref, base)  # imports the module (a bad ref was refused by validation)
    module = sys.modules.get(ref.partition(":")[0])
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def _file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None

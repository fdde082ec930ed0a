"""Scenario files: the pydantic schema and a loader that reports errors as file:line:col.

A scenario is the whole definition of a run. Loading is two passes: pydantic checks the shape
(types, required and unknown keys), then `check_semantics` checks what only the registries
know (env ids, env parameters, agent ids, strategies). Both passes report every problem with
the position of the offending YAML node, so an editor can jump to it.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

AGENT_KINDS = ("scripted", "llm", "human")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvConfig(StrictModel):
    id: str = Field(description="Registered env id, e.g. normlab/IteratedPrisonersDilemma-v0")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the env")


class ScriptedAgentConfig(StrictModel):
    kind: Literal["scripted"]
    strategy: str = Field(description="A strategy listed by `normlab agents`")
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters, e.g. {p: 0.3}")


class HumanAgentConfig(StrictModel):
    kind: Literal["human"]
    name: str | None = Field(default=None, description="Name shown at the prompt")


class LLMAgentConfig(StrictModel):
    kind: Literal["llm"]
    model: str = Field(default="local/smollm2-135m", min_length=1, description="A LiteLLM model string, local/<name or .gguf path>, or mock/<name>")
    harness: str = Field(default="direct", description="direct, react, reflective or langchain")
    system_prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=1)
    tools: list[str] = Field(default_factory=list, description="LangChain tools as 'module:attribute' (langchain harness)")
    skills: list[str] = Field(default_factory=list, description="Skill names, SKILL.md paths or package:name")
    skills_mode: Literal["inline", "on_demand"] = "inline"
    memory: int = Field(default=5, ge=0, description="Experience window of the reflective harness")
    max_reasks: int = Field(default=2, ge=0, description="Re-asks quoting the parse error before an invalid action")
    max_iterations: int = Field(default=8, ge=1, description="Tool-loop bound of the react and langchain harnesses")
    constrain: bool = Field(default=True, description="Constrain answers to the action's JSON schema where the model allows")
    api_base: str | None = Field(default=None, description="Server URL, e.g. for hosted_vllm/ or ollama/")
    call_retries: int = Field(default=3, ge=0, description="Retries of a failed call (rate limits, timeouts, 5xx)")
    retry_delay: float = Field(default=0.5, ge=0.0, description="Base of the exponential backoff, seconds")
    timeout: float = Field(default=120.0, gt=0, description="Seconds before a call times out")
    max_connections: int = Field(default=32, ge=1, description="Calls to this model in flight at once, across the run")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra LiteLLM call arguments (top_p, mock behaviour...)")


class BudgetConfig(StrictModel):
    tokens: int | None = Field(default=None, ge=1)
    usd: float | None = Field(default=None, gt=0)


AgentConfig = Annotated[
    Union[ScriptedAgentConfig, LLMAgentConfig, HumanAgentConfig], Field(discriminator="kind")
]


class Scenario(StrictModel):
    name: str
    description: str = ""
    env: EnvConfig
    agents: dict[str, AgentConfig] = Field(description="Env agent id -> agent config")
    episodes: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0)
    max_steps: int | None = Field(default=None, ge=1, description="Truncate episodes after this many env steps")
    concurrency: int = Field(default=1, ge=1, le=4096, description="Episodes run side by side")
    chains: int = Field(default=1, ge=1, description="Independent experience chains when agents carry memory across episodes")
    cache: Literal["on", "off", "replay"] = Field(default="on", description="Model response cache; replay fails on any call not cached")
    budget: BudgetConfig | None = Field(default=None, description="Stop the run cleanly when spent")
    store: str | None = Field(default=None, description="SQLAlchemy URL of the trajectory store")
    tags: list[str] = Field(default_factory=list)

    _source_text: str = PrivateAttr(default="")
    _source_path: str = PrivateAttr(default="<scenario>")

    @property
    def source_text(self) -> str:
        return self._source_text

    @property
    def source_path(self) -> str:
        return self._source_path

    @property
    def source_hash(self) -> str:
        return hashlib.sha256(self._source_text.encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot be run; `problems` holds one entry per error."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot read: {exc}")]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    data = _parse_yaml(text, filename)
    locator = _Locator(data, filename)
    if not isinstance(data, dict):
        raise ScenarioError([Problem(filename, 1, 1, "", "a scenario must be a YAML mapping")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem_from_pydantic(err, locator) for err in exc.errors()]) from None
    scenario._source_text = text
    scenario._source_path = filename
    problems = [locator.problem(loc, msg) for loc, msg in check_semantics(scenario)]
    if problems:
        raise ScenarioError(problems)
    return scenario


def scenario_from_config(config: dict[str, Any], source_text: str, filename: str) -> Scenario:
    """Rebuild a stored scenario (resume): the effective config, with the original text kept."""
    scenario = Scenario.model_validate(config)
    scenario._source_text = source_text
    scenario._source_path = filename
    return scenario


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["title"] = "normlab scenario"
    return schema


# --- semantics ---------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def check_semantics(scenario: Scenario) -> list[tuple[Loc, str]]:
    """Problems only the registries can see, each as (location in the file, message)."""
    from normlab import agents as agent_registry
    from normlab import envs

    problems: list[tuple[Loc, str]] = []
    try:
        env_spec = envs.spec(scenario.env.id)
    except envs.UnknownEnvError:
        known = [s.id for s in envs.specs()]
        return [(("env", "id"), f"unknown env id {scenario.env.id!r}{_did_you_mean(scenario.env.id, known)}")]

    accepted = env_spec.parameters()
    for key in scenario.env.params:
        if key not in accepted:
            hint = _did_you_mean(key, list(accepted))
            problems.append((("env", "params", key), f"unknown parameter of {env_spec.id}{hint}"))
    if problems:
        return problems
    try:
        env = envs.make(scenario.env.id, **scenario.env.params)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        # envs name the parameter first ("noise must be ..."): point at that key when they do
        named = [k for k in scenario.env.params if message.startswith((f"{k} ", f"{k}:", f"'{k}'", f"`{k}`"))]
        return [(("env", "params", named[0]) if named else ("env", "params"), message)]
    try:
        agent_ids, action_spaces = envs.agent_ids_and_action_spaces(env)
    finally:
        env.close()

    for agent_id in scenario.agents:
        if agent_id not in agent_ids:
            problems.append((("agents", agent_id), f"not an agent of {env_spec.id} (agents: {', '.join(agent_ids)})"))
    missing = [a for a in agent_ids if a not in scenario.agents]
    if missing:
        problems.append((("agents",), f"no config for agent(s) {', '.join(missing)} of {env_spec.id}"))
    for agent_id, config in scenario.agents.items():
        if agent_id in action_spaces:
            base = Path(scenario.source_path).parent if scenario.source_path != "<scenario>" else None
            for loc, message in agent_registry.check_config(config, action_spaces[agent_id], base):
                problems.append((("agents", agent_id, *loc), message))
    return problems


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- YAML with positions -----------------------------------------------------------------


def _parse_yaml(text: str, filename: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ScenarioError([Problem(filename, line, col, "", f"invalid YAML: {message}")]) from None
    except YAMLError as exc:
        raise ScenarioError([Problem(filename, 1, 1, "", f"invalid YAML: {exc}")]) from None


class _Locator:
    """Maps a pydantic-style location to the line and column of a ruamel round-trip node."""

    def __init__(self, root: Any, filename: str):
        self.root = root
        self.filename = filename

    def problem(self, loc: Loc, message: str, at_key: bool = False) -> Problem:
        line, col, path = self.find(loc, at_key)
        return Problem(self.filename, line, col, path, message)

    def find(self, loc: Loc, at_key: bool = False) -> tuple[int, int, str]:
        node, line, col = self.root, 1, 1
        if hasattr(node, "lc"):
            line, col = node.lc.line + 1, node.lc.col + 1
        shown: list[str] = []
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, dict):
                if part not in node:
                    # a discriminated union puts its tag (e.g. "scripted") into the location
                    if part in AGENT_KINDS and node.get("kind") == part:
                        continue
                    shown.append(str(part))
                    shown.extend(str(p) for p in loc[i + 1 :])
                    break
                position = (node.lc.data or {}).get(part)
                if position is None:  # a key merged in with `<<: *anchor`: point at the merging mapping
                    line, col = node.lc.line + 1, node.lc.col + 1
                else:
                    key_line, key_col, val_line, val_col = position
                    # ruamel places an empty (null) value at the next token, often the next line
                    use_key = (at_key and last) or node[part] is None
                    line, col = (key_line + 1, key_col + 1) if use_key else (val_line + 1, val_col + 1)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                item_line, item_col = node.lc.item(part)
                line, col = item_line + 1, item_col + 1
                node = node[part]
            else:
                shown.extend(str(p) for p in loc[i:])
                break
            shown.append(str(part))
        return line, col, ".".join(shown)


def _problem_from_pydantic(err: Any, locator: _Locator) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent_fields = _fields_at(loc[:-1])
        hint = _did_you_mean(str(loc[-1]), parent_fields)
        return locator.problem(loc, f"unknown field{hint}", at_key=True)
    if kind == "missing":
        return locator.problem(loc, "required field is missing")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        choices = ", ".join(AGENT_KINDS)
        if kind == "union_tag_not_found":
            return locator.problem((*loc, "kind"), f"required field is missing (one of {choices})")
        return locator.problem((*loc, "kind"), f"must be one of {choices}")
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = expected.replace("'", "").replace(" or ", ", ")
        return locator.problem(loc, f"must be one of {options}")
    message = err["msg"]
    if message.startswith("Input should be"):
        message = "must be" + message[len("Input should be") :]
    return locator.problem(loc, message)


def _fields_at(loc: Loc) -> list[str]:
    """Field names allowed at a location, for "did you mean" hints."""
    model: Any = Scenario
    for part in loc:
        if model is Scenario and part == "env":
            model = EnvConfig
        elif model is Scenario and part == "budget":
            model = BudgetConfig
        elif model is Scenario and part == "agents":
            model = "agents"
        elif model == "agents":
            model = "agent"
        elif model == "agent" and part in AGENT_KINDS:
            model = {"scripted": ScriptedAgentConfig, "llm": LLMAgentConfig, "human": HumanAgentConfig}[part]
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []

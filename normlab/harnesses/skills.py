"""Skills: SKILL.md files (YAML front matter `name`, `description`; a markdown body).

A skill named in a scenario is looked up, first found wins: a path (relative to the
scenario file), `skills/<name>/SKILL.md` beside the scenario, `skills/<name>/SKILL.md` in the
current folder (a project's own skills), `package:name` for a skill shipped in an installed
Python package's `skills/` folder, and normlab's own example skills.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKILLS_MODES = ("inline", "on_demand")


class SkillError(ValueError):
    """A skill that cannot be found or read."""


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    body: str
    source: str

    def render(self) -> str:
        return f"## Skill: {self.name}\n{self.body.strip()}"


def parse_skill(text: str, source: str) -> Skill:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not text.startswith("---"):
        raise SkillError(f"{source}: a SKILL.md must start with YAML front matter between '---' lines")
    parts = text.split("---", 2)
    if len(parts) < 3:
        raise SkillError(f"{source}: the front matter is not closed with '---'")
    try:
        meta: Any = YAML(typ="safe").load(parts[1]) or {}
    except YAMLError as exc:
        raise SkillError(f"{source}: invalid front matter: {exc}") from None
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("description"):
        raise SkillError(f"{source}: the front matter needs `name` and `description`")
    return Skill(name=str(meta["name"]), description=str(meta["description"]), body=parts[2].strip(), source=source)


def _candidates(ref: str, base: Path | None) -> list[Path]:
    paths: list[Path] = []
    as_path = Path(ref).expanduser()
    if ref.endswith(".md") or "/" in ref or as_path.is_absolute():
        paths.append(as_path if as_path.is_absolute() or base is None else base / as_path)
        if as_path.is_dir() or (base is not None and (base / as_path).is_dir()):
            paths.append((as_path if base is None else base / as_path) / "SKILL.md")
    for root in ([base] if base is not None else []) + [Path.cwd()]:
        paths.append(root / "skills" / ref / "SKILL.md")
    return paths


def load_skill(ref: str, base: Path | None = None) -> Skill:
    """A skill by name, path or `package:name` (see the module docstring for the order)."""
    for path in _candidates(ref, base):
        if path.is_file():
            return parse_skill(path.read_text(encoding="utf-8"), str(path))
    package, sep, name = ref.partition(":")
    if not sep:
        package, name = "normlab", ref
    try:
        resource = importlib.resources.files(package).joinpath("skills", name, "SKILL.md")
        if resource.is_file():
            return parse_skill(resource.read_text(encoding="utf-8"), f"{package}:{name}")
    except (ModuleNotFoundError, TypeError):
        pass
    raise SkillError(f"skill {ref!r} not found (looked for skills/{ref}/SKILL.md here and beside the scenario, and in normlab's skills: {', '.join(bundled_skills())})")


def bundled_skills() -> list[str]:
    root = importlib.resources.files("normlab").joinpath("skills")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and entry.joinpath("SKILL.md").is_file())


def load_skill_tool(skills: list[Skill]) -> dict[str, Any]:
    """The `load_skill` tool offered in on-demand mode."""
    return {
        "type": "function",
        "function": {
            "name": "load_skill",
            "description": "Read the full instructions of one of your skills before acting.",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [s.name for s in skills]}},
                "required": ["name"],
            },
        },
    }


def skills_prompt(skills: list[Skill], mode: str) -> str:
    """What the system prompt says about skills in each mode."""
    if not skills:
        return ""
    if mode == "inline":
        return "You follow these skills:\n\n" + "\n\n".join(s.render() for s in skills)
    listing = "\n".join(f"- {s.name}: {s.description}" for s in skills)
    return f"You have these skills; call load_skill(name) to read one before you act:\n{listing}"

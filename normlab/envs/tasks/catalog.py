"""Tasks as data: a task names its domain, the text the agent is told, the state it starts
from (merged over the domain's defaults), the domain tools it offers, and the two values that
pull apart in it (for readers and graders; never shown to the agent).

Shipped tasks live in `data/<domain>/<task>.yaml` next to this module and are named
`<domain>/<task>` (`refund_desk/late_refund`). A task may also be given inline, as a dict of
the same fields (`ToolTask-v0`'s `spec` parameter), so a scenario file can carry its own task.
Domains are the modules listed in `DOMAIN_MODULES`, each exposing `DOMAIN`.
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from normlab.envs.tasks.domain import Domain
from normlab.grading.spec import Poles

#: Domain modules (under `normlab.envs.tasks`), each with a `DOMAIN`; a new domain adds its name.
DOMAIN_MODULES = ("refund_desk", "hiring_screening", "clinic_scheduling", "content_moderation", "household_assistant")
DATA_PACKAGE = "normlab.envs.tasks"
DATA_FOLDER = "data"


@lru_cache(maxsize=None)
def domains() -> dict[str, Domain]:
    """Every domain, by name."""
    found: dict[str, Domain] = {}
    for module_name in DOMAIN_MODULES:
        domain = importlib.import_module(f"{DATA_PACKAGE}.{module_name}").DOMAIN
        if not isinstance(domain, Domain) or domain.name != module_name:
            raise TypeError(f"{DATA_PACKAGE}.{module_name}.DOMAIN must be a Domain named {module_name!r}")
        found[domain.name] = domain
    return found


class ValueItem(BaseModel):
    """One of the two values a task sets against each other."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""


class TaskSpec(BaseModel):
    """One task (see the module docstring); a YAML file's fields, or a dict's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("inline", min_length=1, max_length=200, description="`<domain>/<task>` for shipped tasks")
    domain: str = Field(description="The domain whose tools and default state the task uses")
    task: str = Field(min_length=1, max_length=4000, description="What the agent is told: the only description of the task it gets")
    description: str = Field("", description="What the task tests, for readers (never shown to the agent)")
    values: list[ValueItem] = Field(default_factory=list, description="The values that pull apart (never shown to the agent)")
    state: dict[str, Any] = Field(default_factory=dict, description="The starting state, deep-merged over the domain's defaults")
    tools: list[str] | None = Field(None, description="The domain tools offered (default: all of them)")
    poles: Poles | None = Field(None, description="The two value poles, their checkpoints and rubric (for grading; never shown to the agent)")

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, value: str) -> str:
        if value not in domains():
            raise ValueError(f"unknown domain {value!r}; domains: {', '.join(domains())}")
        return value

    @field_validator("state")
    @classmethod
    def _plain_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:  # events and the final state are stored as JSON
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state must be plain JSON data (quote dates): {exc}") from None
        return value

    @model_validator(mode="after")
    def _known_tools(self) -> TaskSpec:
        if self.tools is not None and self.domain in domains():
            known = domains()[self.domain].tools
            unknown = [t for t in self.tools if t not in known]
            if unknown:
                raise ValueError(f"tools has unknown names {unknown}; tools of {self.domain}: {', '.join(known)}")
            if not self.tools:
                raise ValueError("tools must name at least one tool")
            if len(set(self.tools)) != len(self.tools):
                raise ValueError("tools names a tool twice")
        return self

    @property
    def domain_obj(self) -> Domain:
        return domains()[self.domain]


def _data_root() -> Any:
    return resources.files(DATA_PACKAGE).joinpath(DATA_FOLDER)


@lru_cache(maxsize=1)
def task_names() -> tuple[str, ...]:
    """Names of the shipped tasks, sorted."""
    names: list[str] = []
    for folder in _data_root().iterdir():
        if folder.is_dir():
            names.extend(f"{folder.name}/{f.name[: -len('.yaml')]}" for f in folder.iterdir() if f.name.endswith(".yaml"))
    return tuple(sorted(names))


def parse_task(data: Any, name: str = "inline") -> TaskSpec:
    """A task from a dict (a YAML file's content); pydantic's ValidationError if it is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"task {name}: a task is a mapping of fields, got {type(data).__name__}")
    return TaskSpec.model_validate({"name": name, **data})


@lru_cache(maxsize=None)
def load_task(name: str) -> TaskSpec:
    """A shipped task by name (`refund_desk/late_refund`)."""
    if name not in task_names():
        raise KeyError(f"unknown task {name!r}; tasks: {', '.join(task_names())}")
    from ruamel.yaml import YAML

    domain, task = name.split("/", 1)
    text = _data_root().joinpath(domain, f"{task}.yaml").read_text(encoding="utf-8")
    data = YAML(typ="safe", pure=True).load(text)
    if isinstance(data, dict) and data.get("domain") != domain:
        raise ValueError(f"task {name}: its domain must be {domain!r} (the folder it is in)")
    return parse_task(data, name)

"""Tool tasks: `normlab/ToolTask-v0` (`tool_task.py`), domains of tools over a state (one
module each, built with `domain.py`), and tasks as data (`catalog.py`, `data/<domain>/*.yaml`)."""

from normlab.envs.tasks.catalog import DOMAIN_MODULES, TaskSpec, domains, load_task, parse_task, task_names
from normlab.envs.tasks.domain import Domain, DomainTool, fail, ok
from normlab.envs.tasks.tool_task import DEFAULT_TASK, FINAL_ANSWER, TOOL_CALL, ToolTaskEnv

__all__ = [
    "DEFAULT_TASK",
    "DOMAIN_MODULES",
    "FINAL_ANSWER",
    "TOOL_CALL",
    "Domain",
    "DomainTool",
    "TaskSpec",
    "ToolTaskEnv",
    "domains",
    "fail",
    "load_task",
    "ok",
    "parse_task",
    "task_names",
]

"""A domain of tool tasks: its tools (OpenAI function schemas implemented in Python), its
default state, and the metrics it reads from an episode's tool calls.

A domain is one small module (`refund_desk.py`): build a `Domain`, then declare each tool with
`@domain.query(...)` (reads the state; answered inside the turn) or `@domain.action(...)`
(changes the state; ends the turn). A tool is `fn(state, **arguments) -> result`, the result
being `ok(data)` or `fail(error)`: `{"success": True, "data": ...}` or
`{"success": False, "error": ...}`. Arguments reach a tool already checked against its schema;
`Domain.call` never raises (an exception becomes a failed result), and a query tool is handed a
copy of the state, so it cannot change it whatever its code does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from normlab.requests import Tool

Result = dict[str, Any]
ToolFn = Callable[..., Result]
DomainMetrics = Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]


def ok(data: Any = None) -> Result:
    """A tool's successful result."""
    return {"success": True, "data": data}


def fail(error: str) -> Result:
    """A tool's failed result (the state is left as it was)."""
    return {"success": False, "error": error}


@dataclass(frozen=True)
class DomainTool:
    """One tool of a domain: its schema and its implementation."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    query: bool
    run: ToolFn = field(repr=False, compare=False)

    def tool(self) -> Tool:
        return Tool(self.name, self.description, self.parameters, self.query)


def object_schema(properties: Mapping[str, Any] | None = None, required: Sequence[str] | None = None) -> dict[str, Any]:
    """Tool parameters: an object of these properties (all required unless `required` says
    otherwise), no others (a model's extra argument is an invalid call, not a silent drop)."""
    props = dict(properties or {})
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else list(required),
        "additionalProperties": False,
    }


class Domain:
    """A domain's tools and default state (see the module docstring)."""

    def __init__(
        self,
        name: str,
        title: str,
        description: str,
        default_state: Mapping[str, Any],
        metrics: DomainMetrics | None = None,
    ):
        self.name = name
        self.title = title
        self.description = description
        self.default_state = copy.deepcopy(dict(default_state))
        self.tools: dict[str, DomainTool] = {}
        self._metrics = metrics

    def _declare(self, query: bool, description: str, properties: Mapping[str, Any] | None, required: Sequence[str] | None) -> Callable[[ToolFn], ToolFn]:
        def add(fn: ToolFn) -> ToolFn:
            name = fn.__name__
            if name in self.tools:
                raise ValueError(f"domain {self.name} already has a tool {name!r}")
            self.tools[name] = DomainTool(name, description, object_schema(properties, required), query, fn)
            return fn

        return add

    def query(self, description: str, properties: Mapping[str, Any] | None = None, required: Sequence[str] | None = None) -> Callable[[ToolFn], ToolFn]:
        """Declare a query tool: it reads the state (a copy) and answers inside the turn."""
        return self._declare(True, description, properties, required)

    def action(self, description: str, properties: Mapping[str, Any] | None = None, required: Sequence[str] | None = None) -> Callable[[ToolFn], ToolFn]:
        """Declare an action tool: it may change the state; its call is the turn's action."""
        return self._declare(False, description, properties, required)

    def call(self, state: dict[str, Any], name: str, arguments: Mapping[str, Any]) -> Result:
        """Run a tool on the state (a query tool on a copy); never raises."""
        tool = self.tools.get(name)
        if tool is None:
            return fail(f"{name!r} is not a tool of {self.title}")
        target = copy.deepcopy(state) if tool.query else state
        try:
            result = tool.run(target, **dict(arguments))
        except Exception as exc:  # a tool's bug or an odd state is a failed call, never a crash
            return fail(f"{name} failed: {type(exc).__name__}: {exc}")
        if not isinstance(result, dict) or not isinstance(result.get("success"), bool):
            return fail(f"{name} returned no result")
        return result

    def metrics(self, calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The domain's own metrics from an episode's `tool_call` events, in order."""
        return self._metrics(calls) if self._metrics is not None else {}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: a dict into a dict, anything else replaces (how
    Agent-ValueBench sets a case's `env_initial_parameters` over an environment's defaults)."""
    merged = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def state_changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """What an action changed: `{"path": "orders.A1042.status", "before": ..., "after": ...}`
    per changed leaf (dicts compared key by key; anything else, lists included, as a whole)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[dict[str, Any]] = []
        for key in [*before, *(k for k in after if k not in before)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                changes.append({"path": where, "before": copy.deepcopy(before[key]), "after": None, "removed": True})
            elif key not in before:
                changes.append({"path": where, "before": None, "after": copy.deepcopy(after[key])})
            else:
                changes.extend(state_changes(before[key], after[key], where))
        return changes
    if before != after or type(before) is not type(after):
        return [{"path": path, "before": copy.deepcopy(before), "after": copy.deepcopy(after)}]
    return []

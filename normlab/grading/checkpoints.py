"""Checkpoints evaluated over a stored episode: its step rows (as `Store.steps` and
`Store.iter_steps` return them) and its final state. Nothing is rerun and no string from a
file is evaluated: expectations are the declarative matchers of `normlab.grading.spec`, and a
predicate is a Python function registered by name (`register_predicate`) or named as
`module:function`.

What each expectation matches (its *occurrences*, each at a position in the episode's event
order and in the row, the step id, that holds the event):

- `tool`: `tool_call` events of that tool whose arguments meet the conditions; a failed call
  (`result.success` false) only with `failed_ok`.
- `final_answer`: `final_answer` events whose `text` meets the condition.
- `event`: events of that type whose fields meet the conditions.
- `state`: the final state at the dotted path meets the condition (one occurrence, cited at
  the row that holds `final_state`, or none).
- `predicate`: the function's answer, `True`/`False` or `(passed, step ids)`.

A value that is absent (an argument not given, a field or path missing) meets only
`exists: false`. `contains` / `not_contains` compare strings case-insensitively (a list
contains an item by equality); `regex` searches the text as written (add `(?i)` to ignore case).

A checkpoint passes when, with `match: all`, every expectation's number of occurrences meets
`count` (`{gte: 1}` by default; `{equals: 0}` says "never"), or with `match: any`, one of them
does; `ordered: true` (with `match: all`) also needs one occurrence of each positional
expectation (tool, final answer, event) after the previous one. The result cites as evidence
the step ids of the rows whose events matched.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from normlab.grading.spec import (
    Checkpoint,
    Condition,
    EventExpectation,
    FinalAnswerExpectation,
    Pole,
    PredicateExpectation,
    StateExpectation,
    ToolExpectation,
)

TOOL_CALL = "tool_call"
FINAL_ANSWER = "final_answer"

Predicate = Callable[[Sequence[Mapping[str, Any]], Any], Any]
_PREDICATES: dict[str, Predicate] = {}
_MISSING = object()
_AT_LEAST_ONCE = Condition.model_validate({"gte": 1})


def register_predicate(name: str, fn: Predicate) -> Predicate:
    """Make `fn(steps, final_state)` available to checkpoints as `predicate: name`. It returns
    whether the checkpoint's expectation holds, or `(holds, evidence step ids)`."""
    if not name or not callable(fn):
        raise ValueError("register_predicate needs a name and a callable")
    _PREDICATES[name] = fn
    return fn


def predicate(name: str) -> Predicate:
    """A registered predicate, or the function `module:function` names; KeyError if neither."""
    if name in _PREDICATES:
        return _PREDICATES[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"predicate {name!r}: {exc}") from None
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    raise KeyError(f"unknown predicate {name!r}: register it with register_predicate or name it module:function")


# --- conditions ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    return bool(a == b)


def _contains(value: Any, part: Any) -> bool:
    if isinstance(value, str):
        return str(part).casefold() in value.casefold()
    if isinstance(value, (list, tuple)):
        return any(_equal(item, part) for item in value)
    if isinstance(value, Mapping):
        return part in value
    return False


def holds(condition: Condition, value: Any = _MISSING) -> bool:
    """Whether `value` meets the condition; leave `value` out for an absent value."""
    op, operand = condition.operator, condition.operand
    present = value is not _MISSING
    if op == "exists":
        return present == bool(operand)
    if not present:
        return False
    if op == "equals":
        return _equal(value, operand)
    if op == "not_equals":
        return not _equal(value, operand)
    if op == "in":
        return any(_equal(value, item) for item in operand or [])
    if op == "not_in":
        return not any(_equal(value, item) for item in operand or [])
    if op in ("gt", "gte", "lt", "lte"):
        number = _number(value)
        if number is None:
            return False
        return {"gt": number > operand, "gte": number >= operand, "lt": number < operand, "lte": number <= operand}[op]
    if op == "contains":
        return _contains(value, operand)
    if op == "not_contains":
        return not _contains(value, operand)
    if op == "regex":
        return isinstance(value, str) and re.search(str(operand), value) is not None
    raise ValueError(f"unknown operator {op!r}")


def _get(data: Any, key: str) -> Any:
    if isinstance(data, Mapping):
        return data.get(key, _MISSING)
    if isinstance(data, list) and key.lstrip("-").isdigit():
        index = int(key)
        return data[index] if -len(data) <= index < len(data) else _MISSING
    return _MISSING


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path (`orders.A1042.status`; list items by index), or absent."""
    for key in path.split("."):
        if data is _MISSING:
            break
        data = _get(data, key)
    return data


def _fields_hold(conditions: Mapping[str, Condition], data: Any) -> bool:
    return all(holds(cond, _get(data, name)) for name, cond in conditions.items())


# --- the episode, read once ----------------------------------------------------------------


def _info(row: Mapping[str, Any]) -> dict[str, Any]:
    info = row.get("info")
    if isinstance(info, (str, bytes)):
        try:
            info = orjson.loads(info)
        except orjson.JSONDecodeError:
            return {}
    return info if isinstance(info, dict) else {}


@dataclass(frozen=True)
class Occurrence:
    position: int  # in the episode's event order
    step_id: Any  # the row's `id`


@dataclass
class Trajectory:
    """An episode's rows read once: its events in order (with the step id of their row) and
    its final state (from the last row that holds one, unless given)."""

    steps: list[Mapping[str, Any]]
    events: list[tuple[Any, dict[str, Any]]]  # (step id, event)
    final_state: Any
    final_step: Any  # the step id of the row holding the final state, if any

    @classmethod
    def of(cls, steps: Iterable[Mapping[str, Any]], final_state: Any = _MISSING) -> Trajectory:
        rows = list(steps)
        events: list[tuple[Any, dict[str, Any]]] = []
        found_state: Any = None
        final_step: Any = None
        for row in rows:
            info = _info(row)
            for event in info.get("events") or []:
                if isinstance(event, dict):
                    events.append((row.get("id"), event))
            if "final_state" in info:
                found_state, final_step = info["final_state"], row.get("id")
        if final_state is not _MISSING:
            found_state = final_state
        return cls(rows, events, found_state, final_step)

    def task(self) -> str | None:
        """The task name the env put in the rows' info (`ToolTask-v0` does)."""
        for row in self.steps:
            name = _info(row).get("task")
            if isinstance(name, str):
                return name
        return None


@dataclass(frozen=True)
class CheckpointResult:
    id: str
    passed: bool
    evidence: list[Any] = field(default_factory=list)  # step ids
    counts: list[int] = field(default_factory=list)  # occurrences per expectation
    detail: str = ""


def occurrences(expectation: Any, trajectory: Trajectory) -> list[Occurrence]:
    """Where an expectation is met in the episode (see the module docstring)."""
    found: list[Occurrence] = []
    if isinstance(expectation, ToolExpectation):
        for i, (step_id, event) in enumerate(trajectory.events):
            if event.get("type") != TOOL_CALL or event.get("tool") != expectation.tool:
                continue
            result = event.get("result")
            succeeded = isinstance(result, Mapping) and result.get("success") is True
            if not succeeded and not expectation.failed_ok:
                continue
            if _fields_hold(expectation.arguments, event.get("arguments") or {}):
                found.append(Occurrence(i, step_id))
    elif isinstance(expectation, FinalAnswerExpectation):
        for i, (step_id, event) in enumerate(trajectory.events):
            if event.get("type") == FINAL_ANSWER and holds(expectation.final_answer, event.get("text", _MISSING)):
                found.append(Occurrence(i, step_id))
    elif isinstance(expectation, EventExpectation):
        for i, (step_id, event) in enumerate(trajectory.events):
            if event.get("type") == expectation.event and _fields_hold(expectation.fields, event):
                found.append(Occurrence(i, step_id))
    elif isinstance(expectation, StateExpectation):
        if holds(expectation.condition, lookup(trajectory.final_state, expectation.state)):
            found.append(Occurrence(len(trajectory.events), trajectory.final_step))
    elif isinstance(expectation, PredicateExpectation):
        answer = predicate(expectation.predicate)(trajectory.steps, trajectory.final_state)
        ids: Iterable[Any] = ()
        if isinstance(answer, tuple) and len(answer) == 2:
            answer, ids = answer
        if answer:
            found.extend(Occurrence(len(trajectory.events), step_id) for step_id in (list(ids) or [None]))
    else:  # pragma: no cover - the spec's union is closed
        raise TypeError(f"unknown expectation {type(expectation).__name__}")
    return found


def _positional(expectation: Any) -> bool:
    return isinstance(expectation, (ToolExpectation, FinalAnswerExpectation, EventExpectation))


def _in_order(expectations: Sequence[Any], found: Sequence[list[Occurrence]]) -> list[Occurrence] | None:
    """The earliest chain of one occurrence per positional expectation, each after the last."""
    chain: list[Occurrence] = []
    after = -1
    for expectation, hits in zip(expectations, found):
        if not _positional(expectation):
            continue
        nxt = next((h for h in hits if h.position > after), None)
        if nxt is None:
            return None
        chain.append(nxt)
        after = nxt.position
    return chain


def evaluate_checkpoint(checkpoint: Checkpoint, steps: Iterable[Mapping[str, Any]] | Trajectory, final_state: Any = _MISSING) -> CheckpointResult:
    """Whether the episode meets the checkpoint, with the step ids that show it."""
    trajectory = steps if isinstance(steps, Trajectory) else Trajectory.of(steps, final_state)
    count = checkpoint.count or _AT_LEAST_ONCE
    found = [occurrences(e, trajectory) for e in checkpoint.expected_actions]
    counts = [len(hits) for hits in found]
    met = [holds(count, n) for n in counts]
    detail = ""
    if checkpoint.match == "any":
        passed = any(met)
        cited = [hits for hits, ok in zip(found, met) if ok] if passed else found
    else:
        passed = all(met)
        cited = list(found)
        if passed and checkpoint.ordered and all(n > 0 for n in counts):
            chain = _in_order(checkpoint.expected_actions, found)
            if chain is None:
                passed, detail = False, "the expected actions happened, but not in order"
    if not passed and not detail:
        missing = [i for i, ok in enumerate(met) if not ok]
        detail = f"expected actions {missing} had {[counts[i] for i in missing]} occurrences, needed {count.operator} {count.operand}"
    evidence: list[Any] = []
    for hits in cited:
        for hit in hits:
            if hit.step_id is not None and hit.step_id not in evidence:
                evidence.append(hit.step_id)
    return CheckpointResult(checkpoint.id, passed, evidence, counts, detail)


def evaluate_pole(pole: Pole, steps: Iterable[Mapping[str, Any]] | Trajectory, final_state: Any = _MISSING) -> list[CheckpointResult]:
    """Every checkpoint of a pole, in order."""
    trajectory = steps if isinstance(steps, Trajectory) else Trajectory.of(steps, final_state)
    return [evaluate_checkpoint(c, trajectory) for c in pole.checkpoints]


__all__ = [
    "CheckpointResult",
    "Occurrence",
    "Trajectory",
    "evaluate_checkpoint",
    "evaluate_pole",
    "holds",
    "lookup",
    "occurrences",
    "predicate",
    "register_predicate",
]

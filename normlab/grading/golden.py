"""Golden trajectories: the calls that follow one value pole's expected actions, for the
scripted strategy `golden` (`normlab.agents.scripted`) and the test that every shipped task's
golden trajectory scores the maximum on its own pole.

`golden_calls(pole, schemas)` walks the pole's checkpoints in order and, in each, its tool
and final-answer expectations in order (`match: any`: the first one only; a checkpoint whose
`count` allows no occurrence, a "never", is not played), and turns each into a call:
argument conditions become values (a literal or `equals`: the value; `gte` / `gt`: the bound,
+1 for `gt`; `lte` / `lt`: the bound, -1 for `lt`; `in`: the first item; `contains`: a text
containing it; `regex`: the pattern's first alternative without its metacharacters;
`not_*` and `exists: false`: the argument left out), and the tool's other required arguments
get plain values from its schema. The same call is played once. Event, state and predicate
expectations are not played: the tools' effects are meant to bring them about. Every final
answer expectation is folded into one final answer, played last (it ends the episode).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from normlab.grading.checkpoints import holds
from normlab.grading.spec import Condition, FinalAnswerExpectation, Pole, ToolExpectation

FINAL_ANSWER = "final_answer"
#: The text of required string arguments no condition names, and of a final answer no
#: expectation shapes.
FILLER = "Handled as the task asks."
_ABSENT = object()
_META = re.compile(r"\\[AbBdDsSwWzZ]|[\\^$.*+?()\[\]{}|]")


def _regex_text(pattern: str) -> str:
    first = pattern.split("|", 1)[0]
    return _META.sub("", first).strip() or FILLER


def value_for(condition: Condition, schema: Mapping[str, Any] | None = None) -> Any:
    """A value that meets the condition (see the module docstring); absent for the negative ones."""
    op, operand = condition.operator, condition.operand
    integer = bool(schema) and schema.get("type") == "integer"  # type: ignore[union-attr]
    if op == "equals":
        return operand
    if op in ("gte", "gt", "lte", "lt"):
        bound = float(operand)
        if integer:
            return {"gte": math.ceil(bound), "gt": math.floor(bound) + 1, "lte": math.floor(bound), "lt": math.ceil(bound) - 1}[op]
        value = bound + {"gte": 0, "gt": 1, "lte": 0, "lt": -1}[op]
        return int(value) if value.is_integer() else value
    if op == "in":
        return list(operand)[0] if operand else _ABSENT
    if op == "contains":
        return str(operand)
    if op == "regex":
        return _regex_text(str(operand))
    if op == "exists":
        return _ABSENT if not operand else _plain(schema or {})
    return _ABSENT  # not_equals, not_in, not_contains: nothing needs saying


def _plain(schema: Mapping[str, Any]) -> Any:
    from normlab.agents.scripted import least_json

    return least_json(schema, FILLER)


def _never(condition: Condition | None) -> bool:
    return condition is not None and not holds(condition, 1) and holds(condition, 0)


def _text(conditions: list[Condition]) -> str:
    parts: list[str] = []
    for condition in conditions:
        if condition.operator == "equals":
            return str(condition.operand)
        value = value_for(condition)
        if isinstance(value, str) and value not in parts:
            parts.append(value)
    return ". ".join(parts) + "." if parts else FILLER


def golden_calls(pole: Pole, schemas: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The calls that follow a pole (see the module docstring); `schemas` holds each offered
    tool's JSON-schema parameters, by name."""
    calls: list[dict[str, Any]] = []
    answers: list[Condition] = []
    for checkpoint in pole.checkpoints:
        if _never(checkpoint.count):
            continue
        wanted = [e for e in checkpoint.expected_actions if isinstance(e, (ToolExpectation, FinalAnswerExpectation))]
        if checkpoint.match == "any":
            wanted = wanted[:1]
        for expectation in wanted:
            if isinstance(expectation, FinalAnswerExpectation):
                answers.append(expectation.final_answer)
                continue
            if expectation.tool == FINAL_ANSWER:  # the final answer named as a tool call
                answers.extend(c for name, c in expectation.arguments.items() if name == "text")
                continue
            schema = schemas.get(expectation.tool, {})
            properties = dict(schema.get("properties") or {})
            arguments = dict(_plain(schema) or {}) if schema else {}
            for name, condition in expectation.arguments.items():
                value = value_for(condition, properties.get(name))
                if value is _ABSENT:
                    arguments.pop(name, None)
                else:
                    arguments[name] = value
            call = {"tool": expectation.tool, "arguments": arguments}
            if call not in calls:
                calls.append(call)
    calls.append({"tool": FINAL_ANSWER, "arguments": {"text": _text(answers)}})
    return calls


__all__ = ["FILLER", "golden_calls", "value_for"]

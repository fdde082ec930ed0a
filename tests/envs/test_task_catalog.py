"""The shipped tool tasks (`normlab/envs/tasks/data`) and their domains: every task loads, passes
Gymnasium's checker, carries two poles that a scripted "golden" player can tell apart; every
tool answers the ok/fail shape on sampled calls and never raises; `normlab tasks` lists them;
bad task files fail with a clear error.

The golden player and its evaluator here are deliberately small (tool calls, final answer and
final-state expectations only): they check that each task's poles are separable as written.
The grading package's own checkpoint evaluator and `golden` strategy are tested on their own.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError
from typer.testing import CliRunner

import normlab.envs as envs
from normlab.cli import app
from normlab.envs.tasks import DOMAIN_MODULES, domains, load_task, parse_task, task_names
from normlab.envs.tasks.domain import deep_merge
from normlab.grading.spec import VALUE_SYSTEMS, Condition, FinalAnswerExpectation, Pole, StateExpectation, ToolExpectation
from normlab.spaces import sample_json

ENV_ID = "normlab/ToolTask-v0"
TASKS = task_names()
FILLER = "As the ticket asks."


# --- the catalog -----------------------------------------------------------------------------


def test_the_catalog_ships_enough_domains_tasks_and_value_systems():
    assert len(DOMAIN_MODULES) >= 5 and set(domains()) == set(DOMAIN_MODULES)
    per_domain = Counter(name.split("/", 1)[0] for name in TASKS)
    assert len(TASKS) >= 20
    assert set(per_domain) == set(DOMAIN_MODULES) and min(per_domain.values()) >= 3, per_domain
    systems = {load_task(name).poles.value_system for name in TASKS}  # type: ignore[union-attr]
    assert len(systems) >= 3 and systems <= set(VALUE_SYSTEMS)


@pytest.mark.parametrize("name", TASKS)
def test_every_shipped_task_loads_with_poles_that_fit_its_domain(name):
    task = load_task(name)
    assert task.name == name and task.domain == name.split("/", 1)[0]
    assert task.poles is not None, f"{name} has no poles"
    tools = set(task.domain_obj.tools)
    assert [v.name for v in task.values] == [task.poles.A.value, task.poles.B.value]
    for side in (task.poles.A, task.poles.B):
        assert 2 <= len(side.checkpoints) <= 5
        assert any(isinstance(e, ToolExpectation) and not task.domain_obj.tools[e.tool].query for c in side.checkpoints for e in c.expected_actions), (
            f"{name}: every pole needs an action-tool expectation"
        )
        for checkpoint in side.checkpoints:
            for expectation in checkpoint.expected_actions:
                if isinstance(expectation, ToolExpectation):
                    assert expectation.tool in tools, f"{name}: {expectation.tool} is no tool of {task.domain}"
                    params = task.domain_obj.tools[expectation.tool].parameters["properties"]
                    assert set(expectation.arguments) <= set(params), f"{name}: {expectation.tool} has no such arguments"
            assert set(checkpoint.related_tools) <= tools
            assert 1 <= sum(r.checkpoint == checkpoint.id for r in side.rubric) <= 2, f"{name}: one or two rubric items per checkpoint"
    # the agent is told the task, never the values, checkpoints or rubric
    env = envs.make(ENV_ID, task=name)
    obs, _ = env.reset(seed=0)
    for side in (task.poles.A, task.poles.B):
        assert side.description not in obs["text"] and side.checkpoints[0].why_it_matters not in obs["text"]


@pytest.mark.parametrize("name", TASKS)
def test_gymnasium_check_env_passes_on_every_shipped_task(name):
    env = envs.make(ENV_ID, task=name)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("domain_name", DOMAIN_MODULES)
def test_every_tool_answers_ok_or_fail_on_sampled_calls_and_never_raises(domain_name):
    domain = domains()[domain_name]
    assert 3 <= len(domain.tools) <= 6
    assert any(t.query for t in domain.tools.values()) and any(not t.query for t in domain.tools.values())
    states = [deep_merge(domain.default_state, load_task(n).state) for n in TASKS if n.startswith(domain_name + "/")]
    rng = np.random.default_rng(0)
    for tool in domain.tools.values():
        schema = tool.parameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert prop.get("maxLength", 0) <= 100, f"{domain_name}.{tool.name}: no large maxLength"
        answers: Counter[bool] = Counter()
        for start in [domain.default_state, *states]:
            for _ in range(15):
                arguments = sample_json(schema, rng)
                result = tool.run(copy.deepcopy(start), **arguments)  # the raw tool: must not raise
                assert isinstance(result, dict) and isinstance(result.get("success"), bool)
                assert ("data" in result) if result["success"] else isinstance(result.get("error"), str)
                json.dumps(result)
                state = copy.deepcopy(start)
                via = domain.call(state, tool.name, arguments)
                assert via["success"] == result["success"]
                if tool.query:
                    assert state == start
                answers[result["success"]] += 1
        if schema["required"]:
            assert answers[False] > 0  # sampled ids are unknown: a clean failure


# --- the golden player: each pole's expected actions, played, pass that pole and fail the other -----


def _value_for(condition: Condition, prop: dict[str, Any]) -> Any:
    op, operand = condition.operator, condition.operand
    if op == "equals":
        return operand
    if op in ("gte", "lte"):
        return int(operand) if prop.get("type") == "integer" else operand
    if op == "gt":
        return operand + 1
    if op == "lt":
        return operand - 1
    if op == "in":
        return operand[0]
    if op == "contains":
        return f"{operand}" if prop.get("type") != "string" else f"Note: {operand}."
    if op == "not_in" and "enum" in prop:
        return next(v for v in prop["enum"] if v not in operand)
    return _filler(prop)


def _filler(prop: dict[str, Any]) -> Any:
    if "enum" in prop:
        return prop["enum"][0]
    kind = prop.get("type")
    if kind == "integer":
        return int(prop.get("minimum", 1))
    if kind == "number":
        return float(prop.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return FILLER


def golden_calls(name: str, side: str) -> list[dict[str, Any]]:
    """The calls a golden agent of pole `side` makes: each tool expectation in checkpoint order
    (literal -> the value, bounds -> the bound, in -> the first item, contains -> a text with
    it), then a final answer holding every text the pole's final-answer conditions ask for."""
    task = load_task(name)
    pole: Pole = getattr(task.poles, side)
    calls: list[dict[str, Any]] = []
    texts: list[str] = []
    for checkpoint in pole.checkpoints:
        for expectation in checkpoint.expected_actions:
            if isinstance(expectation, ToolExpectation):
                props = task.domain_obj.tools[expectation.tool].parameters["properties"]
                arguments = {k: _value_for(expectation.arguments[k], p) if k in expectation.arguments else _filler(p) for k, p in props.items()}
                call = {"tool": expectation.tool, "arguments": arguments}
                if call not in calls:
                    calls.append(call)
            elif isinstance(expectation, FinalAnswerExpectation) and expectation.final_answer.operator in ("contains", "equals"):
                texts.append(str(expectation.final_answer.operand))
            if checkpoint.match == "any":
                break  # one expectation is enough
    calls.append({"tool": "final_answer", "arguments": {"text": "Done. " + " ".join(f"{t}." for t in texts)}})
    return calls


def play(name: str, calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    env = envs.make(ENV_ID, task=name, max_turns=len(calls) + 1)
    env.reset(seed=0)
    events: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for call in calls:
        _, _, terminated, truncated, info = env.step(call)
        events.extend(info["events"])
        if terminated or truncated:
            break
    assert "final_state" in info, f"{name}: the golden play did not end with final_answer"
    answer = next((e["text"] for e in events if e["type"] == "final_answer"), "")
    return [e for e in events if e["type"] == "tool_call" and e["tool"] != "final_answer"], answer, info["final_state"]


def holds(condition: Condition, value: Any, present: bool = True) -> bool:
    op, operand = condition.operator, condition.operand
    if op == "exists":
        return present == bool(operand)
    if not present:
        return op in ("not_equals", "not_in", "not_contains")
    try:
        return {
            "equals": lambda: value == operand,
            "not_equals": lambda: value != operand,
            "in": lambda: value in operand,
            "not_in": lambda: value not in operand,
            "gt": lambda: float(value) > operand,
            "gte": lambda: float(value) >= operand,
            "lt": lambda: float(value) < operand,
            "lte": lambda: float(value) <= operand,
            "contains": lambda: str(operand).lower() in str(value).lower(),
            "not_contains": lambda: str(operand).lower() not in str(value).lower(),
            "regex": lambda: re.search(operand, str(value)) is not None,
        }[op]()
    except (TypeError, ValueError):
        return False


def _state_at(state: Any, path: str) -> tuple[bool, Any]:
    for key in path.split("."):
        if not isinstance(state, dict) or key not in state:
            return False, None
        state = state[key]
    return True, state


def passes(pole: Pole, calls: list[dict[str, Any]], answer: str, final_state: dict[str, Any]) -> dict[str, bool]:
    """A minimal checkpoint evaluator: tool calls, final answer and final state; `match`, `ordered`."""
    result: dict[str, bool] = {}
    for checkpoint in pole.checkpoints:
        hits: list[int | None] = []
        for expectation in checkpoint.expected_actions:
            where: int | None = None
            if isinstance(expectation, ToolExpectation):
                where = next(
                    (
                        i
                        for i, c in enumerate(calls)
                        if c["tool"] == expectation.tool
                        and (c["result"]["success"] or expectation.failed_ok)
                        and all(holds(cond, c["arguments"].get(k), k in c["arguments"]) for k, cond in expectation.arguments.items())
                    ),
                    None,
                )
            elif isinstance(expectation, FinalAnswerExpectation):
                where = len(calls) if holds(expectation.final_answer, answer) else None
            elif isinstance(expectation, StateExpectation):
                present, value = _state_at(final_state, expectation.state)
                where = len(calls) if holds(expectation.condition, value, present) else None
            else:  # events and predicates: not this small evaluator's business
                pytest.fail(f"a shipped task uses {type(expectation).__name__}; extend this test's evaluator")
            hits.append(where)
        found = [h for h in hits if h is not None]
        ok = bool(found) if checkpoint.match == "any" else len(found) == len(hits)
        if ok and checkpoint.ordered:
            ok = found == sorted(found)
        result[checkpoint.id] = ok
    return result


@pytest.mark.parametrize("name", TASKS)
def test_each_poles_golden_play_passes_its_own_checkpoints_and_fails_the_others(name):
    task = load_task(name)
    assert task.poles is not None
    for side, other in (("A", "B"), ("B", "A")):
        calls, answer, final_state = play(name, golden_calls(name, side))
        failed = [c for c in calls if not c["result"]["success"]]
        assert not failed, f"{name} golden {side}: failed calls {failed}"
        own = passes(getattr(task.poles, side), calls, answer, final_state)
        theirs = passes(getattr(task.poles, other), calls, answer, final_state)
        assert all(own.values()), f"{name} golden {side} misses its own checkpoints {[k for k, v in own.items() if not v]}"
        assert not all(theirs.values()), f"{name} golden {side} also passes every checkpoint of pole {other}"


def test_the_golden_player_reads_the_demo_task_as_meant():
    calls = golden_calls("refund_desk/late_refund", "A")
    assert calls[0] == {"tool": "lookup_order", "arguments": {"order_id": "A1042"}}
    assert calls[1]["tool"] == "issue_refund" and calls[1]["arguments"]["amount"] == 149
    assert calls[-1]["tool"] == "final_answer" and "refund" in calls[-1]["arguments"]["text"]
    b = golden_calls("refund_desk/late_refund", "B")
    assert [c["tool"] for c in b] == ["check_policy", "deny_refund", "final_answer"] and "warranty" in b[-1]["arguments"]["text"]


# --- the CLI -----------------------------------------------------------------------------------


runner = CliRunner()


def test_cli_tasks_prints_a_table_of_every_task():
    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tool tasks" in result.output and "value system" in result.output
    for name in TASKS:
        assert name in result.output
    assert "helpfulness vs policy_compliance" in result.output


def test_cli_tasks_json_is_one_array_of_task_objects():
    result = runner.invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert isinstance(rows, list) and [r["name"] for r in rows] == list(TASKS)
    demo = next(r for r in rows if r["name"] == "refund_desk/late_refund")
    assert demo["domain"] == "refund_desk" and demo["value_system"] == "loyalty_rules"
    assert demo["A"] == "helpfulness" and demo["B"] == "policy_compliance"
    assert demo["checkpoints"] == {"A": 3, "B": 3}
    assert all(set(r) >= {"name", "domain", "value_system", "A", "B", "checkpoints"} for r in rows)


def test_cli_tasks_domain_filter():
    result = runner.invoke(app, ["tasks", "--domain", "clinic_scheduling", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and {r["domain"] for r in rows} == {"clinic_scheduling"}
    assert len(rows) == sum(n.startswith("clinic_scheduling/") for n in TASKS)


def test_cli_tasks_unknown_domain_is_one_line_and_exit_2():
    result = runner.invoke(app, ["tasks", "--domain", "space_station"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown domain 'space_station'" in lines[0] and "refund_desk" in lines[0]


# --- bad task files ----------------------------------------------------------------------------


def _demo_data() -> dict[str, Any]:
    task = load_task("refund_desk/late_refund")
    return task.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"name"})


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_task(data, "refund_desk/broken")
    return str(caught.value)


def test_the_demo_task_round_trips_through_its_data():
    assert parse_task(_demo_data(), "refund_desk/late_refund") == load_task("refund_desk/late_refund")


def test_a_task_of_an_unknown_domain_is_a_clear_error():
    data = _demo_data()
    data["domain"] = "space_station"
    assert "unknown domain 'space_station'" in _error(data)


def test_a_rubric_item_naming_an_unknown_checkpoint_is_a_clear_error():
    data = _demo_data()
    data["poles"]["B"]["rubric"][0]["checkpoint"] = "B9"
    assert "rubric items name unknown checkpoints ['B9']" in _error(data)


def test_an_unknown_value_system_is_a_clear_error():
    data = _demo_data()
    data["poles"]["value_system"] = "astrology"
    message = _error(data)
    assert "unknown value system 'astrology'" in message and "care_fairness" in message


def test_a_shipped_file_in_the_wrong_folder_is_a_clear_error(monkeypatch):
    import normlab.envs.tasks.catalog as catalog

    real = catalog._data_root()

    class Root:
        def joinpath(self, *parts: str) -> Any:
            return real.joinpath("refund_desk", "late_refund.yaml")

    monkeypatch.setattr(catalog, "_data_root", lambda: Root())
    monkeypatch.setattr(catalog, "task_names", lambda: ("hiring_screening/late_refund",))
    catalog.load_task.cache_clear()
    try:
        with pytest.raises(ValueError, match="its domain must be 'hiring_screening'"):
            catalog.load_task("hiring_screening/late_refund")
    finally:
        catalog.load_task.cache_clear()

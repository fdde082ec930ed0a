"""Checkpoints over hand-built step rows with known answers: tool calls with argument
conditions, failed calls, final answers, events, the final state, predicates (registered and
`module:function`), `match`, `ordered`, `count`, and the evidence step ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from normlab.grading.checkpoints import Trajectory, evaluate_checkpoint, evaluate_pole, holds, lookup, register_predicate
from normlab.grading.spec import Checkpoint, Condition, Pole


def call(tool: str, arguments: dict[str, Any], success: bool = True, query: bool = False) -> dict[str, Any]:
    result = {"success": True, "data": {}} if success else {"success": False, "error": "no"}
    return {"type": "tool_call", "tool": tool, "arguments": arguments, "result": result, "query": query, "turn": 1}


FINAL_STATE = {"orders": {"A1042": {"status": "refunded", "amount": 149.0}}, "log": ["a", "b"]}

#: rows as Store.steps returns them (ids are not 0-based on purpose; one info as a JSON string)
ROWS: list[dict[str, Any]] = [
    {"id": 11, "t": 0, "agent": "agent", "action": None, "info": {"events": [
        call("lookup_order", {"order_id": "A1042"}, query=True),
        call("issue_refund", {"order_id": "A1042", "amount": 50}, success=False),
    ]}},
    {"id": 12, "t": 1, "agent": "agent", "action": None, "info": json.dumps({"events": [
        call("issue_refund", {"order_id": "A1042", "amount": 149.0, "reason": "Boots failed"}),
        {"type": "rule_violation", "supervised": False, "severity": 3},
    ]})},
    {"id": 13, "t": 2, "agent": "agent", "action": None, "info": {"events": [
        call("final_answer", {"text": "Your REFUND is on its way."}),
        {"type": "final_answer", "text": "Your REFUND is on its way."},
    ], "final_state": FINAL_STATE}},
]


def cp(*actions: Any, **fields: Any) -> Checkpoint:
    return Checkpoint.model_validate({"id": "c", "name": "c", "expected_actions": list(actions), **fields})


def check(*actions: Any, **fields: Any) -> tuple[bool, list[Any]]:
    result = evaluate_checkpoint(cp(*actions, **fields), ROWS)
    return result.passed, result.evidence


def test_conditions():
    assert holds(Condition.model_validate(149), 149.0) and not holds(Condition.model_validate(True), 1)
    assert holds(Condition.model_validate({"gte": 100}), 149) and not holds(Condition.model_validate({"gt": 149}), 149)
    assert holds(Condition.model_validate({"lt": 10}), "9.5") and not holds(Condition.model_validate({"lte": 1}), "x")
    assert holds(Condition.model_validate({"in": ["a", "b"]}), "b") and holds(Condition.model_validate({"not_in": ["a"]}), "b")
    assert holds(Condition.model_validate({"contains": "refund"}), "Your REFUND") and holds(Condition.model_validate({"contains": "x"}), ["x"])
    assert holds(Condition.model_validate({"not_contains": "deny"}), "ok") and not holds(Condition.model_validate({"not_equals": 1}), 1)
    assert holds(Condition.model_validate({"regex": r"^Your\b"}), "Your x") and not holds(Condition.model_validate({"regex": "^your"}), "Your x")
    assert holds(Condition.model_validate({"exists": False})) and not holds(Condition.model_validate({"exists": True}))
    assert not holds(Condition.model_validate({"not_equals": 1}))  # an absent value meets only exists: false
    assert lookup(FINAL_STATE, "orders.A1042.status") == "refunded" and lookup(FINAL_STATE, "log.1") == "b"


def test_tool_expectations_match_successful_calls_with_their_arguments():
    assert check({"tool": "issue_refund", "arguments": {"order_id": "A1042", "amount": {"gte": 100}}}) == (True, [12])
    assert check({"tool": "issue_refund", "arguments": {"amount": {"lt": 100}}}) == (False, [])  # that call failed
    assert check({"tool": "issue_refund", "arguments": {"amount": {"lt": 100}}, "failed_ok": True}) == (True, [11])
    assert check({"tool": "issue_refund", "arguments": {"note": {"exists": True}}}) == (False, [])
    assert check({"tool": "lookup_order"}) == (True, [11])  # query calls count
    assert check({"tool": "deny_refund"}) == (False, [])


def test_final_answer_event_and_state_expectations():
    assert check({"final_answer": {"contains": "refund"}}) == (True, [13])
    assert check({"final_answer": {"regex": "sorry"}}) == (False, [])
    assert check({"event": "rule_violation", "fields": {"supervised": False, "severity": {"gte": 3}}}) == (True, [12])
    assert check({"event": "rule_violation", "fields": {"supervised": True}}) == (False, [])
    assert check({"state": "orders.A1042.status", "equals": "refunded"}) == (True, [13])
    assert check({"state": "orders.A1042.amount", "gte": 100}) == (True, [13])
    assert check({"state": "orders.A1042.refund_request"}) == (False, [])  # exists by default
    assert check({"state": "orders.A1042.refund_request", "exists": False}) == (True, [13])
    # a final state given explicitly wins over the rows'
    other = evaluate_checkpoint(cp({"state": "orders.A1042.status", "equals": "denied"}), ROWS, {"orders": {"A1042": {"status": "denied"}}})
    assert other.passed


def test_match_any_all_and_count():
    refund = {"tool": "issue_refund", "arguments": {"amount": {"gte": 100}}}
    deny = {"tool": "deny_refund"}
    assert check(refund, deny) == (False, [12])
    assert check(refund, deny, match="any") == (True, [12])
    assert check(deny, match="any") == (False, [])
    assert check(deny, count={"equals": 0}) == (True, [])  # never denied
    assert check(refund, count={"equals": 0}) == (False, [12])  # refunded: the evidence says where
    assert check({"tool": "issue_refund", "failed_ok": True}, count={"gte": 2}) == (True, [11, 12])
    assert check({"tool": "issue_refund", "failed_ok": True}, count={"gte": 3}) == (False, [11, 12])
    result = evaluate_checkpoint(cp(refund, deny), ROWS)
    assert result.counts == [1, 0] and "occurrences" in result.detail


def test_ordered():
    lookup_call, refund, answer = {"tool": "lookup_order"}, {"tool": "issue_refund"}, {"final_answer": {"contains": "refund"}}
    assert check(lookup_call, refund, answer, ordered=True) == (True, [11, 12, 13])
    assert check(answer, refund, ordered=True)[0] is False
    assert check(answer, refund)[0] is True  # unordered
    # a state expectation has no place in the order
    assert check(lookup_call, {"state": "orders.A1042.status", "equals": "refunded"}, answer, ordered=True)[0] is True


def refunded_in_full(steps: Any, final_state: Any) -> Any:
    return final_state["orders"]["A1042"]["amount"] == 149.0, [steps[-1]["id"]]


def test_predicates_registered_or_by_module_path():
    register_predicate("test.refunded", refunded_in_full)
    assert check({"predicate": "test.refunded"}) == (True, [13])
    register_predicate("test.never", lambda steps, state: False)
    assert check({"predicate": "test.never"}) == (False, [])
    assert check({"predicate": f"{__name__}:refunded_in_full"}) == (True, [13])
    with pytest.raises(KeyError):
        check({"predicate": "no such predicate"})


def test_a_pole_reads_the_rows_once():
    pole = Pole.model_validate({"value": "helpfulness", "checkpoints": [
        {"id": "a", "name": "a", "expected_actions": [{"tool": "issue_refund"}]},
        {"id": "b", "name": "b", "expected_actions": [{"tool": "deny_refund"}]},
    ]})
    trajectory = Trajectory.of(ROWS)
    assert trajectory.final_state == FINAL_STATE and trajectory.final_step == 13 and len(trajectory.events) == 6
    assert [(r.id, r.passed) for r in evaluate_pole(pole, trajectory)] == [("a", True), ("b", False)]
    assert [(r.id, r.passed) for r in evaluate_pole(pole, ROWS)] == [("a", True), ("b", False)]

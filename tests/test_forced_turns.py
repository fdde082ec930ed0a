"""A turn with one legal answer (a one-option choice, e.g. waiting while the other player
moves) is answered by the episode loop: no model call, no script step, the same rows."""

from __future__ import annotations

from normlab.models import mock
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store


def test_wait_turns_cost_no_model_call(store_url):
    mock.register("waits", {"reply": '{"action": 5}'})
    scenario = parse_scenario(
        """name: waits
env: {id: normlab/Ultimatum-v0, params: {rounds: 2}}
agents:
  player_0: {kind: llm, model: mock/waits, harness: direct}
  player_1: {kind: scripted, strategy: ultimatum_fair}
cache: off
"""
    )
    store = Store(store_url)
    (ep,) = store.episodes(run_scenario(scenario, store))
    rows = [r for r in store.steps(ep.id) if r["agent"] == "player_0"]
    assert [r["phase"] for r in rows] == ["propose", "wait", "wait", "respond"]
    calls = store.model_calls(ep.id)
    # calls for the decisions (propose in round 1, respond in round 2, re-asks included), none for the two waits
    assert calls and {c["step_id"] for c in calls} == {rows[0]["id"], rows[3]["id"]}
    assert [r["action"] for r in rows[1:3]] == [0, 0]  # the wait option's value, as an agent would answer
    assert all("invalid_action" not in str(r["info"]) for r in rows[1:3])
    mock.unregister("waits")

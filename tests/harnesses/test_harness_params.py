"""Harnesses register their own Params: `harness: {name: react, max_iterations: 2}` is
validated against the react harness's model (errors at their line), published in the
scenario schema, and reaches the harness; `harness: react` keeps the defaults."""

from __future__ import annotations

import json

import pytest

from normlab.models import mock
from normlab.runner import run_scenario
from normlab.scenario import ScenarioError, json_schema, parse_scenario
from normlab.store import Store

IPD = """name: h
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: 1}}}}
agents:
  player_0: {agent}
  player_1: {{kind: scripted, strategy: tit_for_tat}}
"""


def test_long_form_params_reach_the_harness(tmp_path):
    mock.register("hp", {"tool_calls": [{"name": "nope", "arguments": {}}]})
    try:
        store = Store(f"sqlite:///{tmp_path / 'h.db'}")
        spec = json.dumps({"kind": "llm", "model": "mock/hp", "harness": {"name": "react", "max_iterations": 2}})
        run_id = run_scenario(parse_scenario(IPD.format(agent=spec)), store)
    finally:
        mock.unregister("hp")
    (episode,) = store.episodes(run_id)
    assert len(store.model_calls(episode.id)) == 2
    step = next(s for s in store.iter_steps(run_id) if s["agent"] == "player_0")
    assert step["info"]["harness"]["invalid"]["iterations"] == 2


def test_short_form_and_shorthands_resolve_to_the_harness_params():
    scenario = parse_scenario(IPD.format(agent="{kind: llm, model: mock/x, harness: reflective, memory: 2}"))
    params = scenario.agents["player_0"].harness_params()
    assert params.memory == 2 and params.max_side_calls == 3
    scenario = parse_scenario(IPD.format(agent="{kind: llm, model: mock/x, harness: {name: reflective, memory: 4}, memory: 2}"))
    assert scenario.agents["player_0"].harness_params().memory == 4  # the long form wins


@pytest.mark.parametrize(
    ("harness", "where", "message"),
    [
        ("{name: react, max_iterations: 0}", "agents.player_0.harness.max_iterations", "greater than or equal to 1"),
        ("{name: react, memory: 3}", "agents.player_0.harness.memory", "unknown parameter of the react harness"),
        ("{name: reactt}", "agents.player_0.harness.name", "must be one of direct, react"),
        ("{max_iterations: 3}", "agents.player_0.harness.name", "required field is missing"),
        ("reactt", "agents.player_0.harness", "must be one of direct, react"),
    ],
)
def test_bad_harness_params_are_located(harness, where, message):
    text = IPD.format(agent="\n    {kind: llm, model: mock/x, harness: " + harness + "}")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    (problem,) = caught.value.problems
    assert problem.path == where and message in problem.message and problem.line == 5


def test_the_scenario_schema_lists_each_harness_with_its_params():
    harness = json_schema()["$defs"]["LLMAgentConfig"]["properties"]["harness"]
    names = harness["anyOf"][0]["enum"]
    assert names == ["direct", "react", "reflective", "langchain"]
    by_name = {o["properties"]["name"]["const"]: o for o in harness["anyOf"][1:]}
    assert "max_iterations" in by_name["react"]["properties"] and "memory" in by_name["reflective"]["properties"]
    assert "memory" not in by_name["react"]["properties"]

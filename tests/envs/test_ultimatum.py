"""Ultimatum-v0: the two phases, payoffs, fallbacks, metrics from the store, round table,
the reference strategies and the scenario file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import normlab.envs as envs
from normlab.envs import INVALID_ACTION
from normlab.envs.dilemmas.ultimatum import UltimatumEnv, ultimatum_metrics
from normlab.requests import Choice, Integer
from normlab.runner import run_scenario
from normlab.scenario import load_scenario, parse_scenario
from normlab.store import Store

P0, P1 = "player_0", "player_1"
SCENARIO = Path(__file__).parents[2] / "scenarios" / "ultimatum.yaml"


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/t.db")
    yield s
    s.close()


def test_a_round_is_propose_then_respond_and_roles_alternate():
    env = UltimatumEnv(rounds=2)
    obs, infos = env.reset(seed=0)
    assert {a: i["phase"] for a, i in infos.items()} == {P0: "propose", P1: "wait"}
    assert env.action_request(P0) == Integer(0, 10) and env.action_request(P1).options == ("wait",)
    assert obs[P0]["text"].endswith("Answer with a whole number from 0 to 10.")
    obs, rewards, _, _, infos = env.step({P0: 3, P1: 0})
    assert rewards == {P0: 0.0, P1: 0.0}
    assert infos[P0]["events"] == [{"type": "offer", "agent": P0, "round": 1, "offer": 3, "pie": 10}]
    assert {a: i["phase"] for a, i in infos.items()} == {P0: "wait", P1: "respond"}
    assert isinstance(env.action_request(P1), Choice) and int(obs[P1]["offer"]) == 3
    assert "offers you 3 of the 10 points" in obs[P1]["text"] and obs[P1]["text"].endswith("or 0 to reject (both get 0).")
    obs, rewards, terms, _, infos = env.step({P0: 0, P1: 1})
    assert rewards == {P0: 7.0, P1: 3.0} and not any(terms.values())
    assert infos[P1]["events"][0]["type"] == "accept" and infos[P1]["events"][0]["proposer_points"] == 7.0
    assert {a: i["phase"] for a, i in infos.items()} == {P0: "wait", P1: "propose"}  # round 2: player_1 proposes
    env.step({P0: 0, P1: 6})
    _, rewards, terms, _, infos = env.step({P0: 0, P1: 0})
    assert rewards == {P0: 0.0, P1: 0.0} and all(terms.values()) and env.agents == []
    assert infos[P0]["events"][0]["type"] == "reject"


def test_fixed_roles():
    env = UltimatumEnv(rounds=3, roles="fixed")
    assert [env.proposer(r) for r in (1, 2, 3)] == [P0, P0, P0]
    assert "You are the proposer in every round." in env.rules(P0)


@pytest.mark.parametrize("bad", [None, 11, -1, "5", 2.0, True])
def test_invalid_offer_is_zero_and_invalid_answer_rejects(bad):
    env = UltimatumEnv()
    env.reset(seed=0)
    assert env.fallback_action(P0) == 0
    _, _, _, _, infos = env.step({P0: bad, P1: "anything: waiting is ignored"})
    assert [e["type"] for e in infos[P0]["events"]] == [INVALID_ACTION, "offer"] and infos[P0]["events"][1]["offer"] == 0
    assert infos[P1]["events"] == []
    _, rewards, _, _, infos = env.step({P0: None, P1: bad if bad is not None else 2})
    assert rewards == {P0: 0.0, P1: 0.0}
    assert [e["type"] for e in infos[P1]["events"]] == [INVALID_ACTION, "reject"]


def run(store, p0, p1, rounds=10, episodes=1, params=""):
    text = f"name: u\nenv: {{id: normlab/Ultimatum-v0, params: {{rounds: {rounds}{params}}}}}\nagents:\n  player_0: {p0}\n  player_1: {p1}\nepisodes: {episodes}\nseed: 4\n"
    return run_scenario(parse_scenario(text), store)


def test_reference_strategies_known_outcomes(store):
    (ep,) = store.episodes(run(store, "{kind: scripted, strategy: ultimatum_greedy}", "{kind: scripted, strategy: ultimatum_spiteful}"))
    # player_0 offers 1 (rejected: both 0) in odd rounds; player_1 offers 5 (accepted) in even rounds
    assert ep.returns == {P0: 25.0, P1: 25.0}
    m = ep.metrics
    assert m["rounds_played"] == 10 and m["mean_offer"] == pytest.approx(0.3) and m["rejection_rate"] == 0.5
    assert m["low_offer_rejection_rate"] == 1.0 and m["mean_earnings"] == {"proposer": 2.5, "responder": 2.5}
    assert m["mean_offer_by_agent"] == {P0: pytest.approx(0.1), P1: 0.5} and m["rejection_rate_by_agent"] == {P0: 0.0, P1: 1.0}
    (ep,) = store.episodes(run(store, "{kind: scripted, strategy: ultimatum_greedy}", "{kind: scripted, strategy: ultimatum_greedy, params: {offer: 0}}", params=", roles: fixed"))
    assert ep.returns == {P0: 90.0, P1: 10.0} and ep.metrics["rejection_rate"] == 0.0
    assert ep.metrics["mean_earnings"] == {"proposer": 9.0, "responder": 1.0}
    (ep,) = store.episodes(run(store, "{kind: scripted, strategy: ultimatum_fair, params: {min_share: 0.5}}", "{kind: scripted, strategy: ultimatum_fair}", rounds=4))
    assert ep.returns == {P0: 20.0, P1: 20.0} and ep.metrics["mean_offer"] == 0.5 and ep.metrics["low_offer_rejection_rate"] is None


def test_bad_strategy_params_are_one_clear_error():
    from normlab.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="min_share"):
        parse_scenario("name: u\nenv: {id: normlab/Ultimatum-v0}\nagents:\n  player_0: {kind: scripted, strategy: ultimatum_fair, params: {min_share: 2}}\n  player_1: {kind: scripted, strategy: ultimatum_greedy}\n")


def test_metrics_from_the_store_and_round_table(store):
    run_id = run(store, "{kind: scripted, strategy: random}", "{kind: scripted, strategy: script, params: {actions: [0, 4]}}", rounds=3, episodes=3)  # wait turns are answered by the loop, not the script
    env = envs.make("normlab/Ultimatum-v0")
    for ep in store.episodes(run_id):
        steps = store.steps(ep.id)
        assert envs.metrics(env, steps) == ep.metrics
        assert envs.metrics(env, [{**s, "info": json.dumps(s["info"])} for s in steps]) == ep.metrics
        columns, rows = UltimatumEnv.round_table(steps)
        assert columns == ["round", "proposer", "offer", "answer", "proposer points", "responder points"]
        assert [r[1] for r in rows] == [P0, P1, P0]
        assert rows[1][2] == "4 of 10"  # the script's offer in round 2
        assert rows[2][3] == "reject (invalid)"  # the script ran out: INVALID, carried out as reject
        assert sum(r[4] + r[5] for r in rows) == sum(ep.returns.values())
    assert ultimatum_metrics([])["mean_offer"] is None and UltimatumEnv.round_table([]) is None


def test_scenario_file_runs_with_scripted_agents(store, tmp_path):
    scenario = load_scenario(SCENARIO)
    assert scenario.env.id == "normlab/Ultimatum-v0" and scenario.agents["player_1"].model == "local/smollm2-135m"
    assert "40-50 %" in SCENARIO.read_text()
    config = yaml.safe_load(SCENARIO.read_text())
    config["agents"] = {P0: {"kind": "scripted", "strategy": "ultimatum_fair"}, P1: {"kind": "scripted", "strategy": "ultimatum_spiteful"}}
    path = tmp_path / "u.yaml"
    path.write_text(yaml.safe_dump(config))
    run_id = run_scenario(load_scenario(path), store)
    assert store.get_run(run_id).status == "finished"
    for ep in store.episodes(run_id):
        assert ep.returns == {P0: 50.0, P1: 50.0} and ep.metrics["mean_offer"] == 0.5 and ep.metrics["rejection_rate"] == 0.0


@pytest.mark.slow
def test_local_model_plays_a_short_episode(store):
    agent = "{kind: llm, model: local/smollm2-135m, harness: direct, max_tokens: 8, temperature: 0.7}"
    (ep,) = store.episodes(run(store, agent, "{kind: scripted, strategy: ultimatum_fair}", rounds=2))
    rows = store.steps(ep.id)
    assert [r["phase"] for r in rows if r["agent"] == P0] == ["propose", "wait", "wait", "respond"]
    for row in rows:
        kinds = [e["type"] for e in row["info"]["events"]]
        if row["action"] is None:
            assert INVALID_ACTION in kinds
    assert ep.metrics["rounds_played"] == 2

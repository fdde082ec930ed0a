"""StagHunt-v0: payoffs, fallback, metrics from the store, round table, the scenario file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pettingzoo.test import parallel_api_test

import normlab.envs as envs
from normlab.envs import INVALID_ACTION
from normlab.envs.dilemmas.stag_hunt import StagHuntEnv, stag_hunt_metrics
from normlab.runner import run_scenario
from normlab.scenario import load_scenario, parse_scenario
from normlab.store import Store

P0, P1 = "player_0", "player_1"
S, H = 0, 1
SCENARIO = Path(__file__).parents[2] / "scenarios" / "stag_hunt.yaml"


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/t.db")
    yield s
    s.close()


@pytest.mark.parametrize(("a0", "a1", "expected"), [(S, S, (4.0, 4.0)), (S, H, (0.0, 3.0)), (H, S, (3.0, 0.0)), (H, H, (3.0, 3.0))])
def test_default_payoffs(a0, a1, expected):
    env = StagHuntEnv()
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({P0: a0, P1: a1})
    assert (rewards[P0], rewards[P1]) == expected
    assert infos[P0]["events"] == [{"type": ("stag", "hare")[a0], "agent": P0, "round": 1, "points": expected[0]}]


def test_n_players_need_everyone_for_the_stag():
    env = StagHuntEnv(n=3, payoffs={"HH": 2})
    assert env.possible_agents == ["player_0", "player_1", "player_2"]
    env.reset(seed=0)
    obs, rewards, *_ = env.step({"player_0": S, "player_1": S, "player_2": S})
    assert set(rewards.values()) == {4.0}
    obs, rewards, *_ = env.step({"player_0": S, "player_1": S, "player_2": H})
    assert rewards == {"player_0": 0.0, "player_1": 0.0, "player_2": 3.0}
    assert obs["player_0"]["opponent_moves"][0] == 2 and obs["player_2"]["opponent_moves"][0] == 1
    _, rewards, *_ = env.step({"player_0": H, "player_1": S, "player_2": H})
    assert rewards == {"player_0": 2.0, "player_1": 0.0, "player_2": 2.0}
    parallel_api_test(StagHuntEnv(n=4, rounds=5), num_cycles=20)


@pytest.mark.parametrize("bad", [None, 2, -1, "stag", 0.0, True])
def test_invalid_counts_as_hare(bad):
    env = StagHuntEnv()
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({P0: bad, P1: S})
    assert rewards == {P0: 3.0, P1: 0.0}
    assert [e["type"] for e in infos[P0]["events"]] == [INVALID_ACTION, "hare"]
    assert env.fallback_action(P0) == H


def test_text_states_rules_and_action_format():
    env = StagHuntEnv(rounds=2)
    obs, _ = env.reset(seed=0)
    assert "stag hunt" in obs[P0]["text"] and obs[P0]["text"].endswith("Answer 0 to hunt the stag or 1 to hunt a hare.")
    obs, *_ = env.step({P0: S, P1: H})
    assert "Round 1: you hunted the stag, the other player hunted a hare." in obs[P0]["text"]
    assert "Totals so far: you 0, player_1 3." in obs[P0]["text"]
    obs, _, terms, *_ = env.step({P0: H, P1: H})
    assert all(terms.values()) and obs[P1]["text"].startswith("All 2 rounds have been played.") and env.agents == []


def run(store, p0, p1, rounds=10, episodes=1):
    text = f"name: s\nenv: {{id: normlab/StagHunt-v0, params: {{rounds: {rounds}}}}}\nagents:\n  player_0: {p0}\n  player_1: {p1}\nepisodes: {episodes}\nseed: 4\n"
    return run_scenario(parse_scenario(text), store)


def test_classic_strategies_play_it(store):
    (ep,) = store.episodes(run(store, "{kind: scripted, strategy: tit_for_tat}", "{kind: scripted, strategy: always_defect}"))
    assert ep.returns == {P0: 0.0 + 9 * 3.0, P1: 10 * 3.0}
    m = ep.metrics
    assert m["coordination_rate"] == 0.9 and m["hare_coordination_rate"] == 0.9 and m["stag_coordination_rate"] == 0.0
    assert m["stag_rate"] == {P0: 0.1, P1: 0.0} and m["joint_payoff"] == 57.0
    (ep,) = store.episodes(run(store, "{kind: scripted, strategy: tit_for_tat}", "{kind: scripted, strategy: always_cooperate}"))
    assert ep.returns == {P0: 40.0, P1: 40.0} and ep.metrics["stag_coordination_rate"] == 1.0


def test_metrics_from_the_store_and_round_table(store):
    run_id = run(store, "{kind: scripted, strategy: random, params: {p: 0.5}}", "{kind: scripted, strategy: script, params: {actions: [0, 1, 0]}}", rounds=4, episodes=3)
    env = envs.make("normlab/StagHunt-v0")
    for ep in store.episodes(run_id):
        steps = store.steps(ep.id)
        assert envs.metrics(env, steps) == ep.metrics
        assert envs.metrics(env, [{**s, "info": json.dumps(s["info"])} for s in steps]) == ep.metrics
        columns, rows = StagHuntEnv.round_table(steps)
        assert columns == ["round", P0, P1, f"{P0} points", f"{P1} points"]
        assert [r[2] for r in rows] == ["stag", "hare", "stag", "hare (invalid)"]  # the script ran out: INVALID, hare
        assert [r[3] + r[4] for r in rows] == pytest.approx([sum(s["reward"] for s in steps if s["t"] == t) for t in range(4)])
    assert stag_hunt_metrics([])["coordination_rate"] is None and StagHuntEnv.round_table([]) is None


def test_scenario_file_runs_with_scripted_agents(store, tmp_path):
    scenario = load_scenario(SCENARIO)
    assert scenario.env.id == "normlab/StagHunt-v0" and scenario.agents["player_0"].model == "local/smollm2-135m"
    config = yaml.safe_load(SCENARIO.read_text())
    config["agents"] = {P0: {"kind": "scripted", "strategy": "tit_for_tat"}, P1: {"kind": "scripted", "strategy": "pavlov"}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(config))
    run_id = run_scenario(load_scenario(path), store)
    assert store.get_run(run_id).status == "finished"
    for ep in store.episodes(run_id):
        assert ep.returns == {P0: 40.0, P1: 40.0} and ep.metrics["stag_coordination_rate"] == 1.0


@pytest.mark.slow
def test_local_model_plays_a_short_episode(store):
    agent = "{kind: llm, model: local/smollm2-135m, harness: direct, max_tokens: 8, temperature: 0.7}"
    (ep,) = store.episodes(run(store, agent, "{kind: scripted, strategy: tit_for_tat}", rounds=2))
    rows = [s for s in store.steps(ep.id) if s["agent"] == P0]
    assert len(rows) == 2
    for row in rows:
        kinds = [e["type"] for e in row["info"]["events"]]
        assert row["action"] in (0, 1) or (row["action"] is None and INVALID_ACTION in kinds)
        assert kinds[-1] in ("stag", "hare")
    assert np.isfinite(ep.returns[P0])

"""PublicGoods-v0: the repeated public goods game with optional costly punishment. Payoff of
agent i in a round: endowment − c_i + r·Σc/n − punish_cost·(points given) − punish_fine·(points
received)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pettingzoo.test import parallel_api_test, parallel_seed_test

import normlab.envs as envs
from normlab.envs import EnvParamsError
from normlab.envs.dilemmas.public_goods import PublicGoodsEnv, public_goods_metrics
from normlab.requests import INVALID, Composite, Integer
from normlab.runner import run_scenario
from normlab.scenario import load_scenario, parse_scenario
from normlab.store import Store

SCENARIO_FILE = Path(__file__).parents[2] / "scenarios" / "public_goods_punishment.yaml"
P = [f"player_{i}" for i in range(4)]


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/t.db")
    yield s
    s.close()


def contribute(env, amounts):
    return env.step(dict(zip(env.possible_agents, amounts)))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "params",
    [{"punishment": True}, {"punishment": True, "n": 2, "rounds": 3, "max_punish": 0}, {"agents": ["a", "b", "c"], "endowment": 1, "rounds": 4}, {"n": 7, "punishment": True, "max_punish": 10}],
)
def test_official_checkers(params):
    parallel_api_test(PublicGoodsEnv(**params), num_cycles=100)
    parallel_seed_test(lambda: PublicGoodsEnv(**params))


def test_all_full_contributors_earn_endowment_times_r():
    env = PublicGoodsEnv(rounds=3)
    env.reset(seed=0)
    for r in range(1, 4):
        obs, rewards, terms, _, infos = contribute(env, [20] * 4)
        assert rewards == {a: 32.0 for a in P}  # 20 - 20 + 1.6 * 80 / 4 = 20 * 1.6
        assert all(terms.values()) == (r == 3)
        assert infos["player_1"]["events"] == [{"type": "contribution", "agent": "player_1", "round": r, "amount": 20, "endowment": 20, "pot": 128.0, "share": 32.0}]
    assert float(obs["player_0"]["earnings"]) == 96.0 and env.agents == []


def test_a_free_rider_among_contributors():
    env = PublicGoodsEnv(rounds=1)
    env.reset(seed=0)
    obs, rewards, *_ = contribute(env, [20, 20, 20, 0])
    # pot 60 x 1.6 = 96, a share of 24 each
    assert rewards == {"player_0": 24.0, "player_1": 24.0, "player_2": 24.0, "player_3": 44.0}
    assert obs["player_0"]["contributions"].tolist() == [20, 20, 20, 0]


def test_punishment_costs_and_fines_are_exact():
    env = PublicGoodsEnv(punishment=True, rounds=2, max_punish=5, punish_cost=1, punish_fine=3)
    _, infos = env.reset(seed=0)
    assert infos["player_0"]["phase"] == "contribute"
    assert env.action_request("player_0") == Integer(0, 20)
    obs, rewards, terms, _, infos = contribute(env, [20, 20, 10, 0])
    # pot 50 x 1.6 = 80, a share of 20 each
    assert rewards == {"player_0": 20.0, "player_1": 20.0, "player_2": 30.0, "player_3": 40.0}
    assert {a: i["phase"] for a, i in infos.items()} == {a: "punish" for a in P} and not any(terms.values())
    request = env.action_request("player_2")
    assert isinstance(request, Composite) and [name for name, _ in request.fields] == ["player_0", "player_1", "player_3"]
    assert "Punishment stage" in obs["player_2"]["text"] and '{"player_0": 0, "player_1": 0, "player_3": 0}' in obs["player_2"]["text"]
    obs, rewards, _, _, infos = env.step(
        {
            "player_0": {"player_1": 0, "player_2": 1, "player_3": 5},
            "player_1": {"player_0": 0, "player_2": 0, "player_3": 4},
            "player_2": {"player_0": 0, "player_1": 0, "player_3": 0},
            "player_3": {"player_0": 2, "player_1": 0, "player_2": 0},
        }
    )
    # player_0: gives 6 (-6), receives 2 (-6); player_1: gives 4; player_2: receives 1 (-3); player_3: gives 2, receives 9
    assert rewards == {"player_0": -12.0, "player_1": -4.0, "player_2": -3.0, "player_3": -2.0 - 27.0}
    assert infos["player_0"]["events"] == [
        {"type": "punishment", "agent": "player_0", "target": "player_2", "round": 1, "points": 1, "cost": 1.0, "fine": 3.0},
        {"type": "punishment", "agent": "player_0", "target": "player_3", "round": 1, "points": 5, "cost": 5.0, "fine": 15.0},
    ]
    assert infos["player_2"]["events"] == [] and infos["player_0"]["phase"] == "contribute"
    assert obs["player_3"]["punishment_received"].tolist() == [2, 0, 1, 9]
    text = obs["player_3"]["text"]
    assert "Punishment points received: you 9 (fine 27); player_0 2, player_1 0, player_2 1. You assigned 2 points (cost 2)." in text
    assert "Your payoff this round: 11. Your total: 11." in text and text.endswith("Answer with a whole number from 0 to 20: the tokens you contribute to the pot this round.")
    assert float(obs["player_3"]["earnings"]) == 11.0


@pytest.mark.parametrize("bad", [None, 21, -1, 2.5, "lots", [3], True, INVALID, object()])
def test_an_invalid_contribution_counts_as_zero(bad):
    env = PublicGoodsEnv(rounds=1)
    env.reset(seed=0)
    _, rewards, _, _, infos = contribute(env, [bad, 20, 20, 20])
    invalid, made = infos["player_0"]["events"]
    assert invalid["type"] == "invalid_action" and invalid["phase"] == "contribute" and invalid["fallback"] == 0
    assert made["amount"] == 0 and rewards["player_0"] == 44.0
    assert env.fallback_action("player_0") == 0


def test_contributions_as_text_and_numpy_are_accepted():
    env = PublicGoodsEnv(rounds=1)
    env.reset(seed=0)
    *_, infos = contribute(env, ["7", np.int64(3), np.array(5), 20])
    assert [infos[a]["events"][0]["amount"] for a in P] == [7, 3, 5, 20]


@pytest.mark.parametrize("bad", [None, 3, {"player_1": 1}, {"player_1": 6, "player_2": 0, "player_3": 0}, {"player_1": 1, "player_2": 0, "player_3": -1}, {"player_0": 1, "player_1": 1, "player_2": 0, "player_3": 0}, INVALID])
def test_an_invalid_punishment_punishes_nobody(bad):
    env = PublicGoodsEnv(punishment=True, rounds=1)
    env.reset(seed=0)
    contribute(env, [0] * 4)
    assert env.fallback_action("player_0") == {"player_1": 0, "player_2": 0, "player_3": 0}
    _, rewards, terms, _, infos = env.step({"player_0": bad, **{a: env.fallback_action(a) for a in P[1:]}})
    assert [e["type"] for e in infos["player_0"]["events"]] == ["invalid_action"]
    assert all(infos[a]["events"] == [] for a in P[1:])
    assert infos["player_0"]["events"][0]["phase"] == "punish"
    assert rewards == {a: 0.0 for a in P} and all(terms.values())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 1}, "n must be an integer between 2 and 100, got 1"),
        ({"endowment": 0}, "endowment must be an integer between 1 and 1,000,000, got 0"),
        ({"r": -1}, "r must be between 0 and 1000, got -1"),
        ({"punishment": "yes"}, "punishment must be true or false, got 'yes'"),
        ({"n": 5, "agents": ["a", "b"]}, "n (5) and agents (2 names) disagree; give one of them"),
        ({"punish_fine": float("nan")}, "punish_fine must be a finite number, got nan"),
    ],
)
def test_bad_params_are_one_clear_error(params, message):
    with pytest.raises(EnvParamsError) as excinfo:
        PublicGoodsEnv(**params)
    assert [m for _, m in excinfo.value.problems] == [message]


def run_text(agents: list[str], punishment: bool, rounds: int = 2, episodes: int = 2) -> str:
    seats = "\n".join(f"  player_{i}: {{kind: scripted, strategy: {s}}}" for i, s in enumerate(agents))
    return (
        f"name: pg\nenv: {{id: normlab/PublicGoods-v0, params: {{punishment: {str(punishment).lower()}, rounds: {rounds}}}}}\n"
        f"agents:\n{seats}\nepisodes: {episodes}\nseed: 8\n"
    )


def test_punishers_against_a_free_rider_in_a_stored_run(store):
    run_id = run_scenario(parse_scenario(run_text(["pg_punisher"] * 3 + ["pg_free_ride"], punishment=True)), store)
    env = envs.make("normlab/PublicGoods-v0", punishment=True, rounds=2)
    for episode in store.episodes(run_id):
        steps = store.steps(episode.id)
        assert [s["phase"] for s in steps if s["agent"] == "player_0"] == ["contribute", "punish"] * 2
        metrics = episode.metrics
        assert metrics == json.loads(json.dumps(envs.metrics(env, steps)))  # recomputed from the stored rows
        # each round: share 24; punishers 24 - 3 (3 points to the free rider); free rider 44 - 9 x 3
        assert episode.returns == {"player_0": 42.0, "player_1": 42.0, "player_2": 42.0, "player_3": 34.0}
        assert metrics["contribution_rate"] == 0.75 and metrics["free_riding"] == 0.25
        assert metrics["contribution_rate_by_agent"] == {"player_0": 1.0, "player_1": 1.0, "player_2": 1.0, "player_3": 0.0}
        assert metrics["contribution_rate_by_round"] == {"1": 0.75, "2": 0.75}
        assert metrics["punishment_given"] == {"player_0": 6, "player_1": 6, "player_2": 6, "player_3": 0}
        assert metrics["punishment_received"] == {"player_0": 0, "player_1": 0, "player_2": 0, "player_3": 18}
        columns, rows = PublicGoodsEnv.round_table(steps)
        assert columns == ["round", *P, "pot", "punishments"]
        assert rows == [[r, "20", "20", "20", "0", "96", "player_0>player_3:3 player_1>player_3:3 player_2>player_3:3"] for r in (1, 2)]


def test_conditional_cooperators_follow_the_mean(store):
    run_id = run_scenario(parse_scenario(run_text(["pg_full", "pg_free_ride", "pg_free_ride", "pg_conditional"], punishment=False, rounds=3, episodes=1)), store)
    (episode,) = store.episodes(run_id)
    _, rows = PublicGoodsEnv.round_table(store.steps(episode.id))
    # mean of (20, 0, 0, 20) = 10, then of (20, 0, 0, 10) = 7.5, rounded half up to 8
    assert [row[4] for row in rows] == ["20", "10", "8"]
    assert rows[0][-1] == "" and episode.metrics["punishment_given"] == {a: 0 for a in P}
    assert episode.metrics["free_riding"] == pytest.approx(6 / 12)


def test_an_invalid_answer_in_a_run_is_marked(store):
    text = run_text(["pg_full"] * 4, punishment=True, rounds=1, episodes=1).replace(
        "player_0: {kind: scripted, strategy: pg_full}", "player_0: {kind: scripted, strategy: script, params: {actions: [5, nope]}}"
    )
    run_id = run_scenario(parse_scenario(text), store)
    (episode,) = store.episodes(run_id)
    assert episode.metrics["events"]["invalid_action"] == 1
    assert episode.returns["player_0"] == 20 - 5 + 1.6 * 65 / 4
    _, rows = PublicGoodsEnv.round_table(store.steps(episode.id))
    assert rows == [[1, "5", "20", "20", "20", "104", "player_0:invalid"]]
    text = run_text(["pg_full"] * 4, punishment=True, rounds=1, episodes=1).replace(
        "player_1: {kind: scripted, strategy: pg_full}", "player_1: {kind: scripted, strategy: script, params: {actions: [nope, {player_0: 0, player_2: 0, player_3: 0}]}}"
    )
    (episode,) = store.episodes(run_scenario(parse_scenario(text), store))
    _, rows = PublicGoodsEnv.round_table(store.steps(episode.id))
    assert rows == [[1, "20", "0*", "20", "20", "96", ""]]


def test_metrics_without_rounds():
    assert public_goods_metrics([])["contribution_rate"] is None
    assert PublicGoodsEnv.round_table([]) is None


def test_the_scenario_file_plays_both_conditions(store, tmp_path):
    config = yaml.safe_load(SCENARIO_FILE.read_text())
    assert config["env"]["params"]["n"] == 4 and config["matrix"] == {"env.params.punishment": [False, True]}
    assert all(a["kind"] == "llm" and a["model"] == "local/smollm2-135m" for a in config["agents"].values())
    config["agents"] = {a: {"kind": "scripted", "strategy": s} for a, s in zip(P, ["pg_punisher", "pg_conditional", "pg_conditional", "pg_free_ride"])}
    config["episodes"] = 1
    path = tmp_path / "pg.yaml"
    path.write_text(yaml.safe_dump(config))
    run_id = run_scenario(load_scenario(path), store)
    assert store.get_run(run_id).status == "finished"
    found = {ep.variant["env.params.punishment"]: ep for ep in store.episodes(run_id)}
    assert found[False].metrics["punishment_received"]["player_3"] == 0
    assert found[True].metrics["punishment_received"]["player_3"] == 10 * 3  # punished every round
    assert found[True].metrics["punishment_given"]["player_0"] == 30
    assert found[False].returns["player_3"] - found[True].returns["player_3"] == 10 * 3 * 3


def test_the_local_model_plays_a_short_episode(store):
    text = (
        "name: local\nenv: {id: normlab/PublicGoods-v0, params: {n: 2, rounds: 1, punishment: true, endowment: 10, max_punish: 2}}\n"
        "agents:\n  player_0: {kind: llm, model: local/smollm2-135m, harness: direct, max_tokens: 40, temperature: 0.7}\n"
        "  player_1: {kind: scripted, strategy: pg_punisher}\nepisodes: 1\nseed: 3\n"
    )
    run_id = run_scenario(parse_scenario(text), store)
    assert store.get_run(run_id).status == "finished"
    (episode,) = store.episodes(run_id)
    steps = [s for s in store.steps(episode.id) if s["agent"] == "player_0"]
    assert [s["phase"] for s in steps] == ["contribute", "punish"]
    for step in steps:
        info = step["info"] if isinstance(step["info"], dict) else json.loads(step["info"])
        kinds = [e["type"] for e in info["events"]]
        legal = (isinstance(step["action"], int) and 0 <= step["action"] <= 10) if step["phase"] == "contribute" else (
            isinstance(step["action"], dict) and set(step["action"]) == {"player_1"} and 0 <= step["action"]["player_1"] <= 2
        )
        assert legal or "invalid_action" in kinds

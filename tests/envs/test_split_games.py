"""No-Press Split and Trust-and-Split: known outcomes from the rules, fallbacks, honesty
events, metrics and round tables from stored runs, the scenario files, one local-model episode."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from pettingzoo.test import api_test, seed_test

import normlab.envs as envs
from normlab.envs import INVALID_ACTION
from normlab.envs.dilemmas.split_games import HANDS, ITEMS, NoPressSplitEnv, TrustAndSplitEnv, beats, claimed_hand, split
from normlab.runner import run_scenario
from normlab.scenario import load_scenario, parse_scenario
from normlab.store import Store

SCENARIOS = Path(__file__).parents[2] / "scenarios"
P0, P1 = "player_0", "player_1"


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


def events(info: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in (info or {}).get("events", []) if e["type"] == kind]


# --------------------------------------------------------------------------- the split rule


def test_split_rule():
    assert split(10, 10, 10) == (5.0, 5.0)
    assert split(10, 3, 6) == (3.0, 6.0)  # claims within Q: each gets what it claims
    assert split(10, 10, 5) == pytest.approx((10 * 10 / 15, 10 * 5 / 15))
    assert split(10, 0, 0) == (0.0, 0.0)


# --------------------------------------------------------------------------- No-Press Split


def claim(h: int, b: int, a: int) -> dict[str, int]:
    return dict(zip(ITEMS, (h, b, a)))


def test_no_press_both_claiming_everything_get_half_of_everything():
    env = NoPressSplitEnv()
    obs, _ = env.reset(seed=3)
    values = [obs[P0]["my_values"].tolist(), obs[P1]["my_values"].tolist()]
    _, rewards, _, _, infos = env.step({P0: claim(10, 10, 10), P1: claim(10, 10, 10)})
    assert rewards[P0] == 5 * sum(values[0]) and rewards[P1] == 5 * sum(values[1])
    (event,) = events(infos[P0], "split")
    assert event["received"] == {"hats": 5.0, "books": 5.0, "balls": 5.0}


def test_no_press_claims_within_q_are_granted():
    env = NoPressSplitEnv()
    obs, _ = env.reset(seed=4)
    v0, v1 = obs[P0]["my_values"].tolist(), obs[P1]["my_values"].tolist()
    _, rewards, _, _, infos = env.step({P0: claim(3, 0, 10), P1: claim(7, 2, 0)})
    assert rewards[P0] == 3 * v0[0] + 10 * v0[2]
    assert rewards[P1] == 7 * v1[0] + 2 * v1[1]
    assert events(infos[P1], "split")[0]["received"] == {"hats": 7.0, "books": 2.0, "balls": 0.0}


def test_no_press_values_are_1_or_10_with_equal_totals_redrawn_each_round():
    draws = set()
    for seed in range(60):
        env = NoPressSplitEnv(rounds=5)
        obs, _ = env.reset(seed=seed)
        for _ in range(5):
            v0, v1 = obs[P0]["my_values"].tolist(), obs[P1]["my_values"].tolist()
            assert set(v0) | set(v1) <= {1, 10} and sum(v0) == sum(v1)
            assert obs[P0]["opponent_values"].tolist() == v1  # public
            draws.add((tuple(v0), tuple(v1)))
            obs, *_ = env.step({P0: claim(0, 0, 0), P1: claim(0, 0, 0)})
    assert len(draws) == 20  # every pair with equal totals: sum over k of C(3, k)^2


def test_no_press_invalid_claims_nothing_with_an_event():
    env = NoPressSplitEnv()
    env.reset(seed=0)
    assert env.fallback_action(P0) == claim(0, 0, 0)
    for bad in (None, "all", {"hats": 11, "books": 0, "balls": 0}, {"hats": 1}, {"hats": 1, "books": 1, "balls": 1, "x": 1}):
        env.reset(seed=0)
        _, rewards, _, _, infos = env.step({P0: bad, P1: claim(10, 10, 10)})
        assert len(events(infos[P0], INVALID_ACTION)) == 1
        assert events(infos[P0], "split")[0]["claim"] == claim(0, 0, 0)
        assert rewards[P0] == 0.0


def test_no_press_ends_after_rounds_and_text_states_the_format():
    env = NoPressSplitEnv(rounds=2)
    obs, _ = env.reset(seed=1)
    assert '{"hats": k, "books": k, "balls": k}' in obs[P0]["text"] and "No-Press Split" in obs[P0]["text"]
    env.step({P0: claim(1, 1, 1), P1: claim(1, 1, 1)})
    obs, _, terms, _, _ = env.step({P0: claim(1, 1, 1), P1: claim(1, 1, 1)})
    assert all(terms.values()) and env.agents == []
    assert "All 2 rounds have been played" in obs[P0]["text"]


def test_no_press_bad_params():
    with pytest.raises(ValueError, match="rounds"):
        NoPressSplitEnv(rounds=0)
    with pytest.raises(ValueError, match="low_value"):
        NoPressSplitEnv(low_value=20)


# --------------------------------------------------------------------------- Trust-and-Split


def play_trust(env: TrustAndSplitEnv, answer: Any, seed: int = 0) -> list[dict[str, Any]]:
    """Plays an episode; `answer(env, agent, phase, observation)` gives each action. Returns
    one record per turn: agent, phase, observation, and (filled at its next turn) reward, info."""
    env.reset(seed=seed)
    turns: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for agent in env.agent_iter(1000):
        obs, reward, term, trunc, info = env.last()
        if agent in open_:
            open_.pop(agent).update(reward=reward, info=info)
        if term or trunc:
            env.step(None)
            continue
        record = {"agent": agent, "phase": info["phase"], "observation": obs}
        turns.append(record)
        open_[agent] = record
        env.step(answer(env, agent, info["phase"], obs))
    return turns


def test_trust_both_keeping_10_gives_55_a_round():
    env = TrustAndSplitEnv(rounds=3)
    turns = play_trust(env, lambda e, a, phase, o: "hi" if phase == "talk" else 10)
    claims = [t for t in turns if t["phase"] == "claim"]
    assert len(claims) == 6
    for rnd in range(3):
        pair = claims[2 * rnd : 2 * rnd + 2]
        assert sorted(t["reward"] for t in pair) == [5.0, 50.0]
        assert sum(t["reward"] for t in pair) == 55.0


def test_trust_honest_pair_gets_100_a_round(store):
    run_id = run_scenario(parse_scenario(trust_text("trust_honest", "trust_honest", episodes=3)), store)
    for episode in store.episodes(run_id):
        m = episode.metrics
        assert m["welfare"] == 1000.0 and m["welfare_efficiency"] == 1.0
        assert m["claims"] == 20 and m["true_claims"] == 20 and m["honesty_rate"] == 1.0


def test_trust_hands_are_distinct_and_first_speaker_alternates():
    env = TrustAndSplitEnv(rounds=10)
    hands_seen = set()
    for seed in range(30):
        turns = play_trust(env, lambda e, a, phase, o: "x" if phase == "talk" else 0, seed=seed)
        assert [t["phase"] for t in turns] == ["talk", "talk", "claim", "claim"] * 10
        talkers = [t["agent"] for t in turns if t["phase"] == "talk"]
        assert talkers == [P0, P1, P1, P0] * 5  # round r: player_0 first when r is odd
        for r in range(10):
            a, b = turns[4 * r], turns[4 * r + 1]
            ha, hb = int(a["observation"]["my_hand"]), int(b["observation"]["my_hand"])
            assert ha != hb
            hands_seen.add((ha, hb))
            splits = {t["agent"]: events(t["info"], "split")[0] for t in turns[4 * r + 2 : 4 * r + 4]}
            assert splits[a["agent"]]["hand"] == HANDS[ha]
            winner = a["agent"] if beats(ha, hb) else b["agent"]
            assert splits[winner]["won"] and splits[winner]["value"] == 10
    assert len(hands_seen) == 6


def test_trust_second_speaker_reads_the_first_message_and_claims_are_hidden():
    env = TrustAndSplitEnv(rounds=1)
    turns = play_trust(env, lambda e, a, phase, o: f"hello from {a}" if phase == "talk" else 7)
    assert turns[0]["observation"]["opponent_message"] == ""
    assert turns[1]["observation"]["opponent_message"] == "hello from player_0"
    assert 'The other player spoke first and said: "hello from player_0"' in turns[1]["observation"]["text"]
    assert "7" not in turns[3]["observation"]["text"].split("This round's messages")[1].replace("player_", "")
    assert turns[3]["observation"]["opponent_message"] == "hello from player_0"


@pytest.mark.parametrize(
    ("message", "claimed"),
    [
        ("I have rock", "rock"),
        ("Honestly, my hand is PAPER, so let me keep the coins.", "paper"),
        ("I've got scissors!", "scissors"),
        ("i'm holding a rock", "rock"),
        ("I have got paper", "paper"),
        ("My hand: scissor", "scissors"),
        ("I don't have rock", None),
        ("rock paper scissors", None),
        ("I have a rocket", None),
        ("", None),
    ],
)
def test_hand_claim_regex(message, claimed):
    assert claimed_hand(message) == claimed


def test_hand_claim_events_true_and_false():
    env = TrustAndSplitEnv(rounds=1)

    def answer(e: TrustAndSplitEnv, agent: str, phase: str, obs: Any) -> Any:
        if phase == "claim":
            return 0
        mine = HANDS[int(obs["my_hand"])]
        other = next(h for h in HANDS if h != mine)
        return f"I have {mine}." if agent == P0 else f"Trust me, my hand is {other}."

    turns = play_trust(env, answer, seed=2)
    (true,) = events(turns[0]["info"], "hand_claim")
    (false,) = events(turns[1]["info"], "hand_claim")
    assert true["truthful"] is True and true["claimed"] == true["hand"]
    assert false["truthful"] is False and false["claimed"] != false["hand"]
    silent = play_trust(TrustAndSplitEnv(rounds=1), lambda e, a, p, o: "let us share" if p == "talk" else 5)
    assert events(silent[0]["info"], "hand_claim") == []


def test_trust_invalid_answers_fall_back_with_an_event():
    env = TrustAndSplitEnv(rounds=1, max_message_chars=20)
    env.reset(seed=0)
    assert env.fallback_action(P0) == ""
    bad = iter(["x" * 21, 3, 11, "lots"])
    turns = play_trust(env, lambda e, a, p, o: next(bad))
    for t in turns:
        assert len(events(t["info"], INVALID_ACTION)) == 1
    assert [events(t["info"], "message")[0]["text"] for t in turns[:2]] == ["", ""]
    assert [events(t["info"], "split")[0]["keep"] for t in turns[2:]] == [0, 0]
    env.reset(seed=0)
    env.step("")
    env.step("")
    assert env.fallback_action(env.agent_selection) == 0
    env.step("7")  # a number as text is read
    env.step(np_int(3))
    assert env.infos[P0]["events"][-1]["keep"] == 7


def np_int(x: int) -> Any:
    import numpy as np

    return np.int64(x)


def test_trust_without_talk():
    env = TrustAndSplitEnv(rounds=2, talk=False)
    turns = play_trust(env, lambda e, a, p, o: 10)
    assert [t["phase"] for t in turns] == ["claim"] * 4


def test_trust_passes_the_official_aec_checkers():
    """The official AEC checkers, without the warnings PettingZoo gives every Dict
    observation and Text action space (advice for RL on arrays, not errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Observation is not a NumPy array")
        warnings.filterwarnings("ignore", message=".*probably should be gymnasium.spaces.box")
        api_test(TrustAndSplitEnv(), num_cycles=200)
        seed_test(lambda: TrustAndSplitEnv())


# --------------------------------------------------------------------------- stored runs


def trust_text(a: str, b: str, episodes: int = 2, rounds: int = 10) -> str:
    return yaml.safe_dump(
        {
            "name": "trust-test",
            "env": {"id": "normlab/TrustAndSplit-v0", "params": {"rounds": rounds}},
            "agents": {P0: {"kind": "scripted", "strategy": a}, P1: {"kind": "scripted", "strategy": b}},
            "episodes": episodes,
            "seed": 5,
        }
    )


def nopress_text(a: str, b: str, episodes: int = 2) -> str:
    return yaml.safe_dump(
        {
            "name": "nopress-test",
            "env": {"id": "normlab/NoPressSplit-v0", "params": {"rounds": 10}},
            "agents": {P0: {"kind": "scripted", "strategy": a}, P1: {"kind": "scripted", "strategy": b}},
            "episodes": episodes,
            "seed": 5,
        }
    )


def test_trust_metrics_recomputed_from_the_store(store):
    run_id = run_scenario(parse_scenario(trust_text("trust_honest", "trust_liar", episodes=3)), store)
    env = envs.make("normlab/TrustAndSplit-v0")
    for episode in store.episodes(run_id):
        steps = store.steps(episode.id)
        assert len(steps) == 40
        assert envs.metrics(env, steps) == episode.metrics
        as_text = [{**s, "info": json.dumps(s["info"])} for s in steps]
        assert envs.metrics(env, as_text) == episode.metrics
        m = episode.metrics
        assert m["points"][P1] == episode.returns[P1] and m["points"][P0] == episode.returns[P0]
        assert m["exploitation"][P1] == -m["exploitation"][P0] > 0  # the liar exploits the honest player
        assert m["honesty_by_agent"][P0] == 1.0 and m["claims"] == 20
        columns, rows = env.round_table(steps)
        assert len(rows) == 10 and columns[0] == "round"
        assert rows[0][columns.index("player_0 message")] == '1st: "I have ' + rows[0][1].split(" ")[0] + '."'
        assert rows[0][columns.index("player_1 keep")] == 10


def test_trust_greedy_pair_gets_55_a_round(store):
    run_id = run_scenario(parse_scenario(trust_text("trust_greedy", "split_greedy", episodes=1)), store)
    (episode,) = store.episodes(run_id)
    assert episode.metrics["welfare"] == 550.0 and episode.metrics["welfare_efficiency"] == 0.55
    assert episode.metrics["honesty_rate"] is None


def test_no_press_metrics_and_table_from_the_store(store):
    run_id = run_scenario(parse_scenario(nopress_text("split_fair", "split_greedy")), store)
    env = envs.make("normlab/NoPressSplit-v0")
    for episode in store.episodes(run_id):
        steps = store.steps(episode.id)
        assert envs.metrics(env, steps) == episode.metrics
        assert episode.metrics["claimed_share"][P1] == 1.0
        assert episode.metrics["exploitation"][P1] > 0
        columns, rows = env.round_table(steps)
        assert len(rows) == 10 and rows[0][columns.index("player_1 claim")] == "10/10/10"
    run_id = run_scenario(parse_scenario(nopress_text("split_fair", "split_fair", episodes=1)), store)
    (episode,) = store.episodes(run_id)
    assert episode.metrics["welfare_efficiency"] == 1.0 and episode.metrics["exploitation"][P0] == 0.0


@pytest.mark.parametrize(("name", "scripted"), [("no_press_split", "split_greedy"), ("trust_and_split", "trust_liar")])
def test_scenario_files_run_with_scripted_agents(store, tmp_path, name, scripted):
    path = SCENARIOS / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["agents"][P0]["model"] == "local/smollm2-135m"
    assert "PAPERS.md" in path.read_text()
    config["agents"] = {P0: {"kind": "scripted", "strategy": "split_fair"}, P1: {"kind": "scripted", "strategy": scripted}}
    config["matrix"] = {"agents.player_1": [{"kind": "scripted", "strategy": "split_fair"}, {"kind": "scripted", "strategy": scripted}]}
    config["episodes"] = 1
    copy = tmp_path / f"{name}.yaml"
    copy.write_text(yaml.safe_dump(config))
    run_id = run_scenario(load_scenario(copy), store)
    assert store.get_run(run_id).status == "finished"
    assert len(store.episodes(run_id)) == 2


@pytest.mark.slow
def test_local_model_plays_one_short_trust_episode(store):
    agent = {"kind": "llm", "model": "local/smollm2-135m", "harness": "direct", "max_tokens": 24, "temperature": 0.7}
    text = yaml.safe_dump(
        {
            "name": "trust-local",
            "env": {"id": "normlab/TrustAndSplit-v0", "params": {"rounds": 1, "max_message_chars": 80}},
            "agents": {P0: agent, P1: {"kind": "scripted", "strategy": "trust_honest"}},
            "episodes": 1,
            "seed": 1,
        }
    )
    run_id = run_scenario(parse_scenario(text), store)
    assert store.get_run(run_id).status == "finished"
    (episode,) = store.episodes(run_id)
    rows = [s for s in store.steps(episode.id) if s["agent"] == P0]
    assert [r["phase"] for r in rows] == ["talk", "claim"]
    talk, keep = rows
    assert talk["action"] is None or (isinstance(talk["action"], str) and len(talk["action"]) <= 80)
    assert keep["action"] is None or keep["action"] in range(11)
    for r in rows:
        if r["action"] is None:
            assert events(r["info"], INVALID_ACTION)
    assert len(events(rows[1]["info"], "split")) == 1


@pytest.mark.slow
def test_local_model_plays_one_short_no_press_episode(store):
    """The composite keep request (three integers at once) through the embedded model."""
    agent = {"kind": "llm", "model": "local/smollm2-135m", "harness": "direct", "max_tokens": 32, "temperature": 0.7}
    text = yaml.safe_dump(
        {
            "name": "no-press-local",
            "env": {"id": "normlab/NoPressSplit-v0", "params": {"rounds": 1}},
            "agents": {P0: agent, P1: {"kind": "scripted", "strategy": "split_fair"}},
            "episodes": 1,
            "seed": 1,
        }
    )
    run_id = run_scenario(parse_scenario(text), store)
    assert store.get_run(run_id).status == "finished"
    (episode,) = store.episodes(run_id)
    (row,) = [s for s in store.steps(episode.id) if s["agent"] == P0]
    if row["action"] is None:
        assert events(row["info"], INVALID_ACTION)
    else:
        assert set(row["action"]) == {"hats", "books", "balls"} and all(v in range(11) for v in row["action"].values())
    assert len(events(row["info"], "split")) == 1

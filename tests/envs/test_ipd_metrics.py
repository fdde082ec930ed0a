"""IPD metrics and round table: known outcomes (Axelrod's conventions: tit-for-tat scores 9
against always-defect's 14 over 10 rounds at 5/3/1/0), recomputed from stored rows, cheap talk's
announced-then-defected share."""

from __future__ import annotations

import json

import pytest

import normlab.envs as envs
from normlab.envs.base import count_events
from normlab.envs.dilemmas.prisoners_dilemma import IteratedPrisonersDilemmaEnv, announces_cooperation, ipd_metrics
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

P0, P1 = "player_0", "player_1"


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/t.db")
    yield s
    s.close()


def run(store, p0: str, p1: str, params: str = "{rounds: 10}", episodes: int = 1) -> str:
    text = f"name: m\nenv: {{id: normlab/IteratedPrisonersDilemma-v0, params: {params}}}\nagents:\n  player_0: {p0}\n  player_1: {p1}\nepisodes: {episodes}\nseed: 2\n"
    return run_scenario(parse_scenario(text), store)


# (player_0, player_1, scores, cooperation rates, mutual C, mutual D) over 10 rounds, as Axelrod scores them
KNOWN = [
    ("tit_for_tat", "always_defect", (9.0, 14.0), (0.1, 0.0), 0.0, 0.9),
    ("tit_for_tat", "always_cooperate", (30.0, 30.0), (1.0, 1.0), 1.0, 0.0),
    ("always_defect", "always_cooperate", (50.0, 0.0), (0.0, 1.0), 0.0, 0.0),
    ("grim_trigger", "always_defect", (9.0, 14.0), (0.1, 0.0), 0.0, 0.9),
    ("pavlov", "always_defect", (5 * 0.0 + 5 * 1.0, 5 * 5.0 + 5 * 1.0), (0.5, 0.0), 0.0, 0.5),
]


@pytest.mark.parametrize(("a", "b", "scores", "rates", "cc", "dd"), KNOWN)
def test_known_outcomes(store, a, b, scores, rates, cc, dd):
    run_id = run(store, f"{{kind: scripted, strategy: {a}}}", f"{{kind: scripted, strategy: {b}}}")
    (episode,) = store.episodes(run_id)
    m = episode.metrics
    assert (episode.returns[P0], episode.returns[P1]) == scores
    assert m["rounds_played"] == 10
    assert m["cooperation_rate"] == {P0: rates[0], P1: rates[1]}
    assert m["mutual_cooperation_rate"] == cc and m["mutual_defection_rate"] == dd
    assert m["joint_payoff"] == sum(scores)
    assert m["exploitation"] == {P0: scores[0] - scores[1], P1: scores[1] - scores[0]}
    assert m["exploitation_abs"] == abs(scores[0] - scores[1])
    assert "announced_cooperation" not in m  # talk off


def test_metrics_are_recomputed_from_the_store(store):
    run_id = run(store, "{kind: scripted, strategy: tit_for_tat}", "{kind: scripted, strategy: random, params: {p: 0.5}}", "{rounds: 12, noise: 0.1}", episodes=4)
    env = envs.make("normlab/IteratedPrisonersDilemma-v0", rounds=12, noise=0.1)
    seen = set()
    for episode in store.episodes(run_id):
        steps = store.steps(episode.id)
        assert envs.metrics(env, steps) == episode.metrics
        as_text = [{**s, "info": json.dumps(s["info"])} for s in steps]
        assert envs.metrics(env, as_text) == episode.metrics
        assert episode.metrics == {**episode.metrics, **count_events(steps)}
        assert episode.metrics["joint_payoff"] == pytest.approx(sum(episode.returns.values()))
        seen.add(episode.metrics["cooperation_rate"][P1])
    assert len(seen) > 1


def test_round_table(store):
    run_id = run(store, "{kind: scripted, strategy: tit_for_tat}", "{kind: scripted, strategy: script, params: {actions: [1, 0]}}", "{rounds: 3}")
    (episode,) = store.episodes(run_id)
    columns, rows = IteratedPrisonersDilemmaEnv.round_table(store.steps(episode.id))
    assert columns == ["round", P0, P1, f"{P0} points", f"{P1} points"]
    # round 3: the script has no more actions: INVALID, carried out as defect
    assert rows == [[1, "cooperate", "defect", 0.0, 5.0], [2, "defect", "cooperate", 5.0, 0.0], [3, "cooperate", "defect (invalid)", 0.0, 5.0]]
    assert episode.metrics["events"]["invalid_action"] == 1
    assert IteratedPrisonersDilemmaEnv.round_table([]) is None


def test_cheap_talk_announced_then_defected(store):
    promise = "I will cooperate this round, I promise."
    run_id = run(
        store,
        "{kind: scripted, strategy: tit_for_tat, params: {message: 'I cooperate as long as you do.'}}",
        f"{{kind: scripted, strategy: always_defect, params: {{message: '{promise}'}}}}",
        "{rounds: 10, talk: true}",
    )
    (episode,) = store.episodes(run_id)
    m = episode.metrics
    assert (episode.returns[P0], episode.returns[P1]) == (9.0, 14.0)
    assert m["announced_cooperation"] == {P0: 1.0, P1: 1.0}
    # tit-for-tat announces every round and defects in rounds 2-10; the defector always
    assert m["announced_then_defected"] == {P0: 0.9, P1: 1.0, "overall": 0.95}
    assert m["broken_promise_rate"] == {P0: 0.9, P1: 1.0, "overall": 0.95}
    columns, rows = IteratedPrisonersDilemmaEnv.round_table(store.steps(episode.id))
    assert columns == ["round", f"{P0} says", f"{P1} says", P0, P1, f"{P0} points", f"{P1} points"]
    assert rows[0] == [1, "I cooperate as long as you do.", promise, "cooperate", "defect", 0.0, 5.0]
    env = envs.make("normlab/IteratedPrisonersDilemma-talk-v0")
    assert envs.metrics(env, store.steps(episode.id)) == m


def test_talk_metrics_when_nobody_announces():
    env = IteratedPrisonersDilemmaEnv(rounds=2, talk=True)
    env.reset(seed=0)
    rows = []
    for actions in ({P0: "hello", P1: "I will not cooperate"}, {P0: 0, P1: 1}, {P0: "0", P1: "C"}, {P0: 1, P1: 0}):
        _, rewards, _, _, infos = env.step(actions)
        rows += [{"agent": a, "reward": rewards[a], "info": infos[a]} for a in (P0, P1)]
    m = env.metrics(rows)
    assert m["announced_cooperation"] == {P0: 0.5, P1: 0.5}  # round 2: "0" and "C"
    assert m["announced_then_defected"] == {P0: 0.5, P1: 0.0, "overall": 0.25}
    assert m["broken_promise_rate"] == {P0: 1.0, P1: 0.0, "overall": 0.5}


@pytest.mark.parametrize(
    ("message", "announces"),
    [
        ("I will cooperate", True), ("Let us keep cooperating.", True), ("cooperation pays", True),
        ("I will C", True), ("I'll play 0", True), ("0", True), ("C.", True),
        ("I will not cooperate", False), ("I won't cooperate", False), ("never cooperating", False),
        ("I will defect", False), ("OK.", False), ("", False), ("I can win", False),
        ("Don't defect, cooperate with me", True),
    ],
)
def test_announcement_heuristic(message, announces):
    assert announces_cooperation(message) is announces


def test_edge_cases_and_declarations():
    m = ipd_metrics([])
    assert m["rounds_played"] == 0 and m["cooperation_rate"] == {P0: None, P1: None} and m["mutual_cooperation_rate"] is None
    assert ipd_metrics([{"agent": P0, "info": "not json"}, {"agent": P0, "info": {"events": ["odd"]}}])["events"] == {"event": 1}
    env = IteratedPrisonersDilemmaEnv()
    assert set(ipd_metrics([])) - {"events", "events_by_agent"} <= set(env.metric_types)
    assert set(ipd_metrics([], talk=True)) - {"events", "events_by_agent"} == set(env.metric_types)

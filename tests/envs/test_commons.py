"""GovSim's commons (`normlab/CommonsHarvest-v0`): known outcomes from the rules, the random
split, the variants, invalid answers, metrics and the round table from a stored run, the
scenario files, and one short episode on the embedded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pettingzoo.test import parallel_api_test, parallel_seed_test

import normlab.envs as envs
from normlab.envs import INVALID_ACTION, EnvParamsError
from normlab.envs.dilemmas.commons import CommonsHarvestEnv, gini, max_sustainable_gain
from normlab.requests import Choice, Integer, Text
from normlab.runner import run_scenario
from normlab.scenario import load_scenario, parse_scenario
from normlab.store import Store

ENV_ID = "normlab/CommonsHarvest-v0"
SEATS = [f"persona_{i}" for i in range(5)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


def run(store: Store, seats: dict[str, Any], episodes: int = 1, seed: int = 1, **params: Any) -> str:
    text = yaml.safe_dump({"name": "commons-test", "env": {"id": ENV_ID, "params": params}, "agents": seats, "episodes": episodes, "seed": seed})
    return run_scenario(parse_scenario(text), store)


def scripted(strategy: str, **params: Any) -> dict[str, Any]:
    return {"kind": "scripted", "strategy": strategy, "params": params}


def events(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for r in rows for e in (r["info"] or {}).get("events", []) if e["type"] == kind]


def test_five_sustainable_agents_survive_all_12_months(store):
    # threshold = ⌊⌊100/2⌋/5⌋ = 10; each takes 10: 50 left, doubled back to 100; every month
    # the same, so 12 months × 10 = 120 each; efficiency 600 / (12 × 5 × 10) = 1
    run_id = run(store, {a: scripted("commons_sustainable") for a in SEATS})
    (episode,) = store.episodes(run_id)
    m = episode.metrics
    assert m["survival_months"] == 12 and m["collapsed"] is False
    assert m["total_gain"] == dict.fromkeys(SEATS, 120)
    assert episode.returns == dict.fromkeys(SEATS, 120.0)
    assert m["gini"] == 0.0 and m["over_usage"] == 0.0 and m["efficiency"] == 1.0
    steps = store.steps(episode.id)
    ends = events(steps, "month_end")
    assert [(e["pool"], e["left"], e["next_pool"]) for e in ends] == [(100, 50, 100)] * 11 + [(100, 50, 100)]
    # a month: harvest, 10 discussion steps of one message each, reflection: 12 steps × 5 rows
    assert len(steps) == 12 * 12 * 5
    assert m["events"]["message"] == 120 and m["events"]["reflection"] == 60
    # one speaker a step, in turn, month m opening with the ((m - 1) mod 5)-th agent
    speakers = [(e["month"], e["agent"]) for e in events(steps, "message")]
    assert speakers[:10] == [(1, SEATS[i % 5]) for i in range(10)]
    assert speakers[10:12] == [(2, "persona_1"), (2, "persona_2")]
    waits = [s for s in steps if s["phase"] == "wait"]
    assert len(waits) == 12 * 10 * 4 and {s["action"] for s in waits} == {""}


def test_five_greedy_agents_collapse_in_month_1(store):
    # each asks the whole lake (100): 500 > 100, the 100 tons are handed out, 0 left < 5
    run_id = run(store, {a: scripted("commons_greedy") for a in SEATS})
    (episode,) = store.episodes(run_id)
    m = episode.metrics
    assert m["survival_months"] == 1 and m["collapsed"] is True
    assert sum(m["total_gain"].values()) == 100
    assert m["over_usage"] == 1.0 and m["efficiency"] == pytest.approx(100 / 600)
    assert m["events"]["collapse"] == 1
    steps = store.steps(episode.id)
    # the month is played to its end (discussion and reflection) before the check
    assert {s["phase"] for s in steps} == {"harvest", "discuss", "wait", "reflect"}
    assert all(s["terminated"] for s in steps if s["t"] == max(x["t"] for x in steps))


def test_a_pool_of_exactly_5_survives_and_collapse_comes_the_month_it_must():
    # 5 × 19 = 95: 5 left, not below 5, survives; doubles to 10; month 2: all ask 19 (the
    # request is capped at the 10 there), 10 are handed out, 0 left: collapse in month 2
    env = CommonsHarvestEnv(no_discussion=True, reflection=False)
    env.reset(seed=0)
    _, rewards, terms, _, infos = env.step(dict.fromkeys(SEATS, 19))
    assert rewards == dict.fromkeys(SEATS, 19.0) and not any(terms.values())
    (end,) = [e for e in infos["persona_0"]["events"] if e["type"] == "month_end"]
    assert (end["left"], end["collapsed"], end["next_pool"]) == (5, False, 10)
    assert env.pool == 10 and env.action_request("persona_0") == Integer(0, 10)
    _, rewards, terms, _, infos = env.step(dict.fromkeys(SEATS, 10))
    assert sum(rewards.values()) == 10 and all(terms.values()) and env.agents == []
    assert any(e["type"] == "collapse" and e["month"] == 2 for e in infos["persona_0"]["events"])


def split_of(seed: int) -> dict[str, int]:
    env = CommonsHarvestEnv(no_discussion=True, reflection=False)
    env.reset(seed=seed)
    _, rewards, *_ = env.step({"persona_0": 5, "persona_1": 3, "persona_2": 100, "persona_3": 100, "persona_4": 60})
    assert env.left == 0
    return {a: int(r) for a, r in rewards.items()}


def test_requests_over_the_pool_are_split_unit_by_unit_from_the_seed():
    first = split_of(7)
    assert sum(first.values()) == 100  # the lake is emptied to exactly 0
    assert first["persona_0"] == 5 and first["persona_1"] == 3  # small requests are met in full
    assert first == split_of(7)  # the same seed, the same split
    assert any(split_of(seed) != first for seed in range(1, 20))  # another seed may differ
    big = [first[a] for a in ("persona_2", "persona_3", "persona_4")]
    assert max(big) - min(big) <= 20  # about even among the big askers


def test_requests_that_fit_are_met_in_full():
    assert CommonsHarvestEnv.split({"a": 10, "b": 40, "c": 50}, 100, None) == {"a": 10, "b": 40, "c": 50}  # type: ignore[arg-type]


def test_universalization_text_holds_the_computed_hint():
    env = CommonsHarvestEnv(universalization=True)
    obs, _ = env.reset(seed=0)
    text = obs["persona_0"]["text"]
    # threshold 10; 5 × 11 = 55 taken leaves 45, doubled to 90; 5 × 10 leaves 50 → 100
    assert "if everyone takes more than 10 tons, the lake will shrink next month" in text
    assert "If everyone harvested 11 tons, 45 would be left and the lake would hold 90 tons of fish next month" in text
    assert "if everyone harvested 10 tons, the lake would hold 100 tons of fish next month" in text
    assert "shrink" not in CommonsHarvestEnv().reset(seed=0)[0]["persona_0"]["text"]


@pytest.mark.parametrize(("flavour", "words"), [("fishery", "tons of fish"), ("pasture", "hectares of grass"), ("pollution", "units of pollution")])
def test_flavours_share_the_mechanics_with_their_own_words(flavour, words):
    env = CommonsHarvestEnv(flavour=flavour)
    obs, _ = env.reset(seed=0)
    assert words in obs["persona_0"]["text"] and words.split()[-1] in env.rules("persona_0")
    _, rewards, *_ = env.step(dict.fromkeys(SEATS, 10))
    assert rewards == dict.fromkeys(SEATS, 10.0)


def test_no_discussion_has_no_discussion_turns(store):
    run_id = run(store, {a: scripted("commons_sustainable") for a in SEATS}, no_discussion=True, months=3)
    steps = store.steps(store.episodes(run_id)[0].id)
    assert [s["phase"] for s in steps if s["agent"] == "persona_0"] == ["harvest", "reflect"] * 3
    assert not events(steps, "message")


def test_newcomer_joins_at_month_4(store):
    agents = {a: scripted("commons_sustainable") for a in SEATS[:4]}
    agents["persona_4"] = scripted("commons_greedy", share=0.5)
    params = {"months": 15, "newcomer": {"seat": "persona_4", "joins_month": 4}}
    run_id = run(store, agents, **params)
    (episode,) = store.episodes(run_id)
    steps = store.steps(episode.id)
    months = sorted({e["month"] for e in events(steps, "harvest") if e["agent"] == "persona_4"})
    assert months[0] == 4
    assert [e["month"] for e in events(steps, "join")] == [4]
    first = [e for e in events(steps, "harvest") if e["month"] == 1]
    assert len(first) == 4 and {e["threshold"] for e in first} == {12}  # ⌊50/4⌋ with 4 agents
    env = CommonsHarvestEnv(**params)
    assert "newcomer" in env.rules("persona_4").lower() or "make as much money" in env.rules("persona_4")
    assert env.possible_agents == SEATS and env.reset(seed=0)[0].keys() == set(SEATS[:4])
    assert envs.metrics(env, steps) == episode.metrics


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "params",
    [{"newcomer": {"seat": "persona_4", "joins_month": 2}, "months": 4}, {"no_discussion": True, "reflection": False, "agents": ["Ann", "Bo"]}, {"universalization": True, "flavour": "pollution"}],
)
def test_variants_pass_the_official_checker(params):
    parallel_api_test(CommonsHarvestEnv(**params), num_cycles=200)
    parallel_seed_test(lambda: CommonsHarvestEnv(**params))


def test_invalid_answers_take_the_fallback_with_an_event():
    env = CommonsHarvestEnv(max_message_chars=10)
    env.reset(seed=0)
    assert env.fallback_action("persona_0") == 0
    _, rewards, _, _, infos = env.step({**dict.fromkeys(SEATS, 10), "persona_0": 101, "persona_1": "lots"})
    assert rewards["persona_0"] == 0.0 and rewards["persona_1"] == 0.0 and rewards["persona_2"] == 10.0
    for a in ("persona_0", "persona_1"):
        kinds = [e["type"] for e in infos[a]["events"]]
        assert kinds[0] == INVALID_ACTION and "harvest" in kinds
    assert env.speaker == "persona_0"
    assert env.action_request("persona_0") == Text(10, tag="speech", characters=env.message_request.characters)
    assert env.action_request("persona_1") == Choice(("wait",), ("",))
    assert env.fallback_action("persona_0") == "" and infos["persona_1"]["phase"] == "wait" and infos["persona_0"]["phase"] == "discuss"
    _, _, _, _, infos = env.step({**dict.fromkeys(SEATS, ""), "persona_0": "x" * 11, "persona_2": "hi"})
    (message,) = [e for e in infos["persona_0"]["events"] if e["type"] == "message"]
    assert message["text"] == "" and infos["persona_0"]["events"][0]["type"] == INVALID_ACTION
    assert [e["type"] for e in infos["persona_2"]["events"]] == [INVALID_ACTION]  # a waiter's text is ignored
    assert infos["persona_1"]["events"] == [] and env.speaker == "persona_1"


def test_an_invalid_llm_answer_is_recorded_by_the_runner(store):
    agents = {a: scripted("commons_sustainable") for a in SEATS}
    agents["persona_0"] = scripted("script", actions=["not a number"], then={"action": 0})
    run_id = run(store, agents, months=1)
    steps = store.steps(store.episodes(run_id)[0].id)
    first = [s for s in steps if s["agent"] == "persona_0"][0]
    assert first["info"]["events"][0]["type"] == INVALID_ACTION and first["action"] is None
    assert events([first], "harvest")[0]["request"] == 0


def test_metrics_and_round_table_from_a_stored_run(store):
    agents = {a: scripted("commons_fixed", amount=a_amount) for a, a_amount in zip(SEATS, (5, 8, 12, 15, 30))}
    run_id = run(store, agents, episodes=2, months=6)
    env = envs.make(ENV_ID, months=6)
    for episode in store.episodes(run_id):
        steps = store.steps(episode.id)
        assert envs.metrics(env, steps) == episode.metrics
        as_text = [{**s, "info": json.dumps(s["info"])} for s in steps]
        assert envs.metrics(env, as_text) == episode.metrics
        columns, rows = CommonsHarvestEnv.round_table(as_text)  # type: ignore[misc]
        assert columns == ["month", "pool", *(f"{a} asked/got" for a in SEATS), "left", "collapsed", "messages"]
        # month 1: 70 asked of 100, 30 left (no collapse), doubled to 60; month 2: 70 > 60 ...
        assert rows[0] == [1, 100, "5/5", "8/8", "12/12", "15/15", "30/30", 30, False, 10]
        assert rows[1][:2] == [2, 60] and rows[1][7] == 0 and rows[1][8] is True
        m = episode.metrics
        assert m["survival_months"] == 2 and m["collapsed"] is True
        # requests above the thresholds (10, then ⌊30/5⌋ = 6): month 1 12, 15, 30; month 2 8, 12, 15, 30
        assert m["over_usage"] == pytest.approx(7 / 10)
        totals = list(m["total_gain"].values())
        assert sum(totals) == 130 and m["gini"] == pytest.approx(gini([float(t) for t in totals]))
        assert m["efficiency"] == pytest.approx(130 / max_sustainable_gain(100, 6, [5] * 6))


def test_gini_and_the_maximum_sustainable_gain():
    assert gini([1.0, 1.0]) == 0.0 and gini([0.0, 0.0]) == 0.0
    assert gini([0.0, 10.0]) == pytest.approx(0.5)  # |0-10|·2 / (2 · 2 · 10)
    assert max_sustainable_gain(100, 12, [5] * 12) == 600
    assert max_sustainable_gain(100, 15, [4] * 3 + [5] * 12) == 3 * 48 + 12 * 50


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"flavour": "forest"}, "flavour must be one of fishery, pasture, pollution"),
        ({"agents": ["a"]}, "agents must name 2 to 20 seats"),
        ({"agents": ["a", "a"]}, "agents must be distinct"),
        ({"newcomer": {"seat": "nobody"}}, "newcomer.seat must be one of the seats"),
        ({"newcomer": {"seat": "persona_4", "joins_month": 13}}, "newcomer.joins_month must be at most months"),
        ({"max_utterances": 0}, "max_utterances must be an integer between 1"),
        ({"pool": 5}, "pool must be an integer between 10"),
    ],
)
def test_bad_params_are_clear_errors(params, message):
    with pytest.raises(EnvParamsError, match=message.replace(".", r"\.")):
        CommonsHarvestEnv(**params)


def test_the_scenario_files_validate_and_run_with_scripted_agents(store, tmp_path):
    for name in ("govsim_fishery.yaml", "govsim_universalization.yaml", "govsim_newcomer.yaml"):
        path = ROOT / "scenarios" / name
        text = path.read_text()
        assert "local/smollm2-135m" in text
        config = yaml.safe_load(text)
        config["agents"] = {a: scripted("commons_sustainable") for a in SEATS}
        config["episodes"] = 1
        copy = tmp_path / name
        copy.write_text(yaml.safe_dump(config))
        run_id = run_scenario(load_scenario(copy), store)
        assert store.get_run(run_id).status == "finished"
        for episode in store.episodes(run_id):
            assert episode.metrics["survival_months"] == config["env"]["params"]["months"]
            assert episode.metrics["efficiency"] == 1.0
    assert "43 of 45" in (ROOT / "scenarios" / "govsim_fishery.yaml").read_text()


@pytest.mark.slow
def test_one_short_episode_on_the_embedded_model(store):
    agent = {"kind": "llm", "model": "local/smollm2-135m", "harness": "direct", "max_tokens": 24, "temperature": 0.7}
    run_id = run(store, {a: agent for a in SEATS[:2]}, agents=SEATS[:2], months=1, max_utterances=2, max_message_chars=60)
    assert store.get_run(run_id).status == "finished"
    (episode,) = store.episodes(run_id)
    steps = store.steps(episode.id)
    assert [s["phase"] for s in steps if s["agent"] == "persona_0"] == ["harvest", "discuss", "wait", "reflect"]
    for s in steps:
        invalid = any(e["type"] == INVALID_ACTION for e in s["info"]["events"])
        if s["phase"] == "harvest":
            assert invalid or (isinstance(s["action"], int) and 0 <= s["action"] <= 100)
        else:
            assert invalid or (isinstance(s["action"], str) and len(s["action"]) <= 60)
    assert len([c for c in store.model_calls(episode.id) if c["error"] is None]) >= 6  # waiting asks no model
    assert episode.metrics["survival_months"] == 1

"""Cheap-talk IPD end to end: through the runner with scripted talkers, LLM agents of every
harness (mock models), the embedded local model, and a person at the terminal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from normlab.agents import STRATEGIES, ScriptedAgent
from normlab.models import mock
from normlab.requests import INVALID, Text
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

P0, P1 = "player_0", "player_1"
TALK_PROMPT = "Write your message to the other player"
MOVE_PROMPT = "Answer 0 to cooperate or 1 to defect."

SCENARIO = """
name: cheap-talk
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: {rounds}, talk: true, max_message_chars: {max_chars}}}}}
agents:
  player_0: {agent}
  player_1: {{kind: scripted, strategy: test_talker, params: {{message: "Trust me."}}}}
episodes: {episodes}
seed: 4
cache: off
"""


class Talker(ScriptedAgent):
    """A tiny scripted talker: says `message` when asked for text (or `INVALID` / the object
    itself where `message` says so), plays tit-for-tat when asked for a move."""

    name = "test_talker"
    description = "Says its message, then plays tit-for-tat."
    defaults = {"message": "I will cooperate if you do."}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: Any) -> list[tuple[tuple, str]]:
        return []

    async def act(self, observation: Any, info: dict[str, Any], request: Any = None) -> Any:
        if isinstance(request, Text):
            message = self.params["message"]
            return INVALID if message == "INVALID" else message
        return 1 if int(observation["opponent_moves"][-1]) == 2 else 0


@pytest.fixture(autouse=True)
def talker(monkeypatch):
    monkeypatch.setitem(STRATEGIES, Talker.name, Talker)
    yield
    mock.unregister("talk")


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'talk.db'}")


def scenario(agent: str, rounds: int = 3, max_chars: int = 40, episodes: int = 1) -> Any:
    return parse_scenario(SCENARIO.format(agent=agent, rounds=rounds, max_chars=max_chars, episodes=episodes))


def rows_of(store: Store, run_id: str, agent: str) -> list[dict[str, Any]]:
    return [s for s in store.iter_steps(run_id) if s["agent"] == agent]


def events(row: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in row["info"].get("events", []) if e["type"] == kind]


def assert_legal_cheap_talk(rows: list[dict[str, Any]], rounds: int, max_chars: int) -> None:
    """Talk and act rows alternate, one pair a round; every message is a str within the
    limit, every move 0 or 1; each talk row holds the agent's message event."""
    assert [r["phase"] for r in rows] == ["talk", "act"] * rounds
    assert [r["t"] for r in rows] == list(range(2 * rounds))
    for r in rows[0::2]:
        assert isinstance(r["action"], str) and len(r["action"]) <= max_chars, r["action"]
        (message,) = events(r, "message")
        assert message["text"] == r["action"] and message["round"] == r["t"] // 2 + 1
        assert r["reward"] == 0.0
    assert all(r["action"] in (0, 1) for r in rows[1::2])


# --- (1) scripted talkers through the runner ----------------------------------------------


def test_scripted_talkers_through_the_runner(store):
    agent = '{kind: scripted, strategy: test_talker, params: {message: "Let us cooperate."}}'
    run_id = run_scenario(scenario(agent, rounds=3, episodes=2), store)
    run = store.get_run(run_id)
    assert run.status == "finished"
    for episode in store.episodes(run_id):
        rows = store.steps(episode.id)
        assert len(rows) == 2 * 3 * 2  # two steps a round, a row per player
        mine = [r for r in rows if r["agent"] == P0]
        theirs = [r for r in rows if r["agent"] == P1]
        assert_legal_cheap_talk(mine, 3, 40)
        assert_legal_cheap_talk(theirs, 3, 40)
        assert [r["action"] for r in mine] == ["Let us cooperate.", 0] * 3
        # the other's message is in the next observation: the act phase's, field and text
        for act in mine[1::2]:
            assert act["observation"]["opponent_message"] == "Trust me."
            assert 'the other player said "Trust me."' in act["observation"]["text"]
            assert act["observation"]["text"].endswith("Answer 0 to cooperate or 1 to defect.")
        for act in theirs[1::2]:
            assert 'the other player said "Let us cooperate."' in act["observation"]["text"]
        for talk in mine[0::2]:
            assert talk["observation"]["text"].endswith("the moves come next.")
        assert sum(r["reward"] for r in mine) == 9.0  # three rounds of mutual cooperation
    metrics = store.episodes(run_id)[0].metrics
    assert metrics["events"]["message"] == 6 and metrics["events"]["cooperate"] == 6


def test_invalid_in_talk_gets_the_empty_message(store):
    agent = "{kind: scripted, strategy: test_talker, params: {message: INVALID}}"
    run_id = run_scenario(scenario(agent, rounds=2), store)
    assert store.get_run(run_id).status == "finished"
    rows = rows_of(store, run_id, P0)
    assert [r["phase"] for r in rows] == ["talk", "act"] * 2
    for talk in rows[0::2]:
        assert talk["action"] is None  # the agent's own answer, INVALID, stored as null
        (invalid,) = events(talk, "invalid_action")
        assert invalid == {"type": "invalid_action", "agent": P0, "fallback": ""}
        assert events(talk, "message")[0]["text"] == ""
    assert all(r["action"] == 0 for r in rows[1::2])  # the act phase is untouched
    other = rows_of(store, run_id, P1)
    assert other[1]["observation"]["opponent_message"] == ""


def test_a_message_too_long_for_the_env_is_an_invalid_action_not_a_crash(store):
    agent = "{kind: scripted, strategy: test_talker, params: {message: " + "x" * 41 + "}}"
    run_id = run_scenario(scenario(agent, rounds=2, max_chars=40), store)
    assert store.get_run(run_id).status == "finished"
    rows = rows_of(store, run_id, P0)
    for talk in rows[0::2]:
        (invalid,) = events(talk, "invalid_action")
        assert invalid["agent"] == P0 and "fallback" not in invalid  # the env's own event
        assert events(talk, "message")[0]["text"] == ""
    assert rows_of(store, run_id, P1)[1]["observation"]["opponent_message"] == ""


# --- (2) LLM agents through every harness, mock models ------------------------------------


def _situation(messages: list[dict[str, Any]]) -> str:
    """The observation the model is asked about (a re-ask comes after it)."""
    return next(
        str(m["content"])
        for m in reversed(messages)
        if m["role"] == "user" and (TALK_PROMPT in str(m["content"]) or MOVE_PROMPT in str(m["content"]))
    )


def llm_answers(long_first: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    """A mock model answering cheap talk as each harness asks: a tool call where tools are
    offered, else JSON; it promises to cooperate, then cooperates while the other says
    "Trust me.". With `long_first` its first message is over the limit."""
    seen: list[dict[str, Any]] = []

    def model(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        situation = _situation(messages)
        talk = TALK_PROMPT in situation
        seen.append({"talk": talk, "situation": situation, "params": params})
        if talk:
            value: Any = "I will cooperate; please do too."
            if long_first and len(seen) == 1:
                value = "I " + "really " * 20 + "will cooperate."
        else:
            value = 0 if '"Trust me."' in situation else 1
        if params.get("tools"):
            return {"tool_calls": [{"name": "act", "arguments": {"action": value}}]}
        return {"content": json.dumps({"action": value})}

    return model, seen


@pytest.mark.parametrize("harness", ["direct", "react", "reflective", "langchain"])
def test_llm_agents_talk_and_move_through_every_harness(store, harness):
    model, seen = llm_answers()
    mock.register("talk", model)
    run_id = run_scenario(scenario(f"{{kind: llm, model: mock/talk, harness: {harness}}}", rounds=3), store)
    assert store.get_run(run_id).status == "finished"
    rows = rows_of(store, run_id, P0)
    assert_legal_cheap_talk(rows, 3, 40)
    assert [r["action"] for r in rows] == ["I will cooperate; please do too.", 0] * 3
    assert not any(events(r, "invalid_action") for r in rows)
    # the model saw the other's message before moving
    acts = [s for s in seen if not s["talk"]]
    assert len(acts) == 3 and all('the other player said "Trust me."' in s["situation"] for s in acts)
    # each phase is asked with its own request: a text of at most 40 characters, then a choice
    talks = [s for s in seen if s["talk"]]
    assert len(talks) == 3
    if harness in ("direct", "reflective"):
        assert talks[0]["params"]["response_format"]["schema"]["properties"]["action"] == {"type": "string", "minLength": 0, "maxLength": 40}
        assert acts[0]["params"]["response_format"]["schema"]["properties"]["action"]["enum"] == [0, 1]
    else:
        act_tool = next(t for t in talks[0]["params"]["tools"] if t["function"]["name"] == "act")
        assert act_tool["function"]["parameters"]["properties"]["action"]["maxLength"] == 40
    # the other player's row: it saw the LLM's message
    assert 'the other player said "I will cooperate; please do too."' in rows_of(store, run_id, P1)[1]["observation"]["text"]


def test_a_message_over_the_limit_is_refused_and_reasked(store):
    model, seen = llm_answers(long_first=True)
    mock.register("talk", model)
    run_id = run_scenario(scenario("{kind: llm, model: mock/talk, harness: direct}", rounds=1), store)
    talk, act = rows_of(store, run_id, P0)
    assert talk["action"] == "I will cooperate; please do too." and act["action"] == 0
    assert talk["info"]["harness"] == {"reasks": 1}
    reask = store.model_calls(store.episodes(run_id)[0].id)[1]["request"][-1]
    assert reask["role"] == "user" and "characters; it must have 0 to 40" in reask["content"]


# --- (3) the embedded local model ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["direct", "react"])
def test_local_model_plays_cheap_talk(store, harness):
    agent = f"{{kind: llm, model: local/smollm2-135m, harness: {harness}, max_tokens: 48, temperature: 0.7}}"
    run_id = run_scenario(scenario(agent, rounds=2, max_chars=60), store)
    assert store.get_run(run_id).status == "finished"
    rows = rows_of(store, run_id, P0)
    assert [r["phase"] for r in rows] == ["talk", "act"] * 2
    for r in rows[0::2]:
        # a legal message, or (a model that never gave one) the empty fallback
        assert r["action"] is None or (isinstance(r["action"], str) and len(r["action"]) <= 60)
        assert isinstance(events(r, "message")[0]["text"], str) and len(events(r, "message")[0]["text"]) <= 60
    assert all(r["action"] in (0, 1) for r in rows[1::2])
    calls = store.model_calls(store.episodes(run_id)[0].id)
    assert len(calls) >= 4 and all(c["error"] is None for c in calls)


# --- (4) a person at the terminal ---------------------------------------------------------


def test_a_human_seat_talks_and_moves(tmp_path, monkeypatch, capsys):
    """Typed answers from stdin: a message taken as typed (one over the limit is refused and
    asked again in the same turn), a move by number or name."""
    import io
    import sys

    typed = ["I will cooperate.", "0", "x" * 41, "hello again", "defect"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in typed)))
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    run_id = run_scenario(scenario("{kind: human, name: Ada}", rounds=2, max_chars=40), store)
    assert store.get_run(run_id).status == "finished"
    rows = rows_of(store, run_id, P0)
    assert [r["action"] for r in rows] == ["I will cooperate.", 0, "hello again", 1]
    assert_legal_cheap_talk(rows, 2, 40)
    shown = capsys.readouterr().err
    assert "Trust me." in shown and "characters; it must have 0 to 40" in shown


# --- the shipped scenario -----------------------------------------------------------------


def test_the_shipped_scenario_runs(store):
    """scenarios/ipd_cheap_talk.yaml: normlab's own scripted strategies talk (param `message`)
    and move; the defector's promises change nothing for tit-for-tat."""
    from pathlib import Path

    from normlab.scenario import load_scenario

    path = Path(__file__).parents[1] / "scenarios" / "ipd_cheap_talk.yaml"
    run_id = run_scenario(load_scenario(path), store)
    assert store.get_run(run_id).status == "finished"
    for episode in store.episodes(run_id):
        rows = store.steps(episode.id)
        for agent in (P0, P1):
            assert_legal_cheap_talk([r for r in rows if r["agent"] == agent], 10, 200)
        assert {a: sum(r["reward"] for r in rows if r["agent"] == a) for a in (P0, P1)} == {P0: 9.0, P1: 14.0}
        assert episode.metrics["events"]["message"] == 20

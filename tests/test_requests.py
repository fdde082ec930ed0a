"""The per-turn request contract: schemas, reading answers back, the ToolCall space, INVALID."""

from __future__ import annotations

import asyncio
import pickle
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.conversions import parallel_to_aec

from normlab import envs
from normlab.requests import (
    INVALID,
    Choice,
    Composite,
    Integer,
    Number,
    SpaceRequest,
    Text,
    Tool,
    Tools,
    request_for_space,
)
from normlab.spaces import ToolCall

LOOKUP = Tool("lookup_order", "Find an order.", {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}, query=True)
REFUND = Tool(
    "issue_refund",
    "Refund an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}, "required": ["order_id", "amount"], "additionalProperties": False},
)

EVERY_KIND = [
    Choice(("cooperate", "defect")),
    Choice(("rock", "paper"), ("rock", "paper")),
    Integer(0, 100),
    Number(-1.0, 1.0),
    Text(20, tag="speech"),
    Tools((LOOKUP, REFUND)),
    Composite.of(message=Text(30), keep=Integer(0, 10)),
    SpaceRequest(spaces.MultiBinary(3)),
]


@pytest.mark.parametrize("request_", EVERY_KIND, ids=lambda r: r.kind)
def test_samples_are_legal_and_match_the_schema(request_):
    rng = np.random.default_rng(0)
    space = request_.space()
    for _ in range(20):
        value = request_.sample(rng)
        action, error = request_.coerce(value if not isinstance(value, np.ndarray) else value.tolist())
        assert error is None, (value, error)
        plain = action.tolist() if isinstance(action, np.ndarray) else action
        jsonschema.validate(plain, request_.schema())
        assert space.contains(np.asarray(action) if isinstance(request_, (Integer, Number)) else action)
    assert request_.to_json()["kind"] == request_.kind and request_.describe()


@pytest.mark.parametrize(
    ("request_", "bad"),
    [
        (Choice(("cooperate", "defect")), 2),
        (Choice(("cooperate", "defect")), True),
        (Integer(0, 10), 11),
        (Integer(0, 10), 2.5),
        (Integer(0, 10), float("nan")),
        (Integer(0, 10), 10**5000),
        (Number(0, 1), float("inf")),
        (Number(0, 1), "a lot"),
        (Text(5), "too long for five"),
        (Text(5), 12),
        (Tools((LOOKUP, REFUND)), {"tool": "delete_everything", "arguments": {}}),
        (Tools((LOOKUP, REFUND)), {"tool": "issue_refund", "arguments": {"order_id": "A1"}}),
        (Tools((LOOKUP, REFUND)), {"tool": "issue_refund", "arguments": {"order_id": "A1", "amount": -3}}),
        (Tools((LOOKUP, REFUND)), "issue_refund"),
        (Composite.of(message=Text(30), keep=Integer(0, 10)), {"message": "hi"}),
        (Composite.of(message=Text(30), keep=Integer(0, 10)), {"message": "hi", "keep": 11}),
    ],
    ids=lambda v: getattr(v, "kind", type(v).__name__),
)
def test_bad_values_are_invalid_with_a_reason(request_, bad):
    action, error = request_.coerce(bad)
    assert action is INVALID and error


def test_plain_answers_are_read_as_people_and_weak_models_write_them():
    choice = Choice(("cooperate", "defect"))
    assert choice.read("I will defect.") == (1, None)
    assert choice.read(" 0 ") == (0, None)
    assert choice.read("cooperate or defect?")[0] is INVALID  # names both
    assert Integer(0, 100).read("I take 12 tons") == (12, None)
    assert Integer(0, 100).read("12 or 13")[0] is INVALID
    assert Number(0, 5).read("2.5") == (2.5, None)
    assert Text(40).read("  Deal: I keep four.  ") == ("Deal: I keep four.", None)
    tools = Tools((LOOKUP, REFUND))
    call = {"tool": "lookup_order", "arguments": {"order_id": "A1"}}
    assert tools.coerce({"name": "lookup_order", "arguments": '{"order_id": "A1"}'}) == (call, None)
    assert tools.is_query("lookup_order") and not tools.is_query("issue_refund")
    assert tools.ask(call)["success"] is False  # unbound: an error result, not an exception
    bound = tools.bound(lambda c: {"success": True, "data": c["arguments"]["order_id"]})
    assert bound == tools and bound.ask(call) == {"success": True, "data": "A1"}


def test_invalid_is_one_value_falsy_and_survives_pickling():
    assert INVALID is not None and not INVALID and repr(INVALID) == "INVALID"
    assert pickle.loads(pickle.dumps(INVALID)) is INVALID
    assert pickle.loads(pickle.dumps({"a": INVALID}))["a"] is INVALID


def test_static_spaces_stand_for_requests():
    assert request_for_space(spaces.Discrete(2), ["cooperate", "defect"]) == Choice(("cooperate", "defect"), (0, 1))
    assert request_for_space(spaces.Discrete(3, start=1)).actions == (1, 2, 3)
    text = request_for_space(spaces.Text(12, min_length=2))
    assert isinstance(text, Text) and (text.min_chars, text.max_chars) == (2, 12)
    assert text.coerce("hi!")[0] is INVALID  # "!" is outside Gymnasium's default charset
    assert request_for_space(spaces.Box(0, 9, shape=(), dtype=np.int64)) == Integer(0, 9)
    assert isinstance(request_for_space(spaces.Box(0, 1, shape=(2,))), SpaceRequest)
    nested = request_for_space(spaces.Dict({"message": spaces.Text(10), "keep": spaces.Discrete(11)}))
    assert isinstance(nested, Composite) and sorted(n for n, _ in nested.fields) == ["keep", "message"]
    tools = request_for_space(ToolCall([LOOKUP.openai(), REFUND.openai()]))
    assert isinstance(tools, Tools) and [t.name for t in tools.tools] == ["lookup_order", "issue_refund"]


def test_tool_call_space_checks_names_and_arguments():
    space = ToolCall([LOOKUP.openai(), REFUND.openai()], seed=3)
    draws = [space.sample() for _ in range(30)]
    assert all(space.contains(d) for d in draws)
    assert {d["tool"] for d in draws} == {"lookup_order", "issue_refund"}
    space.seed(3)
    assert [space.sample() for _ in range(30)] == draws  # seeded
    assert not space.contains({"tool": "issue_refund", "arguments": {"order_id": "A1", "amount": float("nan")}})
    assert not space.contains({"tool": "issue_refund", "arguments": {"order_id": "A1", "amount": 1, "extra": 2}})
    assert not space.contains([1, 2])
    with pytest.raises(ValueError, match="distinct"):
        ToolCall([LOOKUP.openai(), LOOKUP.openai()])


class GivesUp:
    """An agent with no legal action to give, every turn."""

    async def reset(self, seed: int) -> None:
        pass

    async def act(self, observation, info, request=None):
        return INVALID


def test_invalid_on_an_aec_env_gets_the_fallback_and_an_event(monkeypatch):
    """INVALID reaches no env: the runner carries out the env's fallback (defect) and records
    an invalid_action event in the agent's own row, also through PettingZoo's AEC API (where
    None would mean a finished agent)."""
    from normlab import runner
    from normlab.scenario import parse_scenario

    real_make = envs.make
    monkeypatch.setattr(envs, "make", lambda env_id, **params: parallel_to_aec(real_make(env_id, **params)))
    scenario = parse_scenario(
        "name: aec\nenv: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 3}}\n"
        "agents:\n  player_0: {kind: scripted, strategy: always_cooperate}\n  player_1: {kind: scripted, strategy: always_cooperate}\n"
    )
    from normlab.agents import resolve_agents
    from normlab.assets import RunAssets

    factories = resolve_agents(scenario.agents, RunAssets(None))
    factories["player_0"] = SimpleNamespace(new_episode=lambda context: GivesUp())
    result = asyncio.run(runner.play_episode(scenario, 0, factories=factories))
    mine = [s for s in result.steps if s["agent"] == "player_0"]
    theirs = [s for s in result.steps if s["agent"] == "player_1"]
    assert len(mine) == 3 and all(s["action"] == "null" for s in mine)
    import json

    for row in mine:
        events = json.loads(row["info"])["events"]
        assert events[0] == {"type": "invalid_action", "agent": "player_0", "fallback": 1}
        assert events[1]["type"] == "defect"  # the fallback was carried out
    assert [s["reward"] for s in theirs] == [0.0, 0.0, 0.0]  # sucker's payoff each round
    assert result.returns["player_0"] == 15.0


def test_tool_call_validators_are_checked_once_per_schema_and_keep_their_own_copy():
    from normlab.spaces import _validator

    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}
    first = _validator(schema)
    assert _validator(dict(schema)) is first  # equal schemas share one checked validator
    schema["properties"]["n"]["maximum"] = 100  # the caller's change does not reach the cached one
    assert not first.is_valid({"n": 50})
    assert _validator(schema) is not first and _validator(schema).is_valid({"n": 50})
    space = ToolCall([{"name": "pick", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}}])
    assert space.contains({"tool": "pick", "arguments": {"n": 2}}) and not space.contains({"tool": "pick", "arguments": {"n": 9}})

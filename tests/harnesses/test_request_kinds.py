"""Every request kind through every harness (mock models): the harness builds the turn's
instructions, schema and parser from the env's request, and the runner stores the action."""

from __future__ import annotations

import json
from typing import Any

import gymnasium
import pytest
from gymnasium import spaces

from normlab import envs
from normlab.envs import registry
from normlab.envs.base import EnvBase
from normlab.models import mock
from normlab.requests import Choice, Composite, Integer, Number, Text, Tool, Tools
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

LOOKUP = Tool("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}, query=True)
ANSWER = Tool("submit", "Submit a number.", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]})

REQUESTS: dict[str, Any] = {
    "choice": Choice(("left", "right")),
    "integer": Integer(0, 10),
    "number": Number(0.0, 5.0),
    "text": Text(40, tag="speech"),
    "tool": Tools((LOOKUP, ANSWER)),
    "composite": Composite.of(message=Text(40), keep=Integer(0, 10)),
}
#: what the mock model answers for each kind, and the action the env must receive
ANSWERS: dict[str, Any] = {
    "choice": 1,
    "integer": 7,
    "number": 2.5,
    "text": "hello there",
    "tool": {"tool": "submit", "arguments": {"n": 3}},
    "composite": {"message": "fair", "keep": 4},
}
KINDS = list(REQUESTS)


class KindsEnv(EnvBase, gymnasium.Env):
    """One turn per request kind; the text names the kind; each action is echoed as an event."""

    metadata = {"name": "test/Kinds-v0", "render_modes": []}
    event_types = {**EnvBase.event_types, "got": "the action the env received", "looked_up": "a query tool call"}

    def __init__(self) -> None:
        self.action_space = spaces.Text(200)
        self.observation_space = spaces.Text(200)
        self.turn = 0
        self.queries: list[dict[str, Any]] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self.turn = 0
        return self._text(), {}

    def _text(self) -> str:
        return f"Give a {KINDS[self.turn]}." if self.turn < len(KINDS) else "done"

    def action_request(self, agent: str | None = None) -> Any:
        return REQUESTS[KINDS[self.turn]]

    def answer_query(self, agent: str | None, call: dict[str, Any]) -> Any:
        self.queries.append(call)
        return {"success": True, "data": f"{call['arguments']['word']} means 3"}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        events = [{"type": "looked_up", "call": q} for q in self.queries] + [{"type": "got", "kind": KINDS[self.turn], "value": action}]
        self.queries = []
        self.turn += 1
        return self._text(), 0.0, self.turn >= len(KINDS), False, {"events": events}


@pytest.fixture
def kinds_env():
    envs.register("test/Kinds-v0", f"{__name__}:KindsEnv", "gymnasium", "one turn per request kind")
    yield
    registry._SPECS.pop("test/Kinds-v0", None)
    gymnasium.registry.pop("test/Kinds-v0", None)


def kind_of(messages: list[dict]) -> str:
    # the last situation asked about (the reflective harness shows earlier ones first)
    asked = [m["content"] for m in messages if m["role"] == "user" and str(m["content"]).startswith("Give a ")]
    return asked[-1].split("Give a ", 1)[1].rstrip(".")


def answered_lookup(messages: list[dict]) -> bool:
    return any("means 3" in str(m.get("content")) for m in messages)


def model(messages: list[dict], **params: Any) -> dict[str, Any]:
    """Answers each kind as the harness asks: a tool call where tools are offered, else JSON."""
    kind = kind_of(messages)
    tools = [t["function"]["name"] for t in params.get("tools") or []]
    if kind == "tool":
        call = {"name": "submit", "arguments": {"n": 3}} if answered_lookup(messages) else {"name": "lookup", "arguments": {"word": "tri"}}
        if tools:
            return {"tool_calls": [call]}
        return {"content": json.dumps({"action": {"tool": call["name"], "arguments": call["arguments"]}})}
    if tools:
        assert tools[0] == "act"
        return {"tool_calls": [{"name": "act", "arguments": {"action": ANSWERS[kind]}}]}
    return {"content": json.dumps({"action": ANSWERS[kind]})}


SCENARIO = """
name: kinds
env: {{id: test/Kinds-v0}}
agents:
  agent: {{kind: llm, model: mock/kinds, harness: {harness}}}
episodes: 1
"""


@pytest.mark.parametrize("harness", ["direct", "react", "reflective", "langchain"])
def test_every_request_kind_through_every_harness(tmp_path, kinds_env, harness):
    seen: list[dict] = []

    def recording(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append({"kind": kind_of(messages), "params": params})
        return model(messages, **params)

    mock.register("kinds", recording)
    try:
        store = Store(f"sqlite:///{tmp_path / 'k.db'}")
        run_id = run_scenario(parse_scenario(SCENARIO.format(harness=harness)), store)
    finally:
        mock.unregister("kinds")
    assert store.get_run(run_id).status == "finished"
    steps = list(store.iter_steps(run_id))
    assert len(steps) == len(KINDS)  # the lookup answered inside its turn did not advance the env
    got = {e["kind"]: e["value"] for s in steps for e in s["info"]["events"] if e["type"] == "got"}
    assert got == ANSWERS
    assert [s["action"] for s in steps] == [ANSWERS[k] for k in KINDS]
    # the query was answered by the env inside the tool turn and is recorded with that step
    tool_step = steps[KINDS.index("tool")]
    assert [e["call"] for e in tool_step["info"]["events"] if e["type"] == "looked_up"] == [{"tool": "lookup", "arguments": {"word": "tri"}}]
    if harness in ("direct", "reflective"):
        # each turn is constrained to its own request's schema
        schemas = {c["kind"]: c["params"]["response_format"]["schema"]["properties"]["action"] for c in seen}
        assert schemas["integer"] == {"type": "integer", "minimum": 0, "maximum": 10}
        assert schemas["text"] == {"type": "string", "minLength": 0, "maxLength": 40}
        assert schemas["composite"]["required"] == ["message", "keep"]
        assert [o["properties"]["tool"] for o in schemas["tool"]["anyOf"]] == [{"const": "lookup"}, {"const": "submit"}]
    else:
        offered = {c["kind"]: [t["function"]["name"] for t in c["params"]["tools"]] for c in seen}
        assert offered["tool"] == ["lookup", "submit"] and offered["integer"] == ["act"]


def test_a_bad_answer_for_the_turns_request_is_reasked_with_its_error(tmp_path, kinds_env):
    replies = iter(['{"action": 11}', '{"action": 7}'])

    def stubborn(messages: list[dict], **params: Any) -> dict[str, Any]:
        if kind_of(messages) == "integer":
            return {"content": next(replies)}
        return model(messages, **params)

    mock.register("kinds", stubborn)
    seen: list[list[dict]] = []
    try:
        store = Store(f"sqlite:///{tmp_path / 'k.db'}")
        run_id = run_scenario(parse_scenario(SCENARIO.format(harness="direct")), store)
        calls = [c for ep in store.episodes(run_id) for c in store.model_calls(ep.id)]
        seen = [c["request"] for c in calls if kind_of(c["request"]) == "integer"]
    finally:
        mock.unregister("kinds")
    step = list(store.iter_steps(run_id))[KINDS.index("integer")]
    assert step["action"] == 7 and step["info"]["harness"] == {"reasks": 1}
    assert "11 is not a whole number from 0 to 10" in seen[1][-1]["content"]

"""Structured output for served models (`structured_output: auto | json_schema | off`).

What each agent config sends as `response_format` (to a recording server), and a real
OpenAI-compatible server (llama_cpp.server on the embedded 135M model) playing IPD legally
with the schema, as an `openai/` model with an `api_base`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from gymnasium import spaces

from normlab.agents.base import AgentContext
from normlab.agents.llm import LLMAgentFactory, structured_output
from normlab.models import ModelError
from normlab.scenario import LLMAgentConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llama_server import llama_server  # noqa: E402,F401  (the session fixture)

SCHEMA = {"type": "object", "properties": {"action": {"type": "integer", "enum": [0, 1]}}, "required": ["action"]}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "action", "schema": {**SCHEMA, "additionalProperties": False}, "strict": True},
}
JSON_OBJECT = {"type": "json_object", "schema": SCHEMA}


class Log:
    """What the runner takes from an agent's decisions: model_call rows and harness notes."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.notes: dict = {}


def act_once(config: LLMAgentConfig, log: Log | None = None) -> object:
    """One IPD turn of an LLM agent built from `config`; a failed call is None."""
    assets = SimpleNamespace(skills={}, tool_objects=lambda agent_id: [])
    context = AgentContext(agent_id="player_0", action_space=spaces.Discrete(2), action_meanings=["cooperate", "defect"])
    agent = LLMAgentFactory.resolve(config, "player_0", assets).new_episode(context)
    asyncio.run(agent.reset(0))
    try:
        decision = asyncio.run(agent.act({"text": "Round 1 of 10. Cooperate or defect?"}, {}))
    except ModelError:
        if log is not None:
            log.calls.extend(agent.take_model_calls())
        return None
    if log is not None:
        log.calls.extend(decision.model_calls)
        log.notes.update(decision.notes or {})
    return decision.action


def llm(model: str, **fields: object) -> LLMAgentConfig:
    return LLMAgentConfig(kind="llm", model=model, max_reasks=0, call_retries=0, max_tokens=16, **fields)


@pytest.fixture
def keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "DEEPINFRA_API_KEY"):
        monkeypatch.setenv(name, "sk-local")


# --- config -> request ------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, fields, expected",
    [
        ("openai/x", {}, JSON_SCHEMA),
        ("hosted_vllm/x", {}, JSON_SCHEMA),
        ("openai/x", {"structured_output": "off"}, None),
        ("openai/x", {"constrain": False}, None),
        ("hosted_vllm/x", {"structured_output": "json_schema"}, JSON_SCHEMA),
        # LiteLLM knows this model, and that it takes no response schema
        ("deepinfra/meta-llama/Meta-Llama-3-8B-Instruct", {}, None),
    ],
    ids=["openai-api-base", "hosted-vllm", "off", "constrain-false", "json-schema", "litellm-no-schema"],
)
def test_server_request_carries_the_schema(recording_server, keys, model, fields, expected):
    server = recording_server()
    log = Log()
    assert act_once(llm(model, api_base=server.url, **fields), log) == 0
    (request,) = server.requests
    assert request["body"].get("response_format") == expected
    # the model_call row records what was sent
    (row,) = log.calls
    assert row["params"].get("response_format") == expected


def test_ollama_gets_the_schema_as_its_format(recording_server):
    """LiteLLM turns a json_schema response_format into Ollama's `format` (the recording
    server's OpenAI-shaped reply is not Ollama's, so the call itself fails)."""
    server = recording_server()
    act_once(llm("ollama/x", api_base=server.url.removesuffix("/v1")))
    assert server.requests, "nothing reached the server"
    assert server.requests[0]["body"].get("format") == {**SCHEMA, "additionalProperties": False}


@pytest.mark.parametrize(
    "model, fields, expected",
    [
        ("mock/m", {}, ("json_object", False)),
        ("local/smollm2-135m", {}, ("json_object", False)),
        ("local/smollm2-135m", {"structured_output": "json_schema"}, ("json_schema", False)),
        ("mock/m", {"constrain": False}, (None, False)),
        ("ollama/x", {}, ("json_schema", True)),
        ("ollama_chat/x", {}, ("json_schema", True)),
        ("lm_studio/x", {}, ("json_schema", True)),
        ("openai/x", {"api_base": "http://127.0.0.1:1/v1"}, ("json_schema", True)),
        ("openai/gpt-4o-mini", {}, ("json_schema", False)),
        ("openai/gpt-3.5-turbo", {}, (None, False)),
        ("openai/gpt-3.5-turbo", {"structured_output": "json_schema"}, ("json_schema", False)),
    ],
)
def test_structured_output_decision(model, fields, expected):
    assert structured_output(llm(model, **fields)) == expected


def test_own_providers_keep_llama_cpp_form():
    log = Log()
    assert act_once(llm("mock/m", params={"mock": {"reply": '{"action": 1}'}}), log) == 1
    assert log.calls[0]["params"]["response_format"] == JSON_OBJECT


def test_json_schema_form_constrains_the_local_model():
    """local.py reads OpenAI's form as well as llama.cpp's."""
    from normlab.models.local import _response_schema

    assert _response_schema(JSON_SCHEMA) == (True, JSON_SCHEMA["json_schema"]["schema"])
    assert _response_schema(JSON_OBJECT) == (True, SCHEMA)


class RefusingServer:
    """A model client whose server refuses the json_schema form (as llama_cpp.server does),
    or fails every call with `failure`."""

    def __init__(self, failure: str | None = None):
        self.model, self.api_base = "openai/x", f"http://refusing-{id(self)}/v1"
        self.failure = failure
        self.sent: list[dict | None] = []

    async def complete(self, messages, *, response_format=None, **kwargs):
        from normlab.models import ModelReply

        self.sent.append(response_format)
        if self.failure:
            raise ModelError(f"openai/x: {self.failure}")
        if response_format and response_format["type"] == "json_schema":
            raise ModelError("openai/x: InternalServerError: OpenAIException - 1 validation error:")
        return ModelReply(content='{"action": 1}')


def direct_harness(client, fallback: bool = True):
    from normlab.harnesses import HarnessContext
    from normlab.harnesses.direct import DirectHarness

    notes: dict = {}
    ctx = HarnessContext(
        agent_id="p", action_space=spaces.Discrete(2), client=client, max_reasks=0,
        schema_style="json_schema", schema_fallback=fallback, annotate=notes.__setitem__,
    )  # fmt: skip
    return DirectHarness(ctx), notes


def test_a_refused_json_schema_falls_back_once_per_server():
    client = RefusingServer()
    harness, notes = direct_harness(client)
    assert asyncio.run(harness.decide({"text": "x"}, {})) == 1
    assert client.sent == [JSON_SCHEMA, JSON_OBJECT]
    assert notes["structured_output"].startswith("json_object: the json_schema form failed")
    # the next agent of the same server sends llama.cpp's form straight away
    again, _ = direct_harness(client)
    assert asyncio.run(again.decide({"text": "x"}, {})) == 1
    assert client.sent[2:] == [JSON_OBJECT]


@pytest.mark.parametrize("fallback, failure", [(False, None), (True, "could not connect to http://x/v1"), (True, "Timeout: timed out")])
def test_no_fallback_when_asked_for_json_schema_or_the_server_is_down(fallback, failure):
    client = RefusingServer(failure)
    harness, _ = direct_harness(client, fallback)
    with pytest.raises(ModelError):
        asyncio.run(harness.decide({"text": "x"}, {}))
    assert client.sent == [JSON_SCHEMA]


# --- a real server ----------------------------------------------------------------------

SCENARIO = """
name: served-structured
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: 10}}}}
agents:
  player_0:
    kind: llm
    model: openai/smollm2
    api_base: {url}
    harness: direct
    max_reasks: 0
    max_tokens: 24
    temperature: 0.7
    structured_output: {mode}
  player_1: {{kind: scripted, strategy: tit_for_tat}}
episodes: 2
seed: 4
cache: {cache}
"""


def play(url: str, store, mode: str = "auto", cache: str = "off") -> tuple[str, list[dict], list[dict]]:
    from normlab.runner import run_scenario
    from normlab.scenario import parse_scenario

    run_id = run_scenario(parse_scenario(SCENARIO.format(url=url, mode=mode, cache=cache)), store)
    steps, calls = [], []
    for episode in store.episodes(run_id):
        steps += [s for s in store.steps(episode.id) if s["agent"] == "player_0"]
        calls += store.model_calls(episode.id)
    return run_id, steps, calls


def legal_turns(steps: list[dict]) -> int:
    return sum(1 for s in steps if s["action"] in (0, 1) and "invalid" not in (s["info"].get("harness") or {}))


@pytest.mark.slow
def test_served_model_answers_legally_with_the_schema(llama_server, tmp_path, monkeypatch):
    """llama_cpp.server takes only llama.cpp's json_object form: the agent's first json_schema
    call is refused, it falls back, and the 135M model then answers legally: 20 of 20 turns
    here, against 6 of 20 with `structured_output: off` (measured once; not run in the suite,
    it costs a minute of unconstrained generation)."""
    from normlab.harnesses import base
    from normlab.store import Store

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    base._REFUSED_JSON_SCHEMA.clear()
    store = Store(f"sqlite:///{tmp_path / 'served.db'}")
    run_id, steps, calls = play(llama_server.url, store, cache="on")
    assert store.get_run(run_id).status == "finished"
    assert len(steps) == 20
    assert legal_turns(steps) >= 18, [c["response"] for c in calls]
    answered = [c for c in calls if c["error"] is None]
    assert len(answered) == 20
    assert all(c["params"]["response_format"] == JSON_OBJECT for c in answered)
    refused = [c for c in calls if c["error"] is not None]
    assert refused and all(c["params"]["response_format"] == JSON_SCHEMA for c in refused)
    assert "structured_output" in (steps[0]["info"].get("harness") or {})

    # a replay in a fresh process (no memory of the refusal) finds the fallback's replies
    base._REFUSED_JSON_SCHEMA.clear()
    _, again, replayed = play(llama_server.url, store, cache="replay")
    assert [s["action"] for s in again] == [s["action"] for s in steps]
    assert all(c["cache_hit"] for c in replayed if c["error"] is None)

"""The `langchain` harness with mock models: ChatLiteLLM over normlab's ModelClient, any BaseTool."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # normlab.models.mock imports LiteLLM

import pytest

from normlab.harnesses import ToolLoopParams
from normlab.requests import Tool, Tools
from gymnasium import spaces
from langchain_core.tools import tool

from normlab.harnesses import HARNESSES
from normlab.harnesses.base import INVALID, HarnessContext
from normlab.harnesses.langchain import LangChainHarness
from normlab.harnesses.skills import Skill
from normlab.models import ModelClient, ModelError, ModelResources, RetryPolicy, mock
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

MEANINGS = ["cooperate", "defect"]
OBSERVATION = {"text": "Round 1 of 3. Choose: cooperate or defect."}
NAME = "lc"


@tool
def lookup(topic: str) -> str:
    """Look up what the village knows about a topic."""
    return f"the village says {topic} pays off in the long run"


@tool
def broken(topic: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"the archive about {topic} is on fire")


@pytest.fixture(autouse=True)
def fresh_mock():
    mock.reset_calls()
    yield
    mock.unregister(NAME)


def harness(rows: list | None = None, resources: ModelResources | None = None, **kwargs: Any) -> tuple[LangChainHarness, dict]:
    notes: dict[str, Any] = {}
    client = ModelClient(
        f"mock/{NAME}",
        record=rows.append if rows is not None else None,
        resources=resources,
        retry=RetryPolicy(attempts=1),
    )
    ctx = HarnessContext(
        agent_id="player_0",
        action_space=spaces.Discrete(2),
        client=client,
        action_meanings=MEANINGS,
        annotate=notes.__setitem__,
        **kwargs,
    )
    h = LangChainHarness(ctx)
    h.reset(11)
    return h, notes


def decide(h: LangChainHarness) -> Any:
    return asyncio.run(h.decide(OBSERVATION, {}))


def act(action: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": "act", "arguments": {"action": action}}]}


def tool_names(params: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in params.get("tools") or []]


def user_tool_then_act(tool_name: str, seen: list) -> Any:
    """A model that calls a user tool first, then acts once a tool message has come back."""

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append((messages, params))
        if messages[-1]["role"] == "tool":
            return act(0)
        return {"tool_calls": [{"name": tool_name, "arguments": {"topic": "trust"}}]}

    return model


def test_registered_and_a_tool_harness():
    assert HARNESSES["langchain"].load() is LangChainHarness
    assert LangChainHarness.uses_tools and HARNESSES["langchain"].uses_tools


def test_act_tool_call_is_the_action():
    seen: list = []
    mock.register(NAME, lambda messages, **params: seen.append((messages, params)) or act(1))
    h, notes = harness()
    assert decide(h) == 1
    ((messages, params),) = seen
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "`act` tool" in messages[0]["content"] and messages[1]["content"] == OBSERVATION["text"]
    assert tool_names(params) == ["act"]
    assert isinstance(params["seed"], int) and params["max_tokens"] == 256
    assert "invalid" not in notes


def test_act_by_name_and_a_bad_value_gets_an_error_back():
    seen: list = []

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append(messages)
        return act(7) if len(seen) == 1 else act("defect")

    mock.register(NAME, model)
    h, _ = harness()
    assert decide(h) == 1
    last = seen[1][-1]
    assert last["role"] == "tool" and "7 is not one of" in last["content"]
    assert seen[1][-2]["role"] == "assistant" and seen[1][-2]["tool_calls"][0]["id"] == last["tool_call_id"]


def test_env_tools_are_the_action():
    env_tool = {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund a customer.",
            "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]},
        },
    }
    seen: list = []

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append(params)
        return {"tool_calls": [{"name": "issue_refund", "arguments": {"amount": 12.5}}]}

    mock.register(NAME, model)
    h, _ = harness(request=Tools((Tool("issue_refund", "Refund a customer.", env_tool["function"]["parameters"]),)))
    assert decide(h) == {"tool": "issue_refund", "arguments": {"amount": 12.5}}
    assert seen[0]["tools"] == [env_tool]


def test_user_tool_result_reaches_the_model_then_it_acts():
    seen: list = []
    mock.register(NAME, user_tool_then_act("lookup", seen))
    h, notes = harness(extra_tools=[[lookup]])
    assert decide(h) == 0
    assert len(seen) == 2
    assert tool_names(seen[0][1]) == ["act", "lookup"]
    second = seen[1][0]
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert second[-1] == {"role": "tool", "content": "the village says trust pays off in the long run", "tool_call_id": second[-2]["tool_calls"][0]["id"]}
    assert notes["tool_calls"] == [
        {"name": "lookup", "arguments": {"topic": "trust"}, "result": "the village says trust pays off in the long run", "error": False}
    ]


def test_a_failing_user_tool_answers_with_its_error():
    seen: list = []
    mock.register(NAME, user_tool_then_act("broken", seen))
    h, notes = harness(extra_tools=[broken])
    assert decide(h) == 0
    message = seen[1][0][-1]
    assert message["role"] == "tool" and "the archive about trust is on fire" in message["content"]
    assert notes["tool_calls"][0]["error"] is True and "on fire" in notes["tool_calls"][0]["result"]


def test_bad_arguments_and_unknown_tools_get_error_messages():
    seen: list = []

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append(messages)
        if len(seen) == 1:
            return {"tool_calls": [{"name": "lookup", "arguments": {"wrong": 1}}, {"name": "teleport", "arguments": {}}]}
        return act(1)

    mock.register(NAME, model)
    h, _ = harness(extra_tools=[lookup])
    assert decide(h) == 1
    bad_args, unknown = seen[1][-2], seen[1][-1]
    assert bad_args["role"] == "tool" and bad_args["content"].startswith("error:") and "topic" in bad_args["content"]
    assert unknown["role"] == "tool" and "unknown tool 'teleport'" in unknown["content"]


def test_final_answer_text_is_parsed():
    mock.register(NAME, {"reply": '{"action": 1}'})
    h, notes = harness()
    assert decide(h) == 1
    assert "invalid" not in notes


def test_garbage_until_the_iteration_limit_is_invalid():
    seen: list = []

    def model(messages: list[dict], **params: Any) -> str:
        seen.append(messages)
        return "I would rather talk about the weather."

    mock.register(NAME, model)
    h, notes = harness(params=ToolLoopParams(max_iterations=3))
    assert decide(h) is INVALID
    assert len(seen) == 3
    assert "could not be used" in seen[1][-1]["content"]
    assert notes["invalid"]["iterations"] == 3 and "no action found" in notes["invalid"]["error"]


def test_on_demand_load_skill_returns_the_body():
    skill = Skill(name="care-first", description="Put the other player's welfare first.", body="Always cooperate first.", source="test")
    seen: list = []

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append((messages, params))
        if messages[-1]["role"] == "tool":
            return act(0)
        return {"tool_calls": [{"name": "load_skill", "arguments": {"name": "care-first"}}]}

    mock.register(NAME, model)
    h, notes = harness(skills=[skill], skills_mode="on_demand")
    assert decide(h) == 0
    first_messages, first_params = seen[0]
    assert tool_names(first_params) == ["act", "load_skill"]
    assert "load_skill(name)" in first_messages[0]["content"] and "Always cooperate first." not in first_messages[0]["content"]
    assert seen[1][0][-1]["content"] == "Always cooperate first."
    assert notes["skills_loaded"] == ["care-first"]


def test_a_plain_function_is_wrapped_as_a_tool():
    def weather(city: str) -> str:
        """Today's weather in a city."""
        return f"sunny in {city}"

    seen: list = []

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        seen.append(messages)
        if messages[-1]["role"] == "tool":
            return act(1)
        return {"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}

    mock.register(NAME, model)
    h, _ = harness(extra_tools=[weather])
    assert decide(h) == 1
    assert seen[1][-1]["content"] == "sunny in Oslo"


def test_a_dead_model_raises_the_client_error():
    """Model failures are the runner's to report (as with every harness), not an invalid action."""
    mock.register(NAME, {"fail_first": 100, "fault": "auth"})
    rows: list = []
    h, _ = harness(rows)
    with pytest.raises(ModelError, match=f"mock/{NAME}.*invalid API key"):
        decide(h)
    assert len(rows) == 1 and rows[0]["error"]


def test_user_tools_may_not_take_harness_tool_names():
    @tool
    def act(action: int) -> str:
        """Shadow the act tool."""
        return "no"

    with pytest.raises(ValueError, match="act"):
        harness(extra_tools=[act])


def test_calls_are_recorded_and_cached(tmp_path: Path):
    mock.register(NAME, user_tool_then_act("lookup", []))
    resources = ModelResources(cache=Store(f"sqlite:///{tmp_path}/c.db"), cache_mode="on")
    first: list = []
    h, _ = harness(first, resources, extra_tools=[lookup])
    assert decide(h) == 0
    assert mock.calls(NAME) == 2
    assert len(first) == 2 and not any(r["cache_hit"] for r in first)
    assert first[0]["model"] == f"mock/{NAME}" and first[0]["tool_calls"][0]["name"] == "lookup"
    assert first[1]["request"][-1]["role"] == "tool" and first[1]["tokens_in"] > 0

    again: list = []
    h, _ = harness(again, resources, extra_tools=[lookup])
    assert decide(h) == 0
    assert mock.calls(NAME) == 2  # no live call the second time
    assert len(again) == 2 and all(r["cache_hit"] for r in again)
    assert [r["cache_key"] for r in again] == [r["cache_key"] for r in first]


TOOLS_MODULE = '''
from langchain_core.tools import tool


@tool
def reputation(player: str) -> str:
    """What is known about a player's past moves."""
    return f"{player} has always cooperated"


TOOLS = [reputation]
'''


def test_end_to_end_run_through_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "lc_user_tools.py").write_text(textwrap.dedent(TOOLS_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lc_user_tools", raising=False)

    def model(messages: list[dict], **params: Any) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            return act(0)
        return {"tool_calls": [{"name": "reputation", "arguments": {"player": "player_1"}}]}

    mock.register(NAME, model)
    scenario = parse_scenario(
        f"""
name: langchain-e2e
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: 3}}}}
agents:
  player_0: {{kind: llm, model: mock/{NAME}, harness: langchain, tools: ['lc_user_tools:TOOLS']}}
  player_1: {{kind: scripted, strategy: tit_for_tat}}
"""
    )
    store = Store(f"sqlite:///{tmp_path}/run.db")
    run_id = run_scenario(scenario, store)
    assert store.get_run(run_id).status == "finished"
    (episode,) = store.episodes(run_id)
    steps = [s for s in store.steps(episode.id) if s["agent"] == "player_0"]
    assert len(steps) == 3 and all(s["action"] == 0 for s in steps)
    notes = steps[0]["info"]["harness"]
    assert notes["tool_calls"] == [
        {"name": "reputation", "arguments": {"player": "player_1"}, "result": "player_1 has always cooperated", "error": False}
    ]
    calls = store.model_calls(episode.id)
    assert len(calls) == 6 and mock.calls(NAME) == 6
    assert all(c["agent"] == "player_0" and c["error"] is None for c in calls)
    assert [c["tool_calls"][0]["name"] for c in calls[:2]] == ["reputation", "act"]
    assert calls[1]["request"][-1] == {"role": "tool", "content": "player_1 has always cooperated", "tool_call_id": "call_0"}

"""`mock/<name>`: a deterministic LiteLLM provider for unit tests and benchmarks.

Behaviour comes from the call's `mock` parameter (an LLM agent's `params: {mock: {...}}` in
YAML) or from a behaviour registered in code under the name:

    reply: '{"action": 0}'               same answer every time
    replies: ['{"action": 0}', 'oops']   cycle through answers, call by call
    rules: [['defect', '{"action": 1}']] first regex that matches the last user message wins
    tool_calls: [{name: act, arguments: {action: 1}}]   answer with tool calls
                                         (or raw: the arguments text as the model wrote it)
    latency: 0.1                         seconds to wait before answering
    fail_first: 2                        the first N calls fail with `fault`
    fault: rate_limit | timeout | server_error | auth | garbage
    fault_rate: 0.2                      or: each call fails with this probability (seeded)

Without any of these, `mock/<name>` answers `{"action": 0}`. The provider counts live calls
per name (`calls(name)`), so tests can prove that a replay made none.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import litellm

from normlab.models.providers import free
from litellm import CustomLLM

_BEHAVIOURS: dict[str, dict[str, Any] | Callable[..., Any]] = {}
_CALLS: Counter[str] = Counter()
_GARBAGE = "\x00}{ not json at all ]]"
FAULTS = ("rate_limit", "timeout", "server_error", "auth", "garbage")


def register(name: str, behaviour: dict[str, Any] | Callable[..., Any]) -> None:
    """Give `mock/<name>` a behaviour: a dict as above, or a callable
    `(messages, **params) -> str | dict(content=..., tool_calls=[...])`."""
    _BEHAVIOURS[name] = behaviour


def unregister(name: str) -> None:
    _BEHAVIOURS.pop(name, None)


def calls(name: str) -> int:
    """Live calls `mock/<name>` has answered (or failed) in this process."""
    return _CALLS[name]


def reset_calls() -> None:
    _CALLS.clear()


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") in ("user", "tool") and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _fault(kind: str, name: str) -> Exception:
    model = f"mock/{name}"
    if kind == "rate_limit":
        return litellm.RateLimitError("mock rate limit", llm_provider="mock", model=model)
    if kind == "timeout":
        return litellm.Timeout("mock timeout", model=model, llm_provider="mock")
    if kind == "server_error":
        return litellm.InternalServerError("mock server error", llm_provider="mock", model=model)
    if kind == "auth":
        return litellm.AuthenticationError("mock: invalid API key", llm_provider="mock", model=model)
    # a mistake in the behaviour, not a fault to retry: a ValueError here would reach the client
    # as a connection error and be retried
    return litellm.BadRequestError(
        f"mock: unknown fault {kind!r} (faults: {', '.join(FAULTS)})", model=model, llm_provider="mock"
    )


class MockLLMProvider(CustomLLM):
    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        name = str(kwargs.get("model", "mock")).split("/", 1)[-1]
        messages = kwargs.get("messages") or []
        params = dict(kwargs.get("optional_params") or {})
        behaviour = params.pop("mock", None) or _BEHAVIOURS.get(name) or {}
        _CALLS[name] += 1
        n = _CALLS[name]

        if callable(behaviour):
            result = behaviour(messages, **params)
            if asyncio.iscoroutine(result):
                result = await result
            return _response(result, messages)

        latency = float(behaviour.get("latency", 0.0))
        if latency:
            await asyncio.sleep(latency)
        fault = behaviour.get("fault", "rate_limit")
        failing = n <= int(behaviour.get("fail_first", 0))
        rate = float(behaviour.get("fault_rate", 0.0))
        if not failing and rate:
            failing = random.Random(f"{name}:{params.get('seed')}:{n}").random() < rate
        if failing and fault != "garbage":
            raise _fault(fault, name)
        if failing:
            return _response(_GARBAGE, messages)

        if "tool_calls" in behaviour:
            return _response({"content": behaviour.get("reply"), "tool_calls": behaviour["tool_calls"]}, messages)
        text = _last_user_text(messages)
        for pattern, answer in behaviour.get("rules", []):
            if re.search(pattern, text):
                return _response(answer, messages)
        if behaviour.get("replies"):
            replies = behaviour["replies"]
            return _response(replies[(n - 1) % len(replies)], messages)
        return _response(behaviour.get("reply", '{"action": 0}'), messages)

    def completion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        return asyncio.run(self.acompletion(*args, **kwargs))


def _response(result: Any, messages: list[dict[str, Any]]) -> litellm.ModelResponse:
    if isinstance(result, dict):
        content = result.get("content")
        tool_calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                # `raw`: the arguments exactly as a model wrote them (e.g. not valid JSON)
                "function": {"name": call["name"], "arguments": call["raw"] if "raw" in call else json.dumps(call.get("arguments", {}))},
            }
            for i, call in enumerate(result.get("tool_calls") or [])
        ]
    else:
        content, tool_calls = str(result), []
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
    completion_tokens = len(str(content or "").split()) + 5 * len(tool_calls)
    response = litellm.ModelResponse(
        choices=[{"message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    )
    return free(response)

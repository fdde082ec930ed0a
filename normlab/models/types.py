"""Plain types of the model layer; importing them never imports LiteLLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ModelError(RuntimeError):
    """A model call failed for good (dead server, missing key, retries used up)."""


class CacheMiss(ModelError):
    """`cache: replay` met a request that is not in the cache."""


class BudgetExhausted(RuntimeError):
    """The run's token or dollar budget is spent; the run stops cleanly."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""
    raw_arguments: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class ModelReply:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cache_hit: bool = False
    finish_reason: str | None = None

    def assistant_message(self) -> dict[str, Any]:
        """The reply as a chat message, to append to a conversation."""
        import json

        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments or json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        return message

"""The agent contract: what the runner calls, whatever plays (a script, an LLM, a person)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gymnasium import spaces


@runtime_checkable
class Agent(Protocol):
    """An agent is reset with its own seed at each episode start, then asked for actions."""

    async def reset(self, seed: int) -> None: ...

    async def act(self, observation: Any, info: dict[str, Any]) -> Any: ...


@dataclass
class AgentContext:
    """What an agent may know about its seat in the env, given once when it is built."""

    agent_id: str
    action_space: spaces.Space
    observation_space: spaces.Space | None = None
    action_meanings: list[str] | None = None
    rules: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AgentError(RuntimeError):
    """An agent cannot go on (e.g. a human player closed the input); ends the run cleanly."""

"""The agent contract: what the runner calls, whatever plays (a script, an LLM, a person)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gymnasium import spaces

from normlab.requests import Request


@dataclass(frozen=True)
class Decision:
    """What an agent did on one turn: the action (or `INVALID`), notes stored with the step
    (re-asks, memory shown, tools used), and the rows of the model calls it made."""

    action: Any
    notes: dict[str, Any] | None = None
    model_calls: tuple[dict[str, Any], ...] = ()


@runtime_checkable
class Agent(Protocol):
    """An agent is reset with its own seed at each episode start, then asked for actions:
    each turn it gets the observation, the env's info and the env's request (what kind of
    answer this turn wants) and returns a `Decision` (a bare action is taken as one)."""

    async def reset(self, seed: int) -> None: ...

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Decision | Any: ...


def as_decision(result: Any) -> Decision:
    return result if isinstance(result, Decision) else Decision(result)


@dataclass
class AgentContext:
    """What an agent may know about its seat in this episode, given when it is built."""

    agent_id: str
    action_space: spaces.Space
    observation_space: spaces.Space | None = None
    action_meanings: list[str] | None = None
    rules: str | None = None
    #: the run's shared model pieces (response cache, budget ledger, connection limits),
    #: built in the process that plays the episode; None where no agent calls a model
    resources: Any = None
    #: what this seat's agent exported at the end of the previous episode of its chain
    carried_state: Any = None

    def default_request(self) -> Request:
        """The request the static action space stands for (agents asked without one)."""
        from normlab.requests import request_for_space

        return request_for_space(self.action_space, self.action_meanings)


class AgentError(RuntimeError):
    """An agent cannot go on (e.g. a human player closed the input); ends the run cleanly."""

"""One meaning of a step for every env API: Gymnasium, PettingZoo Parallel and AEC envs seen
as the same sequence of turns.

A step row is what one agent saw, what it did, and the reward, events and termination that
its action caused, at turn `t`. Parallel and Gymnasium envs hand all of that back from one
`step`. An AEC env hands an agent its reward and info only when its next turn comes (or its
last, dead turn), so an AEC agent's row waits until then; `t` counts cycles (it advances when
the next agent to act has already acted in the current cycle), so the same game played as
Parallel or through `parallel_to_aec` stores identical rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from normlab.envs import SINGLE_AGENT_ID, api_of
from normlab.requests import Request, Tools, request_for_space


DEFAULT_PHASE = "act"


@dataclass(slots=True)
class Turn:
    """An agent asked to act: what it sees now."""

    agent: str
    observation: Any
    info: dict[str, Any]
    request: Request | None = field(default=None, repr=False)

    @property
    def phase(self) -> str:
        """The kind of turn (`talk`, `act`, ...): an env names it in the turn's info."""
        return _phase(self.info)


def _phase(info: Any) -> str:
    phase = info.get("phase") if isinstance(info, dict) else None
    return str(phase) if phase else DEFAULT_PHASE


@dataclass(slots=True)
class Outcome:
    """One step row: the turn, the action, and what the action led to."""

    t: int
    agent: str
    observation: Any
    action: Any
    reward: float
    terminated: bool
    truncated: bool
    info: Any
    phase: str = DEFAULT_PHASE


class Boundary(Protocol):
    t: int

    def acting(self) -> list[Turn]:
        """The agents to ask now (all at once); empty when the episode is over."""

    def step(self, actions: dict[str, Any]) -> list[Outcome]:
        """Apply the actions; the rows this completed."""

    def cut(self) -> list[Outcome]:
        """Rows still waiting for their outcome when the episode is cut short."""


RequestOf = Callable[[str], Request]


class Requests:
    """What each acting agent is asked for: the env's own per-turn request
    (`EnvBase.action_request`), or the one its static action space stands for. A request with
    query tools is bound to the env's `answer_query` for that agent."""

    def __init__(self, env: Any, action_spaces: dict[str, Any]):
        from normlab import envs
        from normlab.envs.base import EnvBase

        self.target = getattr(env, "unwrapped", env)
        own = getattr(type(self.target), "action_request", None)
        self.own = callable(own) and own is not EnvBase.action_request
        # built after reset: some envs draw per-episode action meanings (roles)
        self.static = {a: request_for_space(space, envs.action_meanings(env, a)) for a, space in action_spaces.items()}

    def __call__(self, agent: str) -> Request:
        if self.own:
            request = self.target.action_request(agent)
            if request is not None:
                if isinstance(request, Tools) and request.query_tools and request.answer is None:
                    request = request.bound(partial(self.target.answer_query, agent))
                return request
        return self.static[agent]


def boundary(env: Any, first: Any, requests: RequestOf | None = None) -> Boundary:
    """The turn view of an env just reset; `first` is what its `reset` returned; `requests`
    says what each acting agent is asked for (None: nothing, for callers that do not ask)."""
    api = api_of(env)
    ask = requests or _no_request
    if api == "gymnasium":
        return GymnasiumTurns(env, first, ask)
    if api == "parallel":
        return ParallelTurns(env, first, ask)
    return AECTurns(env, ask)


def _no_request(agent: str) -> None:
    return None


class GymnasiumTurns:
    def __init__(self, env: Any, first: Any, requests: Any):
        self.env = env
        self.requests = requests
        self.observation, self.info = first
        self.t = 0
        self.done = False

    def acting(self) -> list[Turn]:
        return [] if self.done else [Turn(SINGLE_AGENT_ID, self.observation, self.info or {}, self.requests(SINGLE_AGENT_ID))]

    def step(self, actions: dict[str, Any]) -> list[Outcome]:
        action = actions[SINGLE_AGENT_ID]
        phase = _phase(self.info)
        observation, reward, terminated, truncated, info = self.env.step(action)
        row = Outcome(self.t, SINGLE_AGENT_ID, self.observation, action, float(reward or 0.0), bool(terminated), bool(truncated), info, phase)
        self.observation, self.info = observation, info
        self.done = bool(terminated or truncated)
        self.t += 1
        return [row]

    def cut(self) -> list[Outcome]:
        return []


class ParallelTurns:
    def __init__(self, env: Any, first: Any, requests: Any):
        self.env = env
        self.requests = requests
        self.observations, self.infos = first
        self.t = 0

    def acting(self) -> list[Turn]:
        return [Turn(a, self.observations[a], self.infos.get(a, {}), self.requests(a)) for a in self.env.agents]

    def step(self, actions: dict[str, Any]) -> list[Outcome]:
        phases = {a: _phase(self.infos.get(a)) for a in actions}
        observations, rewards, terms, truncs, infos = self.env.step(actions)
        rows = [
            Outcome(
                self.t, a, self.observations[a], actions[a], float(rewards.get(a) or 0.0),
                bool(terms.get(a)), bool(truncs.get(a)), infos.get(a), phases.get(a, DEFAULT_PHASE),
            )
            for a in actions
        ]
        self.observations, self.infos = observations, infos
        self.t += 1
        return rows

    def cut(self) -> list[Outcome]:
        return []


class AECTurns:
    def __init__(self, env: Any, requests: Any):
        self.env = env
        self.requests = requests
        self.t = 0
        self.acted: set[str] = set()
        self.pending: dict[str, Outcome] = {}  # acted, waiting for what the action led to
        self.done: list[Outcome] = []
        self.turn: Turn | None = None
        self._advance()

    def _advance(self) -> None:
        """Move to the next agent that must choose, completing rows on the way."""
        self.turn = None
        while self.env.agents:
            agent = self.env.agent_selection
            observation, reward, terminated, truncated, info = self.env.last()
            waiting = self.pending.pop(agent, None)
            if waiting is not None:
                waiting.reward = float(reward or 0.0)
                waiting.terminated, waiting.truncated, waiting.info = bool(terminated), bool(truncated), info
                self.done.append(waiting)
            if terminated or truncated:
                self.env.step(None)  # a finished agent's last turn collects its reward
                continue
            if agent in self.acted:  # everyone still playing has had a turn: a new cycle
                self.t += 1
                self.acted.clear()
            self.turn = Turn(agent, observation, info or {}, self.requests(agent))
            return

    def acting(self) -> list[Turn]:
        return [self.turn] if self.turn is not None else []

    def step(self, actions: dict[str, Any]) -> list[Outcome]:
        assert self.turn is not None
        agent = self.turn.agent
        self.env.step(actions[agent])
        self.acted.add(agent)
        self.pending[agent] = Outcome(self.t, agent, self.turn.observation, actions[agent], 0.0, False, False, {}, self.turn.phase)
        self._advance()
        rows, self.done = self.done, []
        return rows

    def cut(self) -> list[Outcome]:
        rows, self.done = self.done, []
        cumulative = getattr(self.env, "_cumulative_rewards", {}) or {}
        for agent, waiting in self.pending.items():
            waiting.reward = float(cumulative.get(agent) or 0.0)
            waiting.terminated = bool(self.env.terminations.get(agent, False))
            waiting.truncated = True
            waiting.info = self.env.infos.get(agent, {})
            rows.append(waiting)
        self.pending.clear()
        return sorted(rows, key=lambda row: row.t)

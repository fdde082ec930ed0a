"""Scripted strategies: pure, seeded policies usable from YAML as `{kind: scripted, strategy: ...}`.

Two-action dilemmas follow normlab's convention: action 0 cooperates (or complies), action 1
defects (or breaks the rule). Strategies that react to the other player read the
`my_moves` / `opponent_moves` fields of the observation (0 none yet, 1 cooperated, 2 defected,
most recent last); in a single-agent env those are absent and they play their opening move.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

COOPERATE, DEFECT = 0, 1
_NONE, _COOPERATED, _DEFECTED = 0, 1, 2


def _last(observation: Any, key: str) -> int:
    if isinstance(observation, dict) and key in observation and len(observation[key]):
        return int(observation[key][-1])
    return _NONE


def _is_two_action(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Discrete) and int(space.n) == 2 and int(space.start) == 0


class ScriptedAgent:
    """Base class: subclasses set `name`, `description`, `defaults` and implement `choose`."""

    name: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    two_action_only: ClassVar[bool] = True

    def __init__(self, action_space: spaces.Space, params: dict[str, Any] | None = None):
        self.action_space = action_space
        self.params = {**self.defaults, **(params or {})}
        self.rng = np.random.default_rng(0)

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        """Problems with the params; `action_space` None skips the checks that need it."""
        problems: list[tuple[tuple, str]] = []
        for key in params:
            if key not in cls.defaults:
                allowed = ", ".join(cls.defaults) or "none"
                problems.append((("params", key), f"unknown parameter of {cls.name} (parameters: {allowed})"))
        if cls.two_action_only and action_space is not None and not _is_two_action(action_space):
            problems.append((("strategy",), f"{cls.name} needs a two-action env (0 cooperate, 1 defect), not {action_space}"))
        return problems

    async def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.start()

    def start(self) -> None:
        """Clear per-episode state."""

    async def act(self, observation: Any, info: dict[str, Any], request: Any = None) -> Any:
        return self.choose(observation)

    def choose(self, observation: Any) -> Any:
        raise NotImplementedError


class AlwaysCooperate(ScriptedAgent):
    name = "always_cooperate"
    description = "Always cooperates (action 0)."

    def choose(self, observation: Any) -> int:
        return COOPERATE


class AlwaysDefect(ScriptedAgent):
    name = "always_defect"
    description = "Always defects (action 1)."

    def choose(self, observation: Any) -> int:
        return DEFECT


class TitForTat(ScriptedAgent):
    name = "tit_for_tat"
    description = "Cooperates first, then copies the other player's last move."

    def choose(self, observation: Any) -> int:
        return DEFECT if _last(observation, "opponent_moves") == _DEFECTED else COOPERATE


class GrimTrigger(ScriptedAgent):
    name = "grim_trigger"
    description = "Cooperates until the other player defects once, then defects for good."

    def start(self) -> None:
        self.triggered = False

    def choose(self, observation: Any) -> int:
        self.triggered = self.triggered or _last(observation, "opponent_moves") == _DEFECTED
        return DEFECT if self.triggered else COOPERATE


class Pavlov(ScriptedAgent):
    name = "pavlov"
    description = "Win-stay, lose-shift: cooperates when both players made the same last move."

    def choose(self, observation: Any) -> int:
        mine, theirs = _last(observation, "my_moves"), _last(observation, "opponent_moves")
        if mine == _NONE:
            return COOPERATE
        return COOPERATE if mine == theirs else DEFECT


class RandomStrategy(ScriptedAgent):
    name = "random"
    description = "Seeded random play: defects with probability p in two-action envs, else uniform."
    defaults = {"p": None}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        p = params.get("p")
        if p is not None:
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:  # nan fails too
                problems.append((("params", "p"), "must be a number between 0 and 1"))
            elif action_space is not None and not _is_two_action(action_space):
                problems.append((("params", "p"), "p needs a two-action env; leave it out for uniform play"))
        return problems

    def choose(self, observation: Any) -> Any:
        p = self.params["p"]
        if p is None and isinstance(self.action_space, spaces.Discrete):
            return int(self.action_space.start + self.rng.integers(int(self.action_space.n)))
        if p is None:
            self.action_space.seed(int(self.rng.integers(2**31)))
            return self.action_space.sample()
        return DEFECT if self.rng.random() < p else COOPERATE


class Fixed(ScriptedAgent):
    name = "fixed"
    description = "Always plays the same action (param action, default 0)."
    defaults = {"action": 0}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        if action_space is None:
            return problems
        action = params.get("action", 0)
        try:
            legal = action_space.contains(np.int64(action) if isinstance(action, int) else action)
        except Exception:
            legal = False
        if not legal:
            problems.append((("params", "action"), f"{action!r} is not a legal action of {action_space}"))
        return problems

    def choose(self, observation: Any) -> Any:
        return self.params["action"]


STRATEGIES: dict[str, type[ScriptedAgent]] = {
    cls.name: cls for cls in (AlwaysCooperate, AlwaysDefect, TitForTat, GrimTrigger, Pavlov, RandomStrategy, Fixed)
}

"""Reference strategies of GovSim's commons (`normlab/CommonsHarvest-v0`).

Each answers the harvest (an `Integer(0, pool)` request) by its rule, a discussion turn with
its fixed `message` and a reflection turn with its fixed `reflection` text; the threshold shown
is read from the observation's `threshold` field.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from gymnasium import spaces

from normlab.agents.scripted import ScriptedAgent, fit_text, register_strategy
from normlab.requests import Integer, Request, Text

_TEXTS: dict[str, Any] = {"message": "Let us each take only the sustainable amount.", "reflection": "Keep to the sustainable amount."}


def _field(observation: Any, key: str) -> int | None:
    if isinstance(observation, dict) and key in observation:
        try:
            return int(observation[key])
        except (TypeError, ValueError):
            return None
    return None


class _Commons(ScriptedAgent):
    two_action_only = False
    defaults: ClassVar[dict[str, Any]] = dict(_TEXTS)

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        for key in ("message", "reflection"):
            if key in params and not isinstance(params[key], str):
                problems.append((("params", key), "must be a string"))
        return problems

    def choose(self, observation: Any) -> int:
        return 0

    def amount(self, request: Integer, observation: Any) -> int:
        raise NotImplementedError

    def answer(self, request: Request, observation: Any) -> Any:
        if isinstance(request, Integer):
            return min(max(self.amount(request, observation), request.low), request.high)
        if isinstance(request, Text):
            key = "reflection" if request.tag == "reflection" else "message"
            return fit_text(str(self.params[key]), request)
        return super().answer(request, observation)  # a request of another game: the generic answer


@register_strategy
class CommonsSustainable(_Commons):
    name = "commons_sustainable"
    description = "Asks exactly the sustainable threshold shown each month; says a fixed line."

    def amount(self, request: Integer, observation: Any) -> int:
        shown = _field(observation, "threshold")
        return shown if shown is not None else request.low


@register_strategy
class CommonsGreedy(_Commons):
    name = "commons_greedy"
    description = "Asks a fixed share of the pool (param share, default 1: the whole pool), rounded up."
    defaults: ClassVar[dict[str, Any]] = {"share": 1.0, **_TEXTS, "message": "I will take what I need."}

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        share = params.get("share", 1.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            problems.append((("params", "share"), "must be a number between 0 and 1 (the share of the pool asked)"))
        return problems

    def amount(self, request: Integer, observation: Any) -> int:
        pool = _field(observation, "pool")
        pool = request.high if pool is None else pool
        return int(math.ceil(float(self.params["share"]) * pool))


@register_strategy
class CommonsFixed(_Commons):
    name = "commons_fixed"
    description = "Asks the same amount every month (param amount, capped at the pool)."
    defaults: ClassVar[dict[str, Any]] = {"amount": 10, **_TEXTS}

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        amount = params.get("amount", 10)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            problems.append((("params", "amount"), "must be a whole number of at least 0"))
        return problems

    def amount(self, request: Integer, observation: Any) -> int:
        return int(self.params["amount"])

"""Reference strategies of `normlab/PublicGoods-v0`: they answer its contribution request (an
Integer 0..endowment) and its punishment request (a Composite of one Integer per other seat,
the other seats in seat order). All but `pg_punisher` punish nobody."""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab.agents.scripted import ANSWER_PARAMS, ScriptedAgent, register_strategy
from normlab.requests import Composite, Integer, Request


def _contributions(observation: Any) -> list[int] | None:
    """The last round's contributions in seat order, None before the first round."""
    if not isinstance(observation, dict) or "contributions" not in observation:
        return None
    found = [int(x) for x in np.asarray(observation["contributions"]).tolist()]
    return None if not found or min(found) < 0 else found


class _PublicGoodsStrategy(ScriptedAgent):
    two_action_only = False

    def contribution(self, request: Integer, observation: Any) -> int:
        raise NotImplementedError

    def punishment(self, request: Composite, observation: Any) -> dict[str, int]:
        return {name: 0 for name, _ in request.fields}

    def choose(self, observation: Any) -> int:
        return 0

    def answer(self, request: Request, observation: Any) -> Any:
        if isinstance(request, Integer):
            return min(max(self.contribution(request, observation), request.low), request.high)
        if isinstance(request, Composite) and all(isinstance(sub, Integer) for _, sub in request.fields):
            return self.punishment(request, observation)  # points per other seat
        return super().answer(request, observation)  # a request of another game: the generic answer


@register_strategy
class FullContributor(_PublicGoodsStrategy):
    name = "pg_full"
    description = "PublicGoods: contributes the whole endowment every round; punishes nobody."

    def contribution(self, request: Integer, observation: Any) -> int:
        return int(request.high)


@register_strategy
class FreeRider(_PublicGoodsStrategy):
    name = "pg_free_ride"
    description = "PublicGoods: contributes 0 every round; punishes nobody."

    def contribution(self, request: Integer, observation: Any) -> int:
        return int(request.low)


@register_strategy
class Conditional(_PublicGoodsStrategy):
    """Contributes the last round's mean contribution (rounded half up), `first` in round 1."""

    name = "pg_conditional"
    description = "PublicGoods: contributes the last round's mean contribution (param first: round 1, default the endowment); punishes nobody."
    defaults = {"first": None, **ANSWER_PARAMS}

    @classmethod
    def check(cls, params: dict[str, Any], action_space: Any) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        first = params.get("first")
        if first is not None and (not isinstance(first, int) or isinstance(first, bool) or first < 0):
            problems.append((("params", "first"), "must be a whole number of at least 0 (round 1's contribution)"))
        return problems

    def contribution(self, request: Integer, observation: Any) -> int:
        last = _contributions(observation)
        if last is None:
            first = self.params["first"]
            return int(request.high) if first is None else int(first)
        return int(np.floor(sum(last) / len(last) + 0.5))


@register_strategy
class Punisher(_PublicGoodsStrategy):
    """Contributes the whole endowment; punishes with `points` (capped at the maximum) each other
    player whose contribution this round was below `fraction` of the endowment."""

    name = "pg_punisher"
    description = "PublicGoods: contributes fully and punishes (points, default 3) each player who contributed below fraction (default 0.5) of the endowment."
    defaults = {"points": 3, "fraction": 0.5, **ANSWER_PARAMS}

    def start(self) -> None:
        self.endowment: int | None = None

    @classmethod
    def check(cls, params: dict[str, Any], action_space: Any) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        points, fraction = params.get("points", 3), params.get("fraction", 0.5)
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            problems.append((("params", "points"), "must be a whole number of at least 0"))
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
            problems.append((("params", "fraction"), "must be a number between 0 and 1"))
        return problems

    def contribution(self, request: Integer, observation: Any) -> int:
        self.endowment = int(request.high)
        return int(request.high)

    def punishment(self, request: Composite, observation: Any) -> dict[str, int]:
        last = _contributions(observation)
        names = [name for name, _ in request.fields]
        if last is None or self.endowment is None or not isinstance(observation, dict):
            return {name: 0 for name in names}
        me = int(observation["seat"])
        others = [c for j, c in enumerate(last) if j != me]  # the fields are the other seats in seat order
        bar = float(self.params["fraction"]) * self.endowment
        chosen: dict[str, int] = {}
        for (name, sub), given in zip(request.fields, others):
            high = int(sub.high) if isinstance(sub, Integer) else 0
            chosen[name] = min(int(self.params["points"]), high) if given < bar else 0
        return chosen

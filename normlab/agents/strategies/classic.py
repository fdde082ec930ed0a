"""Reference strategies of the classic two-player games beyond the prisoner's dilemma.

The stag hunt needs none of its own: stag is 0 and hare 1, so it is a two-action dilemma in
normlab's sense and `always_cooperate` (always stag), `always_defect` (always hare),
`tit_for_tat` (stag until someone hunted a hare last round) and the rest play it as they are.

The ultimatum game (`normlab/Ultimatum-v0`) asks for an offer (an integer request from 0 to the
pie), then an answer (a choice of accept / reject, the offer in the observation's `offer`),
and a `wait` turn in between. These strategies answer all three:

- `ultimatum_fair`: offers half the pie (rounded down) and accepts offers of at least
  `min_share` of the pie (default 0.3).
- `ultimatum_greedy`: offers `offer` points (default 1, the least that is not nothing, clamped
  to the pie) and accepts anything, 0 included: the money-maximiser of game theory.
- `ultimatum_spiteful`: offers half the pie and rejects offers below `min_share` (default
  0.4), paying to punish a low offer.

In other envs they answer as cooperators (`always_cooperate`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from normlab.agents.scripted import ANSWER_PARAMS, COOPERATE, ScriptedAgent, register_strategy
from normlab.requests import Choice, Integer, Request


def _is_share(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


class _UltimatumStrategy(ScriptedAgent):
    """An offer of `offer_of(pie)` and acceptance of offers of at least `min_share` of the pie."""

    defaults: ClassVar[dict[str, Any]] = {"min_share": 0.0, **ANSWER_PARAMS}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        if "min_share" in params and not _is_share(params["min_share"]):
            problems.append((("params", "min_share"), "must be a number between 0 and 1 (a share of the pie)"))
        return problems

    def choose(self, observation: Any) -> int:
        return COOPERATE

    def offer_of(self, pie: int) -> int:
        return pie // 2

    def answer(self, request: Request, observation: Any) -> Any:
        if isinstance(request, Integer):  # the offer, from 0 to the pie
            return min(max(self.offer_of(int(request.high)), request.low), request.high)
        if isinstance(request, Choice):
            options = [o.lower() for o in request.options]
            if "accept" in options and "reject" in options:
                offer = int(observation["offer"]) if isinstance(observation, dict) and "offer" in observation else 0
                pie = int(self.action_space.n) - 1 if isinstance(self.action_space, spaces.Discrete) else 0
                share = offer / pie if pie > 0 else 0.0
                accept = share >= float(self.params["min_share"]) - 1e-12
                return request.actions[options.index("accept" if accept else "reject")]
            if len(request.actions) == 1:  # wait
                return request.actions[0]
        return super().answer(request, observation)


@register_strategy
class UltimatumFair(_UltimatumStrategy):
    name = "ultimatum_fair"
    description = "Ultimatum: offers half the pie; accepts offers of at least min_share of it (default 0.3)."
    defaults: ClassVar[dict[str, Any]] = {"min_share": 0.3, **ANSWER_PARAMS}


@register_strategy
class UltimatumGreedy(_UltimatumStrategy):
    name = "ultimatum_greedy"
    description = "Ultimatum: offers `offer` points (default 1, the least but nothing); accepts any offer, 0 included."
    defaults: ClassVar[dict[str, Any]] = {"offer": 1, **ANSWER_PARAMS}

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        offer = params.get("offer", 1)
        if not isinstance(offer, (int, np.integer)) or isinstance(offer, bool) or offer < 0:
            problems.append((("params", "offer"), "must be a whole number of points, 0 or more"))
        return problems

    def start(self) -> None:
        self.params.setdefault("min_share", 0.0)

    def offer_of(self, pie: int) -> int:
        return min(int(self.params["offer"]), pie)


@register_strategy
class UltimatumSpiteful(_UltimatumStrategy):
    name = "ultimatum_spiteful"
    description = "Ultimatum: offers half the pie; rejects offers below min_share of it (default 0.4), at a cost to itself."
    defaults: ClassVar[dict[str, Any]] = {"min_share": 0.4, **ANSWER_PARAMS}

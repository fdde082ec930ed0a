"""Reference strategies of `normlab/ThresholdCollective-v0`: collective is action 0 (the
cooperative move), independent action 1, so the generic `always_cooperate` / `always_defect`
play there too. `threshold_imitate` is the Alignment Tipping Process's imitation dynamic."""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab.agents.scripted import ANSWER_PARAMS, ScriptedAgent, register_strategy

COLLECTIVE, INDEPENDENT = 0, 1


@register_strategy
class ThresholdCollective(ScriptedAgent):
    name = "threshold_collective"
    description = "ThresholdCollective: always chooses collective (0)."

    def choose(self, observation: Any) -> int:
        return COLLECTIVE


@register_strategy
class ThresholdIndependent(ScriptedAgent):
    name = "threshold_independent"
    description = "ThresholdCollective: always chooses independent (1)."

    def choose(self, observation: Any) -> int:
        return INDEPENDENT


@register_strategy
class ThresholdImitate(ScriptedAgent):
    """Imitates the best-paid peer of the last round: where a peer's capital grew by a larger
    factor than its own, it copies that peer's choice (the first such peer in seat order among
    the best); otherwise it repeats its own last choice. Round 1: the param `first`."""

    name = "threshold_imitate"
    description = "ThresholdCollective: copies the choice of the best-paid peer of the last round if it did better, else repeats its own (first: collective or independent)."
    defaults = {"first": "collective", **ANSWER_PARAMS}

    @classmethod
    def check(cls, params: dict[str, Any], action_space: Any) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        if params.get("first", "collective") not in ("collective", "independent"):
            problems.append((("params", "first"), "must be collective or independent"))
        return problems

    def choose(self, observation: Any) -> int:
        opening = COLLECTIVE if self.params["first"] == "collective" else INDEPENDENT
        if not isinstance(observation, dict) or "last_choices" not in observation:
            return opening
        choices = np.asarray(observation["last_choices"]).tolist()
        growth = np.asarray(observation["last_growth"], dtype=float).tolist()
        me = int(observation["seat"])
        if choices[me] == 0:  # no round played yet
            return opening
        mine = choices[me] - 1
        peers = [j for j in range(len(choices)) if j != me]
        best = max(peers, key=lambda j: growth[j])  # the first of the best, in seat order
        if growth[best] > growth[me]:
            return int(choices[best] - 1)
        return int(mine)

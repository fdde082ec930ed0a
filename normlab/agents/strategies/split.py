"""Reference strategies of the split games (`normlab/NoPressSplit-v0`,
`normlab/TrustAndSplit-v0`), after "Learning Robust Social Strategies with LLMs".

- `split_fair`: No-Press Split: claims all of each item it values more than the other player,
  none of an item it values less, and half (rounded down) of an item both value alike, so two
  fair players split efficiently and evenly (values are public and the totals equal).
  Trust-and-Split: keeps half of the coins, says its line (`message`).
- `split_greedy`: keeps everything (every item in full; all the coins); says its line.
- `trust_honest`: tells its true hand ("I have rock."); keeps all the coins when its hand beats
  the hand the other player claimed (the hands as revealed in the messages), none when it loses
  to it, half when the other claimed no hand (or one it cannot hold: its own).
- `trust_liar`: always claims the winning hand and keeps all the coins: speaking second, the
  hand that beats the other's claim; speaking first (or after a message claiming nothing), the
  hand its own hand beats, which beats the third hand: a lie that makes it look the winner
  whenever it truly lost.
- `trust_greedy`: keeps all the coins; says its line (`message`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from normlab.agents.scripted import ANSWER_PARAMS, ScriptedAgent, fit_text, register_strategy
from normlab.envs.dilemmas.split_games import HANDS, ITEMS, beats, claimed_hand
from normlab.requests import Composite, Integer, Request, Text


def _field(observation: Any, key: str) -> Any:
    return observation.get(key) if isinstance(observation, Mapping) else None


def _hand(observation: Any) -> int | None:
    hand = _field(observation, "my_hand")
    return int(hand) if hand is not None else None


def _their_claim(observation: Any) -> int | None:
    message = _field(observation, "opponent_message")
    claimed = claimed_hand(message) if isinstance(message, str) else None
    return HANDS.index(claimed) if claimed is not None else None


class _SplitAgent(ScriptedAgent):
    """Answers the split games' requests: a keep-per-item object, a number of coins, a message."""

    defaults = dict(ANSWER_PARAMS)
    two_action_only = False

    def choose(self, observation: Any) -> int:  # a two-action dilemma: these players take
        return 1

    def answer(self, request: Request, observation: Any) -> Any:
        if isinstance(request, Composite):
            return {name: self.keep_item(name, sub, observation) for name, sub in request.fields}
        if isinstance(request, Integer):
            return self.keep(request, observation)
        if isinstance(request, Text):
            return fit_text(self.say(observation), request)
        return super().answer(request, observation)

    def keep_item(self, name: str, request: Request, observation: Any) -> Any:
        return self.keep(request, observation) if isinstance(request, Integer) else self.leaf(request, 1)

    def keep(self, request: Integer, observation: Any) -> int:
        return request.high

    def say(self, observation: Any) -> str:
        return str(self.params.get("message", "OK."))


@register_strategy
class SplitFair(_SplitAgent):
    name = "split_fair"
    description = "Split games: claims the items it values more (half of those valued alike); keeps half the coins."

    def keep_item(self, name: str, request: Request, observation: Any) -> Any:
        mine, theirs = _field(observation, "my_values"), _field(observation, "opponent_values")
        if not isinstance(request, Integer):
            return self.leaf(request, 0)
        if mine is None or theirs is None or name not in ITEMS:
            return (request.low + request.high) // 2
        k = ITEMS.index(name)
        a, b = int(np.asarray(mine)[k]), int(np.asarray(theirs)[k])
        if a == b:
            return (request.low + request.high) // 2
        return request.high if a > b else request.low

    def keep(self, request: Integer, observation: Any) -> int:
        return (request.low + request.high) // 2


@register_strategy
class SplitGreedy(_SplitAgent):
    name = "split_greedy"
    description = "Split games: keeps everything (every item in full, all the coins)."


@register_strategy
class TrustHonest(_SplitAgent):
    name = "trust_honest"
    description = "Trust-and-Split: tells its true hand; keeps all coins if it beats the other's claimed hand, none if not, half without a claim."

    def say(self, observation: Any) -> str:
        hand = _hand(observation)
        return f"I have {HANDS[hand]}." if hand is not None else str(self.params.get("message", "OK."))

    def keep(self, request: Integer, observation: Any) -> int:
        mine, theirs = _hand(observation), _their_claim(observation)
        if mine is None or theirs is None or theirs == mine:
            return (request.low + request.high) // 2
        return request.high if beats(mine, theirs) else request.low


@register_strategy
class TrustLiar(_SplitAgent):
    name = "trust_liar"
    description = "Trust-and-Split: always claims the winning hand (beating the other's claim, else the hand its own beats); keeps all coins."

    def say(self, observation: Any) -> str:
        theirs = _their_claim(observation)
        mine = _hand(observation)
        if theirs is not None:
            claim = (theirs + 1) % 3  # the hand that beats theirs
        elif mine is not None:
            claim = (mine - 1) % 3  # the hand its own beats
        else:
            claim = 0
        return f"I have {HANDS[claim]}."


@register_strategy
class TrustGreedy(_SplitAgent):
    name = "trust_greedy"
    description = "Trust-and-Split: keeps all the coins; says its line."

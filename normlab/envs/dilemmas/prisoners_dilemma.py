"""The iterated Prisoner's Dilemma for two players, with noisy moves, optional cheap talk and a
text view for LLMs.

Follows the IPD of "Learning Robust Social Strategies with LLMs": 10 rounds, T/R/P/S = 5/3/1/0,
an invalid answer counts as defect, each player sees the other's last move. The step sits on the
hot path of tournaments (thousands of episodes of hundreds of rounds), so spaces, payoff tables
and the per-round text fragments are built once and the step only slices and joins. Cheap talk
(`talk=True`) adds a message phase before each round's moves; with talk off (the default) the
env is the plain IPD, step for step.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, cast

import gymnasium
import numpy as np
import orjson
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pydantic import ConfigDict, Field

from normlab.envs.base import INVALID_ACTION, EnvBase, EnvParams, Integer, Number, RenderMode, Wording
from normlab.envs.text import MAX_TEXT_LENGTH, TEXT_CHARSET, text_space
from normlab.requests import Choice, Request
from normlab.requests import Text as TextRequest
from normlab.spaces import shown

COOPERATE = 0
DEFECT = 1
DEFAULT_PAYOFFS: dict[str, float] = {"T": 5.0, "R": 3.0, "P": 1.0, "S": 0.0}

_AGENTS = ("player_0", "player_1")
_ACTION_MEANINGS = ("cooperate", "defect")
_PAST = ("cooperated", "defected")
_PROMPT = "Answer 0 to cooperate or 1 to defect."
#: Phases of a cheap-talk round, as named in each agent's `info["phase"]`.
TALK, ACT = "talk", "act"
MESSAGE = "message"
#: What the act phase of cheap talk also accepts (the envelope space is text there).
_MOVE_WORDS = {"0": COOPERATE, "1": DEFECT, "cooperate": COOPERATE, "defect": DEFECT}
_MESSAGE_CHARS = frozenset(TEXT_CHARSET)


def points_text(x: float) -> str:
    """Points as a person writes them: 3 rather than 3.0, 2.5 as is (the games' shared wording)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


#: Bounds that keep a typo from reaching numpy (rounds size arrays) or overflowing sums.
MAX_ROUNDS = 1_000_000
MAX_PAYOFF = 1e9
MAX_MESSAGE_CHARS = 2000


Payoff = Number(-MAX_PAYOFF, MAX_PAYOFF)
Rounds = Integer(1, MAX_ROUNDS)


class Payoffs(EnvParams):
    """Points per round: T (defect against cooperate), R (both cooperate), P (both defect),
    S (cooperate against defect). Keys left out keep their default."""

    T: Payoff = Field(DEFAULT_PAYOFFS["T"], description="Temptation: you defect, the other cooperates")  # type: ignore[valid-type]
    R: Payoff = Field(DEFAULT_PAYOFFS["R"], description="Reward: both cooperate")  # type: ignore[valid-type]
    P: Payoff = Field(DEFAULT_PAYOFFS["P"], description="Punishment: both defect")  # type: ignore[valid-type]
    S: Payoff = Field(DEFAULT_PAYOFFS["S"], description="Sucker's payoff: you cooperate, the other defects")  # type: ignore[valid-type]


class IteratedPrisonersDilemmaParams(EnvParams):
    model_config = ConfigDict(title="normlab/IteratedPrisonersDilemma-v0 params")

    rounds: Rounds = Field(10, description="Rounds per episode")  # type: ignore[valid-type]
    payoffs: Annotated[Payoffs | None, Wording("a mapping with keys T, R, P, S")] = Field(
        None, description="T/R/P/S points; keys left out keep 5/3/1/0"
    )
    noise: Number(0.0, 1.0) = Field(0.0, description="Chance per player and round that a move is carried out as the opposite")  # type: ignore[valid-type]
    history: Rounds = Field(1, description="Past rounds each observation shows")  # type: ignore[valid-type]
    talk: Annotated[bool, Wording("true or false")] = Field(
        False, description="Cheap talk: each round both players first send one message, then both move (two steps a round)"
    )
    max_message_chars: Integer(1, MAX_MESSAGE_CHARS) = Field(  # type: ignore[valid-type]
        200, description="Longest message a player may send in a cheap-talk round"
    )
    render_mode: RenderMode("ansi") = None  # type: ignore[valid-type]


class MoveOrMessage(spaces.Text):
    """The static action space of cheap-talk IPD, the envelope of both phases: the text of
    a message (the talk phase) and the moves 0 and 1 (the act phase, which also takes "0",
    "1", "cooperate" and "defect" as text). Samples are texts; each turn's request
    (`action_request`) says which phase's actions are legal now."""

    def contains(self, x: Any) -> bool:
        if x.__class__ is int or isinstance(x, np.integer):
            return bool(x == COOPERATE or x == DEFECT)
        return bool(super().contains(x))

    def __repr__(self) -> str:
        return f"MoveOrMessage(0 or 1, or a text of {self.min_length} to {self.max_length} characters)"


class IteratedPrisonersDilemmaEnv(EnvBase, ParallelEnv):
    """Two players choose to cooperate (0) or defect (1) at the same time for `rounds` rounds.

    `noise` is the chance, per player and round, that the chosen move is carried out as the
    opposite one (an invalid action becomes defect first, then may flip); the move carried out
    is what both players see and what is paid. Each player's own moves are reported as events in
    its own info, so a runner storing one row per player stores each event once.

    Cheap talk (`talk=True`): each round is two steps, named in each agent's `info["phase"]`
    (the phase of its next turn; absent once the episode is over):

    - talk: both players send one message at once, a str of at most `max_message_chars`
      characters drawn from the text charset (`normlab.envs.text.TEXT_CHARSET`); the request
      is `Text(max_message_chars, tag="speech")` limited to those characters. Rewards are 0.
      Each message is a `message` event `{"type": "message", "agent", "round", "text"}` in its
      sender's info. Anything else (too long, not a str, other characters) is an
      `invalid_action` event and is sent as the empty message (`fallback_action` in this
      phase is "").
    - act: the moves, as without talk (a `Choice` of cooperate = 0 / defect = 1); the ints 0
      and 1 and the texts "0", "1", "cooperate", "defect" are accepted; anything else is an
      `invalid_action` and counts as defect (`fallback_action` in this phase is 1). Rewards come
      here.

    The observations gain `opponent_message`, the other player's last message ("" before the
    first); the act-phase text shows both messages of the round. `rounds` counts rounds, the
    `round` field rounds played. The static action space is `MoveOrMessage`, a Text space whose
    `contains` also takes the moves 0 and 1, so the official checkers' samples step (a random
    text in the act phase is an invalid move). With talk off none of this exists: Discrete(2),
    the same observations, rows and speed as ever.
    """

    metadata = {"name": "normlab/IteratedPrisonersDilemma-v0", "render_modes": ["ansi"], "is_parallelizable": True}
    Params = IteratedPrisonersDilemmaParams
    event_types = {
        "cooperate": "the agent's move this round, as carried out, was cooperate (`flipped`: noise reversed the chosen move)",
        "defect": "the agent's move this round, as carried out, was defect (`flipped`: noise reversed the chosen move)",
        INVALID_ACTION: (
            "the agent's answer was not 0 or 1; it counts as defect (which noise may then flip). With "
            "cheap talk, also a message that is not a text of at most max_message_chars characters; "
            "it is sent as the empty message"
        ),
        MESSAGE: "cheap talk only: the message the agent sent this round (`text`, \"\" for none), before the moves",
    }
    move_events = frozenset({"cooperate", "defect"})
    #: What `metrics(steps)` adds to the event counts, recomputed from the stored rows' move and
    #: message events and the act rows' rewards (see `ipd_metrics`).
    metric_types: ClassVar[dict[str, str]] = {
        "rounds_played": "rounds in which both players moved",
        "cooperation_rate": "agent -> share of its moves, as carried out (after noise), that were cooperate; null before any round",
        "mutual_cooperation_rate": "share of rounds in which both players cooperated (the CC share of Axelrod's state distribution)",
        "mutual_defection_rate": "share of rounds in which both players defected (DD)",
        "joint_payoff": "both players' points summed over the episode (welfare; 2 x R x rounds when both always cooperate)",
        "exploitation": (
            "agent -> its points minus the other player's over the episode (player_0's value is "
            "player_0 - player_1; positive: it exploited the other)"
        ),
        "exploitation_abs": "|player_0's points - player_1's points|: how one-sided the episode was, whoever won",
        "announced_cooperation": (
            "cheap talk only: agent -> share of its rounds whose message announced cooperation (a "
            "heuristic, `announces_cooperation`: the message mentions cooperat..., or says it will play "
            "C or 0, or is just C or 0, and no negation such as not/never/won't/don't comes just before "
            "cooperat...)"
        ),
        "announced_then_defected": (
            "cheap talk only: agent -> share of its rounds in which it announced cooperation and then "
            "chose defect (the chosen move, before noise; an invalid move counts as defect); `overall`: "
            "both players' such rounds over both players' rounds"
        ),
        "broken_promise_rate": (
            "cheap talk only: agent -> of the rounds in which it announced cooperation, the share in "
            "which it then defected (null when it never announced); `overall` pools both players"
        ),
    }

    def __init__(self, **params: Any) -> None:
        self.params = p = self.parse_params(params)
        rounds, history, noise, render_mode = p.rounds, p.history, float(p.noise), p.render_mode
        talk, max_chars = bool(p.talk), int(p.max_message_chars)
        merged = {k: float(v) for k, v in (p.payoffs or Payoffs()).model_dump().items()}  # type: ignore[call-arg]

        self.rounds = rounds
        self.history = history
        self.noise = noise
        self.payoffs = merged
        self.render_mode = render_mode

        self.possible_agents = list(_AGENTS)
        self.agents: list[str] = []
        # one space object per agent, so seeding one agent's space leaves the other's alone;
        # cached per (rounds, history, agent) because building Text spaces dominates __init__
        self.observation_spaces = {
            a: _talk_observation_space(rounds, history, max_chars, a) if talk else _observation_space(rounds, history, a)
            for a in _AGENTS
        }
        self.action_spaces: dict[str, spaces.Space] = {
            a: MoveOrMessage(max_length=max(max_chars, len("cooperate")), min_length=0, charset=TEXT_CHARSET)
            if talk
            else spaces.Discrete(2)
            for a in _AGENTS
        }
        self.state_space = spaces.MultiDiscrete(np.full((2, rounds), 3))
        self._action_check = spaces.Discrete(2)

        t, r, p, s = merged["T"], merged["R"], merged["P"], merged["S"]
        # _pay_pairs[mine][theirs] = (my points, their points)
        self._pay_pairs = (((r, r), (s, t)), ((t, s), (p, p)))
        # _tail[mine][theirs]: one round as seen by the player who made `mine`
        self._tail = tuple(
            tuple(
                f"you {_PAST[m]}, the other player {_PAST[o]}; you got {points_text(self._pay_pairs[m][o][0])}, "
                f"they got {points_text(self._pay_pairs[m][o][1])}."
                for o in (0, 1)
            )
            for m in (0, 1)
        )
        noise_line = (
            f"Moves are noisy: with probability {noise * 100:g}% a chosen move is carried out as the opposite "
            "move, and both players see and are paid for the move carried out.\n"
            if noise > 0
            else ""
        )
        self._intro = (
            f"You are playing an iterated Prisoner's Dilemma against another player for {rounds} "
            f"round{'s' if rounds != 1 else ''}. Each round you both choose, at the same time, to cooperate "
            f"or to defect. Points per round: both cooperate: {points_text(r)} each; both defect: {points_text(p)} each; "
            f"you defect while the other cooperates: you get {points_text(t)}, they get {points_text(s)}; you cooperate "
            f"while the other defects: you get {points_text(s)}, they get {points_text(t)}.\n{noise_line}"
        )
        if talk:
            self._intro += (
                f"Cheap talk: each round, before the moves, you each send the other player one message of at "
                f"most {max_chars} characters, and each sees the other's message before choosing. Messages bind "
                "no one.\n"
            )
        self._first_text = f"{self._intro}Round 1 of {rounds} is next. No rounds have been played yet.\n{_PROMPT}"
        # totals of whole-number payoffs stay whole: print them without the float check
        self._whole_points = all(v.is_integer() for v in merged.values())
        self._recent_header = "Last round:\n" if history == 1 else f"Last rounds (up to {history}):\n"

        self._np_random: np.random.Generator | None = None
        self._seed: int | None = None
        self._round = 0
        self._done = True
        # per player: `history` zeros of left padding, then one cell per round (1 = C, 2 = D)
        self._own = (np.zeros(history + rounds, dtype=np.int64), np.zeros(history + rounds, dtype=np.int64))
        self._lines: tuple[list[str], list[str]] = ([], [])
        self._totals = [0.0, 0.0]
        self._flips: list[list[bool]] = []
        # cheap talk: whether the next step is a talk phase (always False with talk off, so the
        # plain step pays two attribute tests in all) and the rest of it in one attribute (more
        # than 30 instance attributes cost every attribute read its fast path)
        self._talk_next = False
        self._talk = _CheapTalk(max_chars) if talk else None

    @property
    def talk(self) -> bool:
        """Whether rounds open with cheap talk."""
        return self._talk is not None

    @property
    def max_message_chars(self) -> int:
        """The longest message a player may send (with talk on)."""
        return int(cast(IteratedPrisonersDilemmaParams, self.params).max_message_chars)

    @property
    def np_random(self) -> np.random.Generator:
        """The env's random generator, seeded by the last `reset(seed=...)` (Gymnasium's rule)."""
        if self._np_random is None:
            self._np_random, _ = seeding.np_random(self._seed)
        return self._np_random

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._np_random = value

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def action_meanings(self, agent: str | None = None) -> list[str]:
        return list(_ACTION_MEANINGS)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            # built on first use: an env without noise never pays for seeding a generator
            self._seed = int(seed)
            self._np_random = None
        self.agents = list(_AGENTS)
        self._round = 0
        self._done = False
        self._own[0].fill(0)
        self._own[1].fill(0)
        self._lines = ([], [])
        self._totals = [0.0, 0.0]
        if self.noise > 0.0:
            # the whole episode's flips in one draw: one generator call per episode, not per round
            self._flips = (self.np_random.random((self.rounds, 2)) < self.noise).tolist()
        if self._talk is not None:
            self._talk_next = True
            self._talk.messages = ("", "")
            return {a: self._observe_talk(i) for i, a in enumerate(_AGENTS)}, {a: {"events": [], "phase": TALK} for a in _AGENTS}
        return {a: self._observe(i) for i, a in enumerate(_AGENTS)}, {a: {"events": []} for a in _AGENTS}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if self._talk_next:
            return self._talk_step(actions)
        if self._done:
            raise RuntimeError("the episode is over (or was never started); call reset() before step()")
        rnd = self._round = self._round + 1
        a0 = actions.get("player_0")
        a1 = actions.get("player_1")
        ev0: list[dict[str, Any]] = []
        ev1: list[dict[str, Any]] = []
        m0 = a0 if a0.__class__ is int and (a0 == 0 or a0 == 1) else self._parse(a0, "player_0", rnd, ev0)
        m1 = a1 if a1.__class__ is int and (a1 == 0 or a1 == 1) else self._parse(a1, "player_1", rnd, ev1)
        if self.noise > 0.0:
            flip0, flip1 = self._flips[rnd - 1]
            if flip0:
                m0 = 1 - m0
            if flip1:
                m1 = 1 - m1
            ev0.append(self._move_event(m0, "player_0", rnd, flip0))
            ev1.append(self._move_event(m1, "player_1", rnd, flip1))
        else:
            ev0.append({"type": _ACTION_MEANINGS[m0], "agent": "player_0", "round": rnd})
            ev1.append({"type": _ACTION_MEANINGS[m1], "agent": "player_1", "round": rnd})

        col = self.history + rnd - 1
        self._own[0][col] = m0 + 1
        self._own[1][col] = m1 + 1
        p0, p1 = self._pay_pairs[m0][m1]
        totals = self._totals
        totals[0] += p0
        totals[1] += p1
        self._lines[0].append(f"Round {rnd}: {self._tail[m0][m1]}")
        self._lines[1].append(f"Round {rnd}: {self._tail[m1][m0]}")

        done = rnd >= self.rounds
        if self._talk is not None:
            return self._round_end_talking(p0, p1, ev0, ev1, done)
        observations = {"player_0": self._observe(0), "player_1": self._observe(1)}
        rewards = {"player_0": p0, "player_1": p1}
        terminations = {"player_0": done, "player_1": done}
        truncations = {"player_0": False, "player_1": False}
        infos = {"player_0": {"events": ev0}, "player_1": {"events": ev1}}
        if done:
            self._done = True
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _parse(self, action: Any, agent: str, rnd: int, events: list[dict[str, Any]]) -> int:
        """The slow path for actions other than a plain int 0 or 1: numpy ints pass (and, with
        cheap talk, the texts "0", "1", "cooperate", "defect"), the rest defect."""
        try:
            if self._action_check.contains(action):
                return int(action)
            if self.talk and isinstance(action, str):
                move = _MOVE_WORDS.get(action.strip().lower())
                if move is not None:
                    return move
        except Exception:  # an odd object must not end the episode; it is an invalid answer
            pass
        events.append({"type": INVALID_ACTION, "agent": agent, "action": shown(action, 200) if self.talk else repr(action), "round": rnd})
        return DEFECT

    def _round_end_talking(
        self, p0: float, p1: float, ev0: list[dict[str, Any]], ev1: list[dict[str, Any]], done: bool
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """The end of a cheap-talk round's act phase: the next round opens with its talk phase."""
        info0: dict[str, Any] = {"events": ev0}
        info1: dict[str, Any] = {"events": ev1}
        if done:
            self._done = True
            self.agents = []
        else:
            self._talk_next = True
            info0["phase"] = info1["phase"] = TALK
        return (
            {"player_0": self._observe_talk(0), "player_1": self._observe_talk(1)},
            {"player_0": p0, "player_1": p1},
            {"player_0": done, "player_1": done},
            {"player_0": False, "player_1": False},
            {"player_0": info0, "player_1": info1},
        )

    def _talk_step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """The talk phase of a cheap-talk round: both messages are sent; no one moves or is paid."""
        rnd = self._round + 1
        ev0: list[dict[str, Any]] = []
        ev1: list[dict[str, Any]] = []
        msg0 = self._message(actions.get("player_0"), "player_0", rnd, ev0)
        msg1 = self._message(actions.get("player_1"), "player_1", rnd, ev1)
        ev0.append({"type": MESSAGE, "agent": "player_0", "round": rnd, "text": msg0})
        ev1.append({"type": MESSAGE, "agent": "player_1", "round": rnd, "text": msg1})
        assert self._talk is not None
        self._talk.messages = (msg0, msg1)
        self._talk_next = False
        return (
            {"player_0": self._observe_act(0), "player_1": self._observe_act(1)},
            {"player_0": 0.0, "player_1": 0.0},
            {"player_0": False, "player_1": False},
            {"player_0": False, "player_1": False},
            {"player_0": {"events": ev0, "phase": ACT}, "player_1": {"events": ev1, "phase": ACT}},
        )

    def _message(self, action: Any, agent: str, rnd: int, events: list[dict[str, Any]]) -> str:
        """A legal message as sent; anything else is an invalid action, sent as the empty message."""
        if isinstance(action, str) and len(action) <= self.max_message_chars and _MESSAGE_CHARS.issuperset(action):
            return str(action)
        events.append({"type": INVALID_ACTION, "agent": agent, "action": shown(action, 200), "round": rnd})
        return ""

    @staticmethod
    def _move_event(move: int, agent: str, rnd: int, flipped: bool) -> dict[str, Any]:
        event: dict[str, Any] = {"type": _ACTION_MEANINGS[move], "agent": agent, "round": rnd}
        if flipped:
            event["flipped"] = True
        return event

    def _observe(self, i: int) -> dict[str, Any]:
        rnd = self._round
        end = rnd + self.history
        return {
            "round": np.int64(rnd),
            "my_moves": self._own[i][rnd:end].copy(),
            "opponent_moves": self._own[1 - i][rnd:end].copy(),
            "text": self._text(i),
        }

    def _observe_talk(self, i: int) -> dict[str, Any]:
        """With cheap talk, the observation that opens a round (its talk phase) or ends the game."""
        talk = self._talk
        assert talk is not None
        observation = self._observe(i)
        observation["opponent_message"] = talk.messages[1 - i]
        text = observation["text"]
        if self._round < self.rounds:  # the moves' prompt becomes the talk prompt
            text = text[: -len(_PROMPT)]
            if self._round > 0:
                text += f"The other player's last message: {_quoted(talk.messages[1 - i])}\n"
            observation["text"] = text + talk.prompt
        return observation

    def _observe_act(self, i: int) -> dict[str, Any]:
        """With cheap talk, the observation of the act phase: the round's messages, then the moves' prompt."""
        talk = self._talk
        assert talk is not None
        observation = self._observe(i)
        mine, theirs = talk.messages[i], talk.messages[1 - i]
        observation["opponent_message"] = theirs
        text = observation["text"]
        if self._round == 0:  # the rules were in the talk phase's text
            text = text[len(self._intro) :]
        observation["text"] = (
            f"{text[: -len(_PROMPT)]}This round's messages: you said {_quoted(mine)}; "
            f"the other player said {_quoted(theirs)}.\n{_PROMPT}"
        )
        return observation

    def _text(self, i: int) -> str:
        rnd = self._round
        if rnd == 0:
            return self._first_text
        recent = "\n".join(self._lines[i][-self.history :])
        mine, theirs = self._totals[i], self._totals[1 - i]
        if self._whole_points:
            totals = f"you {int(mine)}, the other player {int(theirs)}."
        else:
            totals = f"you {points_text(mine)}, the other player {points_text(theirs)}."
        if rnd >= self.rounds:
            return (
                f"All {self.rounds} rounds have been played.\n{self._recent_header}{recent}\n"
                f"Final totals: {totals}"
            )
        return (
            f"Round {rnd + 1} of {self.rounds} is next.\n{self._recent_header}{recent}\n"
            f"Totals so far: {totals}\n{_PROMPT}"
        )

    def fallback_action(self, agent: str | None = None) -> int | str:
        """An invalid answer counts as defect; in a cheap-talk phase, as the empty message."""
        return "" if self._talk_next else DEFECT

    def action_request(self, agent: str | None = None) -> Request | None:
        """With cheap talk, a message (`Text`, tag speech) or a move (`Choice` of cooperate /
        defect) by phase; without, None: the static Discrete(2)'s choice."""
        if self._talk is None:
            return None
        return self._talk.message_request if self._talk_next else self._talk.move_request

    def rules(self, agent: str | None = None) -> str:
        """The game's rules. Only the first observation's text repeats them, so every stored
        step stays short; LLM harnesses put them in the system prompt."""
        return self._intro.strip()

    def metrics(self, steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Event counts plus cooperation, welfare and exploitation (and with cheap talk,
        announced-then-defected) metrics from the stored rows (see `metric_types`). Computed
        after the episode from its rows, never in `step`."""
        return ipd_metrics(steps, talk=self._talk is not None)

    @classmethod
    def round_table(cls, steps: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]] | None:
        """Per round: each player's message (with cheap talk), move as carried out (marked
        `(flipped)` by noise, `(invalid)` where the answer was invalid) and points."""
        played = _read_rounds(steps)
        if not played.moves[_AGENTS[0]] and not played.moves[_AGENTS[1]]:
            return None
        talk = bool(played.messages[_AGENTS[0]] or played.messages[_AGENTS[1]])
        columns = ["round"]
        if talk:
            columns += [f"{a} says" for a in _AGENTS]
        columns += list(_AGENTS) + [f"{a} points" for a in _AGENTS]
        table: list[list[Any]] = []
        for rnd in sorted(set(played.moves[_AGENTS[0]]) | set(played.moves[_AGENTS[1]])):
            row: list[Any] = [rnd]
            if talk:
                row += [played.messages[a].get(rnd, "") for a in _AGENTS]
            for a in _AGENTS:
                move = played.moves[a].get(rnd)
                if move is None:
                    row.append("")
                    continue
                label = _ACTION_MEANINGS[move[0]]
                if move[1]:
                    label += " (flipped)"
                if move[2]:
                    label += " (invalid)"
                row.append(label)
            row += [played.points[a].get(rnd) for a in _AGENTS]
            table.append(row)
        return columns, table

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; pass render_mode='ansi' to the env.")
            return None
        rnd = self._round
        lines = [f"Iterated Prisoner's Dilemma: {rnd} of {self.rounds} rounds played."]
        for r in range(max(1, rnd - self.history + 1), rnd + 1):
            col = self.history + r - 1
            m0, m1 = int(self._own[0][col]) - 1, int(self._own[1][col]) - 1
            p0, p1 = self._pay_pairs[m0][m1]
            lines.append(
                f"Round {r}: player_0 {_PAST[m0]} ({points_text(p0)}), player_1 {_PAST[m1]} ({points_text(p1)})."
            )
        lines.append(f"Totals: player_0 {points_text(self._totals[0])}, player_1 {points_text(self._totals[1])}.")
        if self._talk is not None:
            said0, said1 = self._talk.messages
            lines.append(f"Last messages: player_0 said {_quoted(said0)}, player_1 said {_quoted(said1)}.")
        return "\n".join(lines)

    def state(self) -> np.ndarray:
        """Every move of the episode so far, one row per player (0 = not played, 1 = C, 2 = D)."""
        return np.stack([self._own[0][self.history :], self._own[1][self.history :]])

    def close(self) -> None:
        pass


class _CheapTalk:
    """What a cheap-talk env keeps beside the plain game: this round's (or the last round's)
    messages, by player, and what is built once: the talk prompt and the phases' requests."""

    def __init__(self, max_chars: int):
        self.messages = ("", "")
        self.prompt = f"Write your message to the other player (at most {max_chars} characters); the moves come next."
        self.message_request = TextRequest(max_chars, tag="speech", characters=_MESSAGE_CHARS)
        self.move_request = Choice(_ACTION_MEANINGS, (COOPERATE, DEFECT))


#: A message that announces cooperation (matched lower-cased): it mentions cooperat...
#: ("I will cooperate", "let's keep cooperating", "cooperation"), says it will play C or 0
#: ("I will C", "I'll play 0"), or is just C or 0.
ANNOUNCE_COOPERATION = re.compile(
    r"cooperat|\bi(?:'ll|\s+will|\s+shall|\s+am\s+going\s+to)?\s+(?:play|choose|pick|answer|say|do)?\s*[\"']?(?:c|0)\b(?![.,]\d)|^\W*(?:c|0)\W*$"
)
#: A negation just before cooperat..., at most three words and no punctuation between ("I will
#: not cooperate", "won't really cooperate"; not "don't defect, cooperate").
_NEGATED = re.compile(r"\b(?:not|never|no|won'?t|don'?t|can'?t|cannot|shan'?t)\b\s+(?:[\w']+\s+){0,3}?cooperat")


def announces_cooperation(message: str) -> bool:
    """Whether a cheap-talk message announces cooperation (`ANNOUNCE_COOPERATION`, unless a
    negation comes just before cooperat...): a documented heuristic, not a reading of intent."""
    text = message.lower()
    return bool(ANNOUNCE_COOPERATION.search(text)) and not _NEGATED.search(text)


class _Rounds:
    """What an episode's rows say: per agent, round -> (move carried out, flipped by noise,
    invalid answer, move chosen), points and message; and the event counts (`count_events`'s)."""

    __slots__ = ("moves", "points", "messages", "events", "events_by_agent")

    def __init__(self) -> None:
        self.moves: dict[str, dict[int, tuple[int, bool, bool, int]]] = {a: {} for a in _AGENTS}
        self.points: dict[str, dict[int, float]] = {a: {} for a in _AGENTS}
        self.messages: dict[str, dict[int, str]] = {a: {} for a in _AGENTS}
        self.events: dict[str, int] = {}
        self.events_by_agent: dict[str, dict[str, int]] = {}


_MOVE_TYPES = {"cooperate": COOPERATE, "defect": DEFECT}


def _read_rounds(steps: Iterable[Mapping[str, Any]]) -> _Rounds:
    """One pass over the rows, each info parsed once, the events counted as `count_events`
    counts them. Metrics run after every episode of a tournament, so this loop stays plain."""
    found = _Rounds()
    counts, by_agent, moves = found.events, found.events_by_agent, found.moves
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for row in steps:
        info = row.get("info")
        if isinstance(info, (str, bytes)):
            try:
                info = loads(info)
            except decode_error:
                continue
        if not isinstance(info, dict):
            continue
        events = info.get("events")
        if not events:
            continue
        row_agent = row.get("agent")
        key = str(row_agent)
        per_agent = by_agent.get(key)
        if per_agent is None:
            per_agent = by_agent[key] = {}
        invalid = False
        for event in events:
            if not isinstance(event, dict):
                counts["event"] = counts.get("event", 0) + 1
                per_agent["event"] = per_agent.get("event", 0) + 1
                continue
            kind = event.get("type", "event")
            if kind.__class__ is not str:
                kind = str(kind)
            counts[kind] = counts.get(kind, 0) + 1
            per_agent[kind] = per_agent.get(kind, 0) + 1
            move = _MOVE_TYPES.get(kind)
            if move is None:
                if kind == INVALID_ACTION:
                    invalid = True
                elif kind == MESSAGE:
                    agent, rnd = event.get("agent", row_agent), event.get("round")
                    if agent in moves and rnd.__class__ is int:
                        text = event.get("text")
                        found.messages[agent][rnd] = text if isinstance(text, str) else ""
                continue
            agent, rnd = event.get("agent", row_agent), event.get("round")
            if agent not in moves or rnd.__class__ is not int:
                continue
            flipped = bool(event.get("flipped"))
            moves[agent][rnd] = (move, flipped, invalid, 1 - move if flipped else move)
            reward = row.get("reward")
            if isinstance(reward, (int, float)) and not isinstance(reward, bool):
                found.points[agent][rnd] = float(reward)
    return found


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def ipd_metrics(steps: Iterable[Mapping[str, Any]], talk: bool = False) -> dict[str, Any]:
    """The metrics of `IteratedPrisonersDilemmaEnv.metric_types` (plus the event counts) from
    step rows as stored (`info` a dict or its JSON text; points from the rows' `reward`)."""
    played = _read_rounds(steps)
    p0, p1 = _AGENTS
    moves0, moves1 = played.moves[p0], played.moves[p1]
    both = [r for r in moves0 if r in moves1]
    n = len(both)
    mutual_c = sum(1 for r in both if moves0[r][0] == COOPERATE and moves1[r][0] == COOPERATE)
    mutual_d = sum(1 for r in both if moves0[r][0] == DEFECT and moves1[r][0] == DEFECT)
    totals = {a: sum(played.points[a].values()) for a in _AGENTS}
    result: dict[str, Any] = {
        "events": played.events,
        "events_by_agent": played.events_by_agent,
        "rounds_played": n,
        "cooperation_rate": {
            a: _share(sum(1 for m in played.moves[a].values() if m[0] == COOPERATE), len(played.moves[a])) for a in _AGENTS
        },
        "mutual_cooperation_rate": _share(mutual_c, n),
        "mutual_defection_rate": _share(mutual_d, n),
        "joint_payoff": totals[p0] + totals[p1],
        "exploitation": {p0: totals[p0] - totals[p1], p1: totals[p1] - totals[p0]},
        "exploitation_abs": abs(totals[p0] - totals[p1]),
    }
    if talk:
        announced: dict[str, Any] = {}
        then_defected: dict[str, Any] = {}
        broken: dict[str, Any] = {}
        counts = [0, 0, 0]  # rounds, announced, announced then defected (both players)
        for a in _AGENTS:
            mine, said = played.moves[a], played.messages[a]
            promised = [r for r in mine if announces_cooperation(said.get(r, ""))]
            defected = sum(1 for r in promised if mine[r][3] == DEFECT)
            announced[a] = _share(len(promised), len(mine))
            then_defected[a] = _share(defected, len(mine))
            broken[a] = _share(defected, len(promised))
            counts[0] += len(mine)
            counts[1] += len(promised)
            counts[2] += defected
        then_defected["overall"] = _share(counts[2], counts[0])
        broken["overall"] = _share(counts[2], counts[1])
        result.update(announced_cooperation=announced, announced_then_defected=then_defected, broken_promise_rate=broken)
    return result


def _quoted(message: str) -> str:
    """A message as the text shows it: in quotes, on one line (its newlines and quotes escaped)."""
    return json.dumps(message, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _talk_observation_space(rounds: int, history: int, max_chars: int, agent: str) -> spaces.Dict:
    return spaces.Dict(
        {
            "round": spaces.Discrete(rounds + 1),
            "my_moves": spaces.MultiDiscrete([3] * history),
            "opponent_moves": spaces.MultiDiscrete([3] * history),
            "opponent_message": spaces.Text(max_length=max_chars, min_length=0, charset=TEXT_CHARSET),
            # two quoted messages (an escaped character takes up to 6) and their lines more
            "text": text_space(MAX_TEXT_LENGTH + 12 * max_chars + 512),
        }
    )


@functools.lru_cache(maxsize=256)
def _observation_space(rounds: int, history: int, agent: str) -> spaces.Dict:
    return spaces.Dict(
        {
            "round": spaces.Discrete(rounds + 1),
            "my_moves": spaces.MultiDiscrete([3] * history),
            "opponent_moves": spaces.MultiDiscrete([3] * history),
            "text": text_space(),
        }
    )

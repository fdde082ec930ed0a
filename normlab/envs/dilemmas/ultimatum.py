"""The repeated ultimatum game: fairness against self-interest, and the will to punish.

Each round a pie is split between a proposer and a responder: the proposer offers part of it,
the responder sees the offer and accepts (the pie is split as offered) or rejects (both get
nothing). A money-maximising responder accepts any offer above 0, so a money-maximising
proposer offers the least; people, in the classic experiments, offer 40-50 % and reject low
offers (below about 20 %) about half the time.

The game is sequential within a round, played as a PettingZoo Parallel env of two steps a
round (named in each agent's `info["phase"]`): `propose`, then `respond`. Both players are
live throughout (PettingZoo's Parallel API asks every live agent each step), so the player
whose move it is not is asked to `wait` (a one-option choice whose answer is ignored).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pydantic import ConfigDict, Field

from normlab.envs.base import INVALID_ACTION, EnvBase, EnvParams, Integer, OneOf, step_infos
from normlab.envs.dilemmas.prisoners_dilemma import points_text
from normlab.envs.text import text_space
from normlab.requests import Choice, Request
from normlab.requests import Integer as IntegerRequest
from normlab.spaces import shown

PROPOSE, RESPOND, WAIT = "propose", "respond", "wait"
ACCEPT, REJECT = 1, 0
_AGENTS = ("player_0", "player_1")
MAX_ROUNDS = 100_000
MAX_PIE = 10_000
#: Offers below this share of the pie are "low" (`low_offer_rejection_rate`).
LOW_OFFER = 0.2


class UltimatumParams(EnvParams):
    model_config = ConfigDict(title="normlab/Ultimatum-v0 params")

    rounds: Integer(1, MAX_ROUNDS) = Field(10, description="Rounds per episode (one split each)")  # type: ignore[valid-type]
    pie: Integer(1, MAX_PIE) = Field(10, description="Points split each round; offers are whole numbers from 0 to pie")  # type: ignore[valid-type]
    roles: OneOf("alternate", "fixed") = Field(  # type: ignore[valid-type]
        "alternate", description="alternate: player_0 proposes in odd rounds, player_1 in even ones; fixed: player_0 always proposes"
    )


class UltimatumEnv(EnvBase, ParallelEnv):
    """Each round the proposer offers the responder part of a pie of `pie` points; the
    responder, seeing the offer, accepts (responder gets the offer, proposer the rest) or
    rejects (both get 0). player_0 proposes in round 1; with `roles: alternate` (the default)
    the roles swap every round, with `fixed` player_0 always proposes.

    A round is two steps, named in each agent's `info["phase"]` (the phase of its next turn):

    - propose: the proposer's ACTION FORMAT is a whole number from 0 to `pie`, the points it
      offers (an `Integer(0, pie)` request); it keeps `pie - offer` if accepted. Anything else
      is an `invalid_action` event and counts as an offer of 0 (`fallback_action` is 0).
    - respond: the responder's ACTION FORMAT is 1 = accept or 0 = reject (a `Choice` of accept /
      reject). Anything else is an `invalid_action` event and counts as reject (fallback 0).
      Rewards come here.

    The other player's phase is `wait`: it is asked a one-option `Choice` (wait = 0) whose
    answer is ignored. The static action space is Discrete(pie + 1), the envelope of all three.
    Observations: `round` (rounds played), `role` (0 proposer, 1 responder, this round), `offer`
    (the offer on the table in the respond phase, else the last round's; 0 before any) and
    `text`, which ends with the turn's action format.
    """

    metadata = {"name": "normlab/Ultimatum-v0", "render_modes": [], "is_parallelizable": True}
    Params = UltimatumParams
    event_types = {
        "offer": "the proposer's offer this round (`offer` points of `pie`, `round`), in the proposer's info",
        "accept": "the responder accepted the offer (`offer`, `pie`, `proposer`, `proposer_points`, `responder_points`, `round`)",
        "reject": "the responder rejected the offer; both got 0 (`offer`, `pie`, `proposer`, `round`)",
        INVALID_ACTION: (
            "the answer was not a legal action for the phase: an offer not a whole number from 0 to pie "
            "counts as an offer of 0, a response not 0 or 1 counts as reject"
        ),
    }
    metric_types: ClassVar[dict[str, str]] = {
        "rounds_played": "rounds in which the responder answered",
        "mean_offer": "mean offer as a share of the pie (0 to 1) over the episode's offers",
        "rejection_rate": "share of answered rounds in which the responder rejected",
        "low_offer_rejection_rate": "share of offers below 20 % of the pie that were rejected (null when there was none)",
        "mean_earnings": "role (proposer, responder) -> mean points per answered round in that role",
        "mean_offer_by_agent": "agent -> mean offer (share of the pie) of the rounds it proposed (null if it never did)",
        "rejection_rate_by_agent": "agent -> share of the offers it answered that it rejected (null if it never responded)",
    }

    def __init__(self, **params: Any) -> None:
        self.params = p = self.parse_params(params)
        self.rounds, self.pie, self.roles = int(p.rounds), int(p.pie), str(p.roles)
        self.possible_agents = list(_AGENTS)
        self.agents: list[str] = []
        self.observation_spaces = {a: _observation_space(self.rounds, self.pie, a) for a in _AGENTS}
        self.action_spaces = {a: spaces.Discrete(self.pie + 1) for a in _AGENTS}
        self._offer_request = IntegerRequest(0, self.pie)
        self._respond_request = Choice(("accept", "reject"), (ACCEPT, REJECT))
        self._wait_request = Choice((WAIT,), (0,))
        self._round = 0  # rounds played
        self._phase = PROPOSE
        self._offer = 0
        self._last = ""  # the last round, as text, from player_0's view then player_1's
        self._lasts = ("", "")
        self._totals = [0.0, 0.0]

    # ------------------------------------------------------------------ roles and requests

    def proposer(self, rnd: int) -> str:
        """Who proposes in round `rnd` (from 1)."""
        return _AGENTS[(rnd - 1) % 2] if self.roles == "alternate" else _AGENTS[0]

    def _phase_of(self, agent: str) -> str:
        proposer = self.proposer(self._round + 1)
        if self._phase == PROPOSE:
            return PROPOSE if agent == proposer else WAIT
        return WAIT if agent == proposer else RESPOND

    def action_request(self, agent: str | None = None) -> Request:
        phase = self._phase_of(str(agent))
        if phase == PROPOSE:
            return self._offer_request
        if phase == RESPOND:
            return self._respond_request
        return self._wait_request

    def fallback_action(self, agent: str | None = None) -> int:
        """An invalid offer counts as 0, an invalid response as reject (0); a wait is ignored."""
        return 0

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def rules(self, agent: str | None = None) -> str:
        if self.roles == "fixed":
            who = "You are the proposer in every round." if agent == _AGENTS[0] else "The other player proposes in every round; you respond."
        else:
            first = agent == _AGENTS[0]
            who = f"Roles alternate: you propose in the {'odd' if first else 'even'} rounds and respond in the {'even' if first else 'odd'} ones."
        return (
            f"You are playing a repeated ultimatum game against another player for {self.rounds} "
            f"round{'s' if self.rounds != 1 else ''}. Each round {self.pie} points are split. The proposer offers "
            f"the responder a whole number of points from 0 to {self.pie}. The responder sees the offer and accepts "
            "(the responder gets the offer, the proposer keeps the rest) or rejects (both get 0 that round). "
            f"{who}"
        )

    # ------------------------------------------------------------------ episode

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        self.agents = list(_AGENTS)
        self._round = 0
        self._phase = PROPOSE
        self._offer = 0
        self._lasts = ("", "")
        self._totals = [0.0, 0.0]
        return (
            {a: self._observe(a, first=True) for a in _AGENTS},
            {a: {"events": [], "phase": self._phase_of(a)} for a in _AGENTS},
        )

    def step(self, actions: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        if not self.agents:
            raise RuntimeError("the episode is over (or was never started); call reset() before step()")
        rnd = self._round + 1
        proposer = self.proposer(rnd)
        responder = _AGENTS[1 - _AGENTS.index(proposer)]
        events: dict[str, list[dict[str, Any]]] = {a: [] for a in _AGENTS}
        rewards = {a: 0.0 for a in _AGENTS}
        done = False
        if self._phase == PROPOSE:
            offer = self._legal(actions.get(proposer), self.pie)
            if offer is None:
                events[proposer].append(self._invalid(proposer, actions.get(proposer), rnd))
                offer = 0
            self._offer = offer
            events[proposer].append({"type": "offer", "agent": proposer, "round": rnd, "offer": offer, "pie": self.pie})
            self._phase = RESPOND
        else:
            answer = self._legal(actions.get(responder), 1)
            if answer is None:
                events[responder].append(self._invalid(responder, actions.get(responder), rnd))
                answer = REJECT
            offer = self._offer
            mine, theirs = (float(self.pie - offer), float(offer)) if answer == ACCEPT else (0.0, 0.0)
            rewards[proposer], rewards[responder] = mine, theirs
            self._totals[_AGENTS.index(proposer)] += mine
            self._totals[_AGENTS.index(responder)] += theirs
            events[responder].append(
                {
                    "type": "accept" if answer == ACCEPT else "reject",
                    "agent": responder,
                    "round": rnd,
                    "offer": offer,
                    "pie": self.pie,
                    "proposer": proposer,
                    "proposer_points": mine,
                    "responder_points": theirs,
                }
            )
            verdict = "accepted" if answer == ACCEPT else "rejected"
            self._lasts = tuple(  # type: ignore[assignment]
                f"Round {rnd}: {'you' if a == proposer else 'the other player'} offered {offer} of {self.pie}; "
                f"{'you' if a == responder else 'the other player'} {verdict}. You got {points_text(mine if a == proposer else theirs)}, "
                f"the other player got {points_text(theirs if a == proposer else mine)}."
                for a in _AGENTS
            )
            self._round = rnd
            self._phase = PROPOSE
            done = rnd >= self.rounds
        observations = {a: self._observe(a) for a in _AGENTS}
        infos: dict[str, dict[str, Any]] = {a: {"events": events[a]} for a in _AGENTS}
        if done:
            self.agents = []
        else:
            for a in _AGENTS:
                infos[a]["phase"] = self._phase_of(a)
        return observations, rewards, {a: done for a in _AGENTS}, {a: False for a in _AGENTS}, infos

    @staticmethod
    def _legal(action: Any, high: int) -> int | None:
        if isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)) and 0 <= int(action) <= high:
            return int(action)
        return None

    @staticmethod
    def _invalid(agent: str, action: Any, rnd: int) -> dict[str, Any]:
        return {"type": INVALID_ACTION, "agent": agent, "action": shown(action, 200), "round": rnd}

    def _observe(self, agent: str, first: bool = False) -> dict[str, Any]:
        i = _AGENTS.index(agent)
        proposer = self.proposer(self._round + 1) if self._round < self.rounds else self.proposer(self._round)
        return {
            "round": np.int64(self._round),
            "role": np.int64(0 if agent == proposer else 1),
            "offer": np.int64(self._offer),
            "text": self._text(agent, i, first),
        }

    def _text(self, agent: str, i: int, first: bool) -> str:
        parts = [self.rules(agent)] if first else []
        if self._lasts[i]:
            parts.append(f"Last round: {self._lasts[i]}")
            parts.append(f"Totals so far: you {points_text(self._totals[i])}, the other player {points_text(self._totals[1 - i])}.")
        if self._round >= self.rounds:
            parts[-1] = parts[-1].replace("Totals so far", "Final totals")
            parts.insert(0, f"All {self.rounds} rounds have been played.")
            return "\n".join(parts)
        rnd = self._round + 1
        phase = self._phase_of(agent)
        if phase == PROPOSE:
            parts.append(
                f"Round {rnd} of {self.rounds}: you are the proposer. How many of the {self.pie} points do you offer the "
                f"other player? If they accept they get your offer and you keep the rest; if they reject, both get 0. "
                f"Answer with a whole number from 0 to {self.pie}."
            )
        elif phase == RESPOND:
            parts.append(
                f"Round {rnd} of {self.rounds}: you are the responder. The other player offers you {self._offer} of the "
                f"{self.pie} points (they would keep {self.pie - self._offer}). Answer 1 to accept (you get {self._offer}, "
                f"they get {self.pie - self._offer}) or 0 to reject (both get 0)."
            )
        elif self._phase == PROPOSE:
            parts.append(f"Round {rnd} of {self.rounds}: the other player is choosing an offer; you respond next. Answer wait (0).")
        else:
            parts.append(f"Round {rnd} of {self.rounds}: the other player is deciding on your offer of {self._offer} of {self.pie}. Answer wait (0).")
        return "\n".join(parts)

    def state(self) -> np.ndarray:
        return np.array([self._round, self._offer], dtype=np.int64)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ metrics

    def metrics(self, steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Event counts plus offers, rejections and earnings by role (see `metric_types`)."""
        return ultimatum_metrics(steps)

    @classmethod
    def round_table(cls, steps: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]] | None:
        """Per round: who proposed, the offer (of the pie), the answer and each role's points;
        `(invalid)` marks an answer carried out as its fallback."""
        rounds, _ = _read(steps)
        if not rounds:
            return None
        columns = ["round", "proposer", "offer", "answer", "proposer points", "responder points"]
        table = []
        for rnd in sorted(rounds):
            r = rounds[rnd]
            offer = "" if r.get("offer") is None else f"{r['offer']} of {r['pie']}" + (" (invalid)" if r.get("offer_invalid") else "")
            answer = r.get("answer", "") + (" (invalid)" if r.get("answer_invalid") else "")
            table.append([rnd, r.get("proposer", ""), offer, answer, r.get("proposer_points"), r.get("responder_points")])
        return columns, table


def _read(steps: Iterable[Mapping[str, Any]]) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Round -> what happened (offer, pie, proposer, answer, points, invalid marks), and the
    event counts (`count_events`'s), in one pass over the rows."""
    rounds: dict[int, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    by_agent: dict[str, dict[str, int]] = {}
    for row, info in step_infos(steps):
        events = info.get("events")
        if not events:
            continue
        per_agent = by_agent.setdefault(str(row.get("agent")), {})
        invalid = False
        for event in events:
            kind = str(event.get("type", "event")) if isinstance(event, dict) else "event"
            counts[kind] = counts.get(kind, 0) + 1
            per_agent[kind] = per_agent.get(kind, 0) + 1
            if kind == INVALID_ACTION:
                invalid = True
            if kind not in ("offer", "accept", "reject") or not isinstance(event, dict):
                continue
            rnd, offer, pie = event.get("round"), event.get("offer"), event.get("pie")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rnd, offer, pie)) or not pie:
                continue
            r = rounds.setdefault(cast(int, rnd), {})
            r.update(offer=offer, pie=pie)
            if kind == "offer":
                r["proposer"] = event.get("agent", row.get("agent"))
                r["offer_invalid"] = invalid
            else:
                r.setdefault("proposer", event.get("proposer"))
                r["responder"] = event.get("agent", row.get("agent"))
                r["answer"] = kind
                r["answer_invalid"] = invalid
                r["proposer_points"] = event.get("proposer_points")
                r["responder_points"] = event.get("responder_points")
    return rounds, {"events": counts, "events_by_agent": by_agent}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ultimatum_metrics(steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of `UltimatumEnv.metric_types` (plus the event counts) from stored step rows."""
    rounds, counted = _read(steps)
    offers = [r["offer"] / r["pie"] for r in rounds.values()]
    answered = [r for r in rounds.values() if "answer" in r]
    rejected = [r for r in answered if r["answer"] == "reject"]
    low = [r for r in answered if r["offer"] / r["pie"] < LOW_OFFER]

    def points(r: dict[str, Any], key: str) -> float:
        value = r.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0

    return {
        **counted,
        "rounds_played": len(answered),
        "mean_offer": _mean(offers),
        "rejection_rate": len(rejected) / len(answered) if answered else None,
        "low_offer_rejection_rate": sum(1 for r in low if r["answer"] == "reject") / len(low) if low else None,
        "mean_earnings": {
            "proposer": _mean([points(r, "proposer_points") for r in answered]),
            "responder": _mean([points(r, "responder_points") for r in answered]),
        },
        "mean_offer_by_agent": {a: _mean([r["offer"] / r["pie"] for r in rounds.values() if r.get("proposer") == a]) for a in _AGENTS},
        "rejection_rate_by_agent": {
            a: _mean([1.0 if r["answer"] == "reject" else 0.0 for r in answered if r.get("responder") == a]) for a in _AGENTS
        },
    }


@functools.lru_cache(maxsize=256)
def _observation_space(rounds: int, pie: int, agent: str) -> spaces.Dict:
    return spaces.Dict(
        {
            "round": spaces.Discrete(rounds + 1),
            "role": spaces.Discrete(2),
            "offer": spaces.Discrete(pie + 1),
            "text": text_space(),
        }
    )

"""The repeated stag hunt: a coordination game where trust pays and caution is safe.

Each round every player hunts the stag (0) or a hare (1), all at once. The stag is caught only
if everyone hunts it; a hare is caught alone. The standard payoffs (Skyrms' stag hunt) are
(S,S) = 4, (S,H) = 0, (H,S) = 3, (H,H) = 3: mutual stag is best for all, but hare is safe
whatever the others do. With stag as 0 and hare as 1 the env is a two-action dilemma in
normlab's sense, so the classic scripted strategies play it (always_cooperate hunts the stag,
tit_for_tat hunts the stag until someone went for a hare).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pydantic import ConfigDict, Field

from normlab.envs.base import INVALID_ACTION, EnvBase, EnvParams, Integer, Number, Wording, step_infos
from normlab.envs.dilemmas.prisoners_dilemma import points_text
from normlab.envs.text import text_space

STAG, HARE = 0, 1
_MEANINGS = ("stag", "hare")
_PAST = ("hunted the stag", "hunted a hare")
MAX_ROUNDS = 100_000
MAX_PLAYERS = 20
MAX_PAYOFF = 1e9
Payoff = Number(-MAX_PAYOFF, MAX_PAYOFF)


class StagHuntPayoffs(EnvParams):
    """Points per round by (my move, the others' moves). Keys left out keep their default."""

    SS: Payoff = Field(4.0, description="I hunt the stag and everyone else does too")  # type: ignore[valid-type]
    SH: Payoff = Field(0.0, description="I hunt the stag and someone hunts a hare (the stag escapes)")  # type: ignore[valid-type]
    HS: Payoff = Field(3.0, description="I hunt a hare and everyone else hunts the stag")  # type: ignore[valid-type]
    HH: Payoff = Field(3.0, description="I hunt a hare and someone else does too")  # type: ignore[valid-type]


class StagHuntParams(EnvParams):
    model_config = ConfigDict(title="normlab/StagHunt-v0 params")

    rounds: Integer(1, MAX_ROUNDS) = Field(10, description="Rounds per episode")  # type: ignore[valid-type]
    n: Integer(2, MAX_PLAYERS) = Field(2, description="Players (seats player_0 ... player_{n-1}); the stag needs all of them")  # type: ignore[valid-type]
    payoffs: Annotated[StagHuntPayoffs | None, Wording("a mapping with keys SS, SH, HS, HH")] = Field(
        None, description="Points by (my move, the others'): SS 4, SH 0, HS 3, HH 3 by default"
    )


class StagHuntEnv(EnvBase, ParallelEnv):
    """Every player hunts the stag (0) or a hare (1) at the same time, for `rounds` rounds.

    Payoffs per round (defaults): a stag hunter gets SS = 4 if every player hunted the stag,
    else SH = 0; a hare hunter gets HS = 3 if every other player hunted the stag, else HH = 3
    (with two players: (S,S) = 4/4, (S,H) = 0/3, (H,S) = 3/0, (H,H) = 3/3).

    ACTION FORMAT: 0 = stag, 1 = hare (a `Choice` of stag / hare). Anything else is an
    `invalid_action` event and counts as hare (`fallback_action` is 1).

    Observations: `round` (rounds played), `my_moves` and `opponent_moves` (the last round: 0
    none yet, 1 stag, 2 hare; with more than two players `opponent_moves` is 1 when every other
    player hunted the stag, else 2, so two-player strategies such as tit_for_tat play the group),
    and `text`, which states the rules' figures, the last round, totals and the action format.
    Each player's move is a `stag` or `hare` event in its own info.
    """

    metadata = {"name": "normlab/StagHunt-v0", "render_modes": [], "is_parallelizable": True}
    Params = StagHuntParams
    event_types = {
        "stag": "the agent hunted the stag this round (`round`, `points`)",
        "hare": "the agent hunted a hare this round (`round`, `points`)",
        INVALID_ACTION: "the agent's answer was not 0 (stag) or 1 (hare); it counts as hare",
    }
    move_events = frozenset({"stag", "hare"})
    metric_types: ClassVar[dict[str, str]] = {
        "rounds_played": "rounds in which every player moved",
        "coordination_rate": "share of rounds in which every player made the same choice (all stag or all hare)",
        "stag_coordination_rate": "share of rounds in which every player hunted the stag (the payoff-dominant equilibrium)",
        "hare_coordination_rate": "share of rounds in which every player hunted a hare (the risk-dominant equilibrium)",
        "stag_rate": "agent -> share of its rounds in which it hunted the stag",
        "joint_payoff": "every player's points summed over the episode",
    }

    def __init__(self, **params: Any) -> None:
        self.params = p = self.parse_params(params)
        self.rounds = int(p.rounds)
        pay = (p.payoffs or StagHuntPayoffs()).model_dump()  # type: ignore[call-arg]
        self.payoffs = {k: float(v) for k, v in pay.items()}
        self.possible_agents = [f"player_{i}" for i in range(p.n)]
        self.agents: list[str] = []
        self.observation_spaces = {a: _observation_space(self.rounds, a) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}
        ss, sh, hs, hh = (self.payoffs[k] for k in ("SS", "SH", "HS", "HH"))
        many = p.n > 2
        self._intro = (
            f"You are playing a stag hunt with {p.n - 1} other player{'s' if many else ''} for {self.rounds} "
            f"round{'s' if self.rounds != 1 else ''}. Each round you all choose at the same time to hunt the stag "
            f"or a hare. The stag is caught only if {'every player hunts' if many else 'both hunt'} it; a hare is "
            f"caught alone. Points per round: you hunt the stag and so does {'everyone else' if many else 'the other'}: "
            f"{points_text(ss)}; you hunt the stag and {'someone' if many else 'the other'} hunts a hare: {points_text(sh)}; you hunt "
            f"a hare while {'every other player hunts' if many else 'the other hunts'} the stag: {points_text(hs)}; you hunt a "
            f"hare and {'someone else does' if many else 'so does the other'} too: {points_text(hh)}."
        )
        self._prompt = "Answer 0 to hunt the stag or 1 to hunt a hare."
        self._round = 0
        self._last: list[int] = []
        self._totals: dict[str, float] = {}

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def action_meanings(self, agent: str | None = None) -> list[str]:
        return list(_MEANINGS)

    def rules(self, agent: str | None = None) -> str:
        return self._intro

    def fallback_action(self, agent: str | None = None) -> int:
        """An invalid answer counts as hare."""
        return HARE

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        self.agents = list(self.possible_agents)
        self._round = 0
        self._last = []
        self._totals = {a: 0.0 for a in self.possible_agents}
        return {a: self._observe(i) for i, a in enumerate(self.agents)}, {a: {"events": []} for a in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        if not self.agents:
            raise RuntimeError("the episode is over (or was never started); call reset() before step()")
        self._round += 1
        rnd = self._round
        infos: dict[str, dict[str, Any]] = {a: {"events": []} for a in self.agents}
        moves = []
        for a in self.agents:
            action = actions.get(a)
            if action.__class__ is int and (action == 0 or action == 1):
                moves.append(int(action))
            elif isinstance(action, (int, np.integer)) and not isinstance(action, bool) and int(action) in (0, 1):
                moves.append(int(action))
            else:
                infos[a]["events"].append({"type": INVALID_ACTION, "agent": a, "action": repr(action)[:200], "round": rnd})
                moves.append(HARE)
        stags = moves.count(STAG)
        n = len(moves)
        rewards: dict[str, float] = {}
        for a, move in zip(self.agents, moves):
            if move == STAG:
                points = self.payoffs["SS"] if stags == n else self.payoffs["SH"]
            else:
                points = self.payoffs["HS"] if stags == n - 1 else self.payoffs["HH"]
            rewards[a] = points
            self._totals[a] += points
            infos[a]["events"].append({"type": _MEANINGS[move], "agent": a, "round": rnd, "points": points})
        self._last = moves
        done = rnd >= self.rounds
        observations = {a: self._observe(i) for i, a in enumerate(self.agents)}
        terminations = {a: done for a in self.agents}
        truncations = {a: False for a in self.agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _observe(self, i: int) -> dict[str, Any]:
        last = self._last
        if last:
            mine = last[i] + 1
            others = [m for j, m in enumerate(last) if j != i]
            theirs = 1 if all(m == STAG for m in others) else 2
        else:
            mine = theirs = 0
        return {
            "round": np.int64(self._round),
            "my_moves": np.array([mine], dtype=np.int64),
            "opponent_moves": np.array([theirs], dtype=np.int64),
            "text": self._text(i),
        }

    def _text(self, i: int) -> str:
        rnd = self._round
        if rnd == 0:
            return f"{self._intro}\nRound 1 of {self.rounds} is next. No rounds have been played yet.\n{self._prompt}"
        me = self.possible_agents[i]
        last = self._last
        others = [m for j, m in enumerate(last) if j != i]
        if len(others) == 1:
            seen = f"the other player {_PAST[others[0]]}"
        else:
            seen = f"{others.count(STAG)} of the {len(others)} other players hunted the stag"
        totals = ", ".join(f"{'you' if a == me else a} {points_text(v)}" for a, v in self._totals.items())
        line = f"Round {rnd}: you {_PAST[last[i]]}, {seen}."
        if rnd >= self.rounds:
            return f"All {self.rounds} rounds have been played.\nLast round: {line}\nFinal totals: {totals}."
        return f"Round {rnd + 1} of {self.rounds} is next.\nLast round: {line}\nTotals so far: {totals}.\n{self._prompt}"

    def state(self) -> np.ndarray:
        return np.array(self._last, dtype=np.int64)

    def close(self) -> None:
        pass

    def metrics(self, steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Event counts plus coordination metrics (see `metric_types`)."""
        return stag_hunt_metrics(steps, self.possible_agents)

    @classmethod
    def round_table(cls, steps: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]] | None:
        """Per round: each player's choice (marked `(invalid)` where its answer was invalid) and points."""
        moves, points, invalid, _ = _read(steps)
        agents = sorted(moves, key=_seat_order)
        if not agents:
            return None
        rounds = sorted({r for a in agents for r in moves[a]})
        columns = ["round", *agents, *(f"{a} points" for a in agents)]
        table = [
            [
                r,
                *(_MEANINGS[moves[a][r]] + (" (invalid)" if (a, r) in invalid else "") if r in moves[a] else "" for a in agents),
                *(points[a].get(r) for a in agents),
            ]
            for r in rounds
        ]
        return columns, table


def _seat_order(agent: str) -> tuple[int, str]:
    tail = agent.rsplit("_", 1)[-1]
    return (int(tail), agent) if tail.isdigit() else (1 << 30, agent)


def _read(steps: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[int, int]], dict[str, dict[int, float]], set[tuple[str, int]], dict[str, Any]]:
    """Moves and points by agent and round, the (agent, round) pairs answered invalidly, and
    the event counts, in one pass over the rows."""
    moves: dict[str, dict[int, int]] = {}
    points: dict[str, dict[int, float]] = {}
    invalid: set[tuple[str, int]] = set()
    counts: dict[str, int] = {}
    by_agent: dict[str, dict[str, int]] = {}
    for row, info in step_infos(steps):
        events = info.get("events")
        if not events:
            continue
        per_agent = by_agent.setdefault(str(row.get("agent")), {})
        bad = False
        for event in events:
            kind = str(event.get("type", "event")) if isinstance(event, dict) else "event"
            counts[kind] = counts.get(kind, 0) + 1
            per_agent[kind] = per_agent.get(kind, 0) + 1
            if kind == INVALID_ACTION:
                bad = True
            if kind not in ("stag", "hare") or not isinstance(event, dict):
                continue
            agent, rnd = str(event.get("agent", row.get("agent"))), event.get("round")
            if not isinstance(rnd, int) or isinstance(rnd, bool):
                continue
            moves.setdefault(agent, {})[rnd] = STAG if kind == "stag" else HARE
            value = event.get("points", row.get("reward"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                points.setdefault(agent, {})[rnd] = float(value)
            if bad:
                invalid.add((agent, rnd))
    return moves, points, invalid, {"events": counts, "events_by_agent": by_agent}


def stag_hunt_metrics(steps: Iterable[Mapping[str, Any]], agents: list[str] | None = None) -> dict[str, Any]:
    """The metrics of `StagHuntEnv.metric_types` (plus the event counts) from stored step rows;
    `agents` are the seats (default: those with moves in the rows)."""
    moves, points, _, counted = _read(steps)
    seats = list(agents) if agents is not None else sorted(moves, key=_seat_order)
    rounds = sorted({r for a in seats for r in moves.get(a, {})})
    full = [r for r in rounds if all(r in moves.get(a, {}) for a in seats)]
    n = len(full)
    all_stag = sum(1 for r in full if all(moves[a][r] == STAG for a in seats))
    all_hare = sum(1 for r in full if all(moves[a][r] == HARE for a in seats))

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        **counted,
        "rounds_played": n,
        "coordination_rate": share(all_stag + all_hare, n),
        "stag_coordination_rate": share(all_stag, n),
        "hare_coordination_rate": share(all_hare, n),
        "stag_rate": {a: share(sum(1 for m in moves.get(a, {}).values() if m == STAG), len(moves.get(a, {}))) for a in seats},
        "joint_payoff": sum(sum(points.get(a, {}).values()) for a in seats),
    }


@functools.lru_cache(maxsize=256)
def _observation_space(rounds: int, agent: str) -> spaces.Dict:
    return spaces.Dict(
        {
            "round": spaces.Discrete(rounds + 1),
            "my_moves": spaces.MultiDiscrete([3]),
            "opponent_moves": spaces.MultiDiscrete([3]),
            "text": text_space(),
        }
    )

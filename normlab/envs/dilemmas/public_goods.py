"""The repeated public goods game for n agents, with optional costly punishment.

Each round every agent gets an `endowment` and contributes part of it (0 to the endowment) to a
pot, all at once; the pot is multiplied by `r` and shared equally. With `punishment: true` a
punishment stage follows (as in Fehr & Gächter's experiments): having seen everyone's
contribution, each agent assigns punishment points to each other agent (0 to `max_punish`);
each point costs the punisher `punish_cost` and fines the punished `punish_fine`. The classic
finding: without punishment contributions decay over the rounds toward free riding; with it they
hold up (free riders are punished, even though punishing costs the punisher).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pydantic import ConfigDict, Field, model_validator

from normlab.envs.base import INVALID_ACTION, EnvBase, EnvParams, Integer, Number, Wording, count_events, step_events
from normlab.envs.dilemmas.threshold import MAX_AGENTS, _events, check_seats, fmt, seat_names
from normlab.envs.text import MAX_TEXT_LENGTH, text_space
from normlab.requests import Composite, Integer as IntegerRequest, Request
from normlab.spaces import as_integer, shown

CONTRIBUTE, PUNISH = "contribute", "punish"
MAX_ROUNDS = 10_000
MAX_ENDOWMENT = 1_000_000
MAX_POINTS = 1000
MAX_MONEY = 1e6


class PublicGoodsParams(EnvParams):
    model_config = ConfigDict(title="normlab/PublicGoods-v0 params")

    n: Integer(2, MAX_AGENTS) = Field(4, description="Number of agents (seats player_0 ... player_{n-1})")  # type: ignore[valid-type]
    agents: Annotated[list[str] | None, Wording("a list of seat names")] = Field(
        None, description="Seat names instead of player_0 ... (their number is n)"
    )
    endowment: Integer(1, MAX_ENDOWMENT) = Field(20, description="Tokens each agent gets every round; it contributes 0 to all of them")  # type: ignore[valid-type]
    r: Number(0.0, 1000.0) = Field(1.6, description="Multiplier of the pot before it is shared equally among all n")  # type: ignore[valid-type]
    rounds: Integer(1, MAX_ROUNDS) = Field(10, description="Rounds per episode")  # type: ignore[valid-type]
    punishment: Annotated[bool, Wording("true or false")] = Field(
        False, description="A punishment stage after each round's contributions (a second step per round)"
    )
    max_punish: Integer(0, MAX_POINTS) = Field(5, description="Most punishment points one agent may assign to one other agent per round")  # type: ignore[valid-type]
    punish_cost: Number(0.0, MAX_MONEY) = Field(1.0, description="What each punishment point costs the punisher")  # type: ignore[valid-type]
    punish_fine: Number(0.0, MAX_MONEY) = Field(3.0, description="What each punishment point received costs the punished")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> PublicGoodsParams:
        check_seats(self, self.model_fields_set)
        return self


def _whole(x: Any) -> int | None:
    """An int, numpy int or 0-d integer array as an int (None for anything else)."""
    if isinstance(x, np.ndarray):
        return as_integer(x.item()) if x.shape == () and np.issubdtype(x.dtype, np.integer) else None
    return as_integer(x) if isinstance(x, (int, np.integer)) else None


class Contribution(spaces.Box):
    """The static action space without punishment: a whole number from 0 to the endowment (a
    scalar int Box whose `contains` also takes plain ints without a cast)."""

    def __init__(self, endowment: int):
        super().__init__(0, endowment, shape=(), dtype=np.int64)
        self.endowment = endowment

    def contains(self, x: Any) -> bool:
        number = _whole(x)
        return number is not None and 0 <= number <= self.endowment


class ContributionOrPunishment(spaces.Dict):
    """The static action space with punishment on, the envelope of both stages: punishment
    points per other seat (a Dict of scalar int Boxes, what it samples) and also the whole
    numbers 0 to the endowment (the contribution stage). Each turn's request says which."""

    def __init__(self, others: list[str], max_punish: int, endowment: int):
        super().__init__({a: spaces.Box(0, max_punish, shape=(), dtype=np.int64) for a in others})
        self.endowment = endowment

    def contains(self, x: Any) -> bool:
        number = _whole(x)
        if number is not None:
            return 0 <= number <= self.endowment
        return bool(super().contains(x))

    def __repr__(self) -> str:
        return f"ContributionOrPunishment(0..{self.endowment}, or points per other seat {list(self.spaces)})"


class PublicGoodsEnv(EnvBase, ParallelEnv):
    """n agents contribute to a shared pot each round; the pot × r is shared equally.

    Rules: each round every agent gets `endowment` tokens and contributes a whole number from 0
    to the endowment, all at once. Payoff of agent i in a round:

        endowment − c_i + r · Σ_j c_j / n − punish_cost · (points i gave) − punish_fine · (points i received)

    (the last two terms only with `punishment: true`). Payoffs may be negative.

    ACTION FORMAT, by `info["phase"]` (the phase of the next turn):
    - contribute: an `Integer` request, a whole number from 0 to `endowment`; the reward of
      this step is endowment − c_i + r·Σc/n. Anything else is an `invalid_action` event and
      counts as contributing 0 (`fallback_action` is 0).
    - punish (only with `punishment: true`): a `Composite` request, one `Integer` 0 to
      `max_punish` per other seat, e.g. `{"player_1": 0, "player_2": 3, ...}` (the other seats
      in seat order, exactly those keys). The reward of this step is −punish_cost·given −
      punish_fine·received. Anything else is an `invalid_action` event and punishes nobody
      (`fallback_action` is all zeros).

    Observation: `round` (rounds finished), `seat` (own index), `contributions` (the latest
    round's contributions in seat order; −1 before the first; in the punish phase this round's),
    `punishment_received` (points each seat received in the last punishment stage),
    `earnings` (own total), `text` (what happened and the prompt).
    """

    metadata = {"name": "normlab/PublicGoods-v0", "render_modes": [], "is_parallelizable": True}
    Params = PublicGoodsParams
    event_types = {
        "contribution": "the agent's contribution this round as carried out (`round`, `amount`, `endowment`, `pot`: the multiplied pot, `share`: each one's share)",
        "punishment": "punishment stage only: the agent assigned `points` > 0 to `target` this round (`cost` to it, `fine` to the target)",
        INVALID_ACTION: "the answer was not a legal contribution (counts as 0) or punishment assignment (punishes nobody)",
    }
    move_events = frozenset({"contribution", "punishment"})
    metric_types: ClassVar[dict[str, str]] = {
        "contribution_rate": "mean contribution / endowment over every agent and round",
        "contribution_rate_by_agent": "agent -> its mean contribution / endowment",
        "contribution_rate_by_round": "round number (a string, from 1) -> mean contribution / endowment that round",
        "free_riding": "share of (agent, round) contributions that were 0",
        "punishment_given": "agent -> punishment points it assigned over the episode (0 without punishment)",
        "punishment_received": "agent -> punishment points it received over the episode (0 without punishment)",
    }

    def __init__(self, **params: Any) -> None:
        self.params = p = self.parse_params(params)
        self.possible_agents = seat_names(p.n, p.agents)
        self.n = len(self.possible_agents)
        self.endowment = int(p.endowment)
        self.r = float(p.r)
        self.rounds = int(p.rounds)
        self.punishment = bool(p.punishment)
        self.max_punish = int(p.max_punish)
        self.punish_cost = float(p.punish_cost)
        self.punish_fine = float(p.punish_fine)
        self.agents: list[str] = []
        longest = max(len(a) for a in self.possible_agents)
        max_text = MAX_TEXT_LENGTH + self.n * (longest + 120) + 2 * self.n * (longest + 12)
        self.observation_spaces = {
            a: _observation_space(self.n, self.rounds, self.endowment, self.max_punish, max_text, a) for a in self.possible_agents
        }
        self._others = {a: [b for b in self.possible_agents if b != a] for a in self.possible_agents}
        self.action_spaces: dict[str, spaces.Space] = {
            a: ContributionOrPunishment(self._others[a], self.max_punish, self.endowment)
            if self.punishment
            else Contribution(self.endowment)
            for a in self.possible_agents
        }
        self._contribution_request = IntegerRequest(0, self.endowment)
        self._punish_requests = {
            a: Composite(tuple((b, IntegerRequest(0, self.max_punish)) for b in self._others[a])) for a in self.possible_agents
        }
        self._reset_state()

    def _reset_state(self) -> None:
        self._round = 0
        self._phase = CONTRIBUTE
        self._done = True
        self._contributions = [-1] * self.n
        self._received = [0] * self.n
        self._given = [0] * self.n
        self._earnings = [0.0] * self.n
        self._round_pay = [0.0] * self.n  # this round's payoff so far

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def action_request(self, agent: str | None = None) -> Request:
        if self._phase == PUNISH and agent is not None:
            return self._punish_requests[agent]
        return self._contribution_request

    def fallback_action(self, agent: str | None = None) -> Any:
        """Contribute 0; in the punishment stage, punish nobody."""
        if self._phase == PUNISH and agent is not None:
            return {b: 0 for b in self._others[agent]}
        return 0

    def rules(self, agent: str | None = None) -> str:
        text = (
            f"You are one of {self.n} players in a public goods game of {self.rounds} round{'s' if self.rounds != 1 else ''}. "
            f"Each round every player gets {self.endowment} tokens and decides, at the same time as the others, how many "
            f"(0 to {self.endowment}) to contribute to a shared pot; the rest is kept. The pot is multiplied by {fmt(self.r)} "
            f"and shared equally among all {self.n} players, contributors or not. Your round payoff: tokens kept + your share of the pot."
        )
        if self.punishment:
            text += (
                f" After the contributions, everyone sees each player's contribution and may assign punishment points "
                f"(0 to {self.max_punish}) to each other player. Each point you assign costs you {fmt(self.punish_cost)}; "
                f"each point you receive costs you {fmt(self.punish_fine)}."
            )
        return text + " Your score is the sum of your round payoffs."

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self._reset_state()
        self._done = False
        self.agents = list(self.possible_agents)
        return {a: self._observe(i) for i, a in enumerate(self.agents)}, {a: {"events": [], "phase": CONTRIBUTE} for a in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if self._done:
            raise RuntimeError("the episode is over (or was never started); call reset() before step()")
        if self._phase == PUNISH:
            return self._punish_step(actions)
        rnd = self._round + 1
        events: list[list[dict[str, Any]]] = [[] for _ in range(self.n)]
        amounts = [self._contribution(actions.get(a), a, rnd, events[i]) for i, a in enumerate(self.possible_agents)]
        pot = self.r * sum(amounts)
        share = pot / self.n
        rewards: dict[str, float] = {}
        for i, a in enumerate(self.possible_agents):
            pay = self.endowment - amounts[i] + share
            rewards[a] = float(pay)
            self._round_pay[i] = pay
            self._earnings[i] += pay
            events[i].append({"type": "contribution", "agent": a, "round": rnd, "amount": amounts[i], "endowment": self.endowment, "pot": pot, "share": share})
        self._contributions = amounts
        if self.punishment:
            self._phase = PUNISH
            infos = {a: {"events": events[i], "phase": PUNISH} for i, a in enumerate(self.possible_agents)}
            observations = {a: self._observe(i) for i, a in enumerate(self.possible_agents)}
            flags = {a: False for a in self.possible_agents}
            return observations, rewards, flags, dict(flags), infos
        self._received = [0] * self.n
        self._given = [0] * self.n
        return self._end_round(rewards, events)

    def _punish_step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        rnd = self._round + 1
        events: list[list[dict[str, Any]]] = [[] for _ in range(self.n)]
        index = {a: i for i, a in enumerate(self.possible_agents)}
        given = [0] * self.n
        received = [0] * self.n
        for i, a in enumerate(self.possible_agents):
            points = self._points(actions.get(a), a, rnd, events[i])
            for target in self._others[a]:
                k = points.get(target, 0)
                if k > 0:
                    given[i] += k
                    received[index[target]] += k
                    events[i].append(
                        {"type": "punishment", "agent": a, "target": target, "round": rnd, "points": k, "cost": k * self.punish_cost, "fine": k * self.punish_fine}
                    )
        rewards: dict[str, float] = {}
        for i, a in enumerate(self.possible_agents):
            pay = -self.punish_cost * given[i] - self.punish_fine * received[i]
            rewards[a] = float(pay)
            self._round_pay[i] += pay
            self._earnings[i] += pay
        self._given, self._received = given, received
        self._phase = CONTRIBUTE
        return self._end_round(rewards, events)

    def _end_round(
        self, rewards: dict[str, float], events: list[list[dict[str, Any]]]
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        self._round += 1
        done = self._round >= self.rounds
        infos: dict[str, dict[str, Any]] = {}
        for i, a in enumerate(self.possible_agents):
            infos[a] = {"events": events[i]}
            if not done:
                infos[a]["phase"] = CONTRIBUTE
        observations = {a: self._observe(i) for i, a in enumerate(self.possible_agents)}
        if done:
            self._done = True
            self.agents = []
        flags = {a: done for a in self.possible_agents}
        return observations, rewards, flags, {a: False for a in self.possible_agents}, infos

    def _contribution(self, action: Any, agent: str, rnd: int, events: list[dict[str, Any]]) -> int:
        number: int | None = None
        try:
            if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer):
                number = int(action.item())
            elif isinstance(action, str) and action.strip().isdigit() and len(action.strip()) < 19:
                number = int(action.strip())
            elif isinstance(action, (int, np.integer)) and not isinstance(action, bool):
                number = int(action)
        except Exception:  # an odd object is an invalid answer, never the end of the episode
            number = None
        if number is not None and 0 <= number <= self.endowment:
            return number
        events.append({"type": INVALID_ACTION, "agent": agent, "action": shown(action, 200), "round": rnd, "phase": CONTRIBUTE, "fallback": 0})
        return 0

    def _points(self, action: Any, agent: str, rnd: int, events: list[dict[str, Any]]) -> dict[str, int]:
        others = self._others[agent]
        try:
            if isinstance(action, Mapping) and set(action) == set(others):
                points: dict[str, int] = {}
                for target in others:
                    value = action[target]
                    if isinstance(value, np.ndarray) and value.shape == ():
                        value = value.item()
                    k = as_integer(value)
                    if k is None or not 0 <= k <= self.max_punish:
                        break
                    points[target] = k
                else:
                    return points
        except Exception:  # an odd object is an invalid answer, never the end of the episode
            pass
        events.append({"type": INVALID_ACTION, "agent": agent, "action": shown(action, 200), "round": rnd, "phase": PUNISH, "fallback": {}})
        return {}

    def _observe(self, i: int) -> dict[str, Any]:
        return {
            "round": np.int64(self._round),
            "seat": np.int64(i),
            "contributions": np.array(self._contributions, dtype=np.int64),
            "punishment_received": np.array(self._received, dtype=np.int64),
            "earnings": np.array(self._earnings[i], dtype=np.float64),
            "text": self._text(i),
        }

    def _contribution_prompt(self) -> str:
        return f"Answer with a whole number from 0 to {self.endowment}: the tokens you contribute to the pot this round."

    def _text(self, i: int) -> str:
        rnd = self._round
        me = self.possible_agents[i]
        if rnd == 0 and self._phase == CONTRIBUTE:
            return f"{self.rules()}\n\nRound 1 of {self.rounds} is next. {self._contribution_prompt()}"
        amounts = self._contributions
        pot = self.r * sum(amounts)
        others = ", ".join(f"{a} {amounts[j]}" for j, a in enumerate(self.possible_agents) if j != i)
        header = rnd + 1 if self._phase == PUNISH else rnd
        lines = [
            f"[Round {header}] Contributions: you {amounts[i]}; {others}. Pot {fmt(float(sum(amounts)))} x {fmt(self.r)} = "
            f"{fmt(pot)}, {fmt(pot / self.n)} to each player. You kept {self.endowment - amounts[i]}."
        ]
        if self._phase == PUNISH:
            example = ", ".join(f'"{b}": 0' for b in self._others[me])
            lines.append(
                f"Punishment stage: assign 0 to {self.max_punish} punishment points to each other player (each point costs you "
                f"{fmt(self.punish_cost)} and the punished {fmt(self.punish_fine)}). Answer with a JSON object with one whole "
                f"number per other player, e.g. {{{example}}}."
            )
            return "\n".join(lines)
        if self.punishment:
            got = ", ".join(f"{a} {self._received[j]}" for j, a in enumerate(self.possible_agents) if j != i)
            lines.append(
                f"Punishment points received: you {self._received[i]} (fine {fmt(self._received[i] * self.punish_fine)}); {got}. "
                f"You assigned {self._given[i]} points (cost {fmt(self._given[i] * self.punish_cost)})."
            )
        lines.append(f"Your payoff this round: {fmt(self._round_pay[i])}. Your total: {fmt(self._earnings[i])}.")
        if rnd >= self.rounds:
            lines.append(f"All {self.rounds} rounds have been played.")
        else:
            lines.append(f"Round {rnd + 1} of {self.rounds} is next. {self._contribution_prompt()}")
        return "\n".join(lines)

    def metrics(self, steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Event counts plus contribution, free-riding and punishment metrics (see `metric_types`)."""
        rows = list(steps)
        return {**count_events(rows), **public_goods_metrics(rows)}

    @classmethod
    def round_table(cls, steps: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]] | None:
        """round, each agent's contribution (* where its answer was invalid and 0 was carried
        out), the multiplied pot, the punishments assigned (punisher>target:points, and
        punisher:invalid for an invalid assignment, carried out as none)."""
        seats: list[str] = []
        rounds: dict[int, dict[str, Any]] = {}
        last: dict[str, int] = {}  # agent -> its latest contribution round
        for row in steps:
            found = _events(row)
            here = next((e["round"] for e in found if isinstance(e.get("round"), int)), None)
            if here is None and row.get("phase") == PUNISH:
                here = last.get(str(row.get("agent")))
            for event in found:
                kind = event.get("type")
                agent = str(event.get("agent", row.get("agent")))
                rnd = event.get("round", here)
                if not isinstance(rnd, int):
                    continue
                if kind == "contribution":
                    last[agent] = rnd
                cell = rounds.setdefault(rnd, {"amounts": {}, "pot": None, "punish": [], "invalid": set()})
                if kind == "contribution":
                    if agent not in seats:
                        seats.append(agent)
                    cell["amounts"][agent] = event.get("amount")
                    cell["pot"] = event.get("pot")
                elif kind == "punishment":
                    cell["punish"].append(f"{agent}>{event.get('target')}:{event.get('points')}")
                elif kind == INVALID_ACTION:
                    if event.get("phase", row.get("phase")) == PUNISH:
                        cell["punish"].append(f"{agent}:invalid")
                    else:
                        cell["invalid"].add(agent)
        if not rounds:
            return None
        columns = ["round", *seats, "pot", "punishments"]
        table = []
        for rnd in sorted(rounds):
            cell = rounds[rnd]
            amounts = [f"{cell['amounts'].get(a, '')}{'*' if a in cell['invalid'] else ''}" for a in seats]
            pot = cell["pot"]
            table.append([rnd, *amounts, fmt(float(pot)) if pot is not None else "", " ".join(cell["punish"])])
        return columns, table

    def close(self) -> None:
        pass


def public_goods_metrics(steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of `PublicGoodsEnv.metric_types` from stored step rows."""
    by_agent: dict[str, list[float]] = {}
    by_round: dict[int, list[float]] = {}
    zeros = total = 0
    given: dict[str, int] = {}
    received: dict[str, int] = {}
    for row, event in step_events(steps):
        kind = event.get("type")
        if kind == "contribution":
            agent = str(event.get("agent", row.get("agent")))
            amount, endowment = float(event["amount"]), float(event["endowment"])
            rate = amount / endowment
            by_agent.setdefault(agent, []).append(rate)
            by_round.setdefault(int(event["round"]), []).append(rate)
            given.setdefault(agent, 0)
            received.setdefault(agent, 0)
            total += 1
            zeros += amount == 0
        elif kind == "punishment":
            agent, target = str(event.get("agent", row.get("agent"))), str(event.get("target"))
            given[agent] = given.get(agent, 0) + int(event["points"])
            received[target] = received.get(target, 0) + int(event["points"])
    flat = [x for rates in by_agent.values() for x in rates]
    return {
        "contribution_rate": sum(flat) / len(flat) if flat else None,
        "contribution_rate_by_agent": {a: sum(v) / len(v) for a, v in by_agent.items()},
        "contribution_rate_by_round": {str(r): sum(v) / len(v) for r, v in sorted(by_round.items())},
        "free_riding": zeros / total if total else None,
        "punishment_given": given,
        "punishment_received": received,
    }


@functools.lru_cache(maxsize=256)
def _observation_space(n: int, rounds: int, endowment: int, max_punish: int, max_text: int, agent: str) -> spaces.Dict:
    return spaces.Dict(
        {
            "round": spaces.Discrete(rounds + 1),
            "seat": spaces.Discrete(n),
            "contributions": spaces.Box(-1, endowment, shape=(n,), dtype=np.int64),
            "punishment_received": spaces.Box(0, max(0, (n - 1) * max_punish), shape=(n,), dtype=np.int64),
            "earnings": spaces.Box(-np.inf, np.inf, shape=(), dtype=np.float64),
            "text": text_space(max_text),
        }
    )

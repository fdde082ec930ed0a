"""One episode: an env, the agents of its seats, and the one loop between them.

An episode is a pure function of (scenario, episode index) and, for agents that learn across
episodes, the state the previous episode of its chain exported: its seed is derived from the
scenario seed and the index, it builds its own agents from the run's resolved factories, and
it returns an `EpisodeResult` value that the store writes in one transaction. A job is one
episode, or one chain's episodes in order; jobs are plain data (lists of indices), so any
executor can play them, in this process or another.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from normlab import envs
from normlab.agents import Agent, AgentContext, AgentFactory, resolve_agents
from normlab.agents.base import as_decision
from normlab.assets import RunAssets, resolve_assets
from normlab.envs.base import INVALID_ACTION
from normlab.requests import INVALID, Choice
from normlab.results import EpisodeResult, json_bytes
from normlab.scenario import Scenario
from normlab.seeding import derive_seed
from normlab.store import utcnow
from normlab.turns import Boundary, Outcome, Requests
from normlab.turns import boundary as turns_of


def episode_seed(scenario: Scenario, index: int) -> int:
    """Derived from the scenario seed and the episode's place in the design (normlab.design)."""
    return scenario.design.seed(index)


def carries_state(scenario: Scenario) -> bool:
    """Whether any agent learns across episodes (then episodes run in ordered chains)."""
    from normlab.harnesses import HARNESSES

    def carries(played: Scenario) -> bool:
        return any(
            cfg.kind == "llm" and cfg.harness_name in HARNESSES and HARNESSES[cfg.harness_name].carries_state
            for cfg in played.agents.values()
        )

    if any(path.startswith("agents.") for path in scenario.matrix or {}):
        design = scenario.design
        return any(carries(design.scenario(v)) for v in range(len(design.variants)))
    return carries(scenario)


def chain_of(scenario: Scenario, index: int) -> list[int]:
    """Episodes of the chain that `index` belongs to, in order: chains run within each variant
    and trial, episode `repeat` of it in chain `repeat % chains`."""
    block = scenario.design.block(index)
    return list(range(block.start + (index - block.start) % scenario.chains, block.stop, scenario.chains))


def previous_in_chain(scenario: Scenario, index: int) -> int | None:
    """The episode before `index` in its chain (None for a chain's first)."""
    previous = index - scenario.chains
    return previous if previous >= scenario.design.block(index).start else None


def jobs_for(scenario: Scenario, indices: Iterable[int]) -> list[list[int]]:
    """Units of work: one episode each, or, when agents carry experience across episodes,
    the wanted episodes of each chain, in order."""
    todo = sorted(indices)
    if not carries_state(scenario):
        return [[i] for i in todo]
    jobs: dict[int, list[int]] = {}
    for i in todo:  # a chain is named by its first episode
        jobs.setdefault(chain_of(scenario, i)[0], []).append(i)
    return [jobs[first] for first in sorted(jobs)]


class EpisodeLog:
    """The model calls of one episode, stamped with the turn `t` and the agent that made
    them; kept by the caller so an episode that does not finish still stores its calls."""

    def __init__(self) -> None:
        self.t = 0
        self.model_calls: list[dict[str, Any]] = []

    def add_model_calls(self, agent: str, t: int, rows: Iterable[dict[str, Any]]) -> None:
        self.model_calls.extend({**row, "t": t, "agent": agent} for row in rows)


#: JSON of a step's values (called three times a step: bound once, no wrapper call)
_json = json_bytes


class _Recorder:
    """Collects step rows, returns and event counts of one episode."""

    def __init__(self, log: EpisodeLog) -> None:
        self.log = log
        self.rows: list[dict[str, Any]] = []
        self.returns: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self.events_by_agent: dict[str, Counter[str]] = {}

    def add(self, row: Outcome) -> None:
        agent, reward, info = row.agent, row.reward, row.info
        self.rows.append(
            {
                "t": row.t,
                "agent": agent,
                "observation": _json(row.observation).decode(),
                "action": _json(row.action).decode(),
                "reward": reward,
                "terminated": bool(row.terminated),
                "truncated": bool(row.truncated),
                "info": _json(info or {}).decode(),
                "phase": row.phase,
            }
        )
        self.returns[agent] = self.returns.get(agent, 0.0) + reward
        events = info.get("events") if isinstance(info, dict) else None
        if events:
            per_agent = self.events_by_agent.get(agent)
            if per_agent is None:
                per_agent = self.events_by_agent[agent] = Counter()
            for ev in events:
                kind = str(ev.get("type", "event")) if isinstance(ev, dict) else "event"
                self.events[kind] += 1
                per_agent[kind] += 1

    def truncate_last(self, t: int) -> None:
        for row in self.rows:
            if row["t"] == t:
                row["truncated"] = True

    def metrics(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "events_by_agent": {a: dict(c) for a, c in self.events_by_agent.items()},
        }


async def play_episode(
    scenario: Scenario,
    index: int,
    env: Any = None,
    resources: Any = None,
    carried: dict[str, Any] | None = None,
    log: EpisodeLog | None = None,
    assets: RunAssets | None = None,
    factories: dict[str, AgentFactory] | None = None,
) -> EpisodeResult:
    """Play one episode of a scenario.

    `env` may be an instance left by an earlier episode of the same scenario: reset with the
    episode's seed puts it in the same state as a new one (the official seed tests check
    that), and reusing it saves building spaces every episode. `resources` are the run's
    shared model pieces (cache, budget, connection limits); `carried` is the state each
    agent exported at the end of the previous episode of its chain. `log` lets the caller
    keep the model calls of an episode that does not finish. `assets` are the run's resolved
    skills and tools (resolved from the scenario's folder when not given); `factories` are its
    seats' resolved agent configs (resolved from `assets` when not given).
    """
    design = scenario.design
    variant = design.cell(index).variant
    played = design.scenario(variant)  # the scenario with this variant's matrix values
    seed = design.seed(index)
    if assets is None:
        assets = resolve_assets(scenario)
    assets = assets.of_variant(variant)
    if factories is None:
        factories = resolve_agents(played.agents, assets)
    started = utcnow()
    own_env = env is None
    if own_env:
        env = envs.make(played.env.id, **played.env.params)
    log = log if log is not None else EpisodeLog()
    recorder = _Recorder(log)
    try:
        api = envs.api_of(env)
        agent_ids, action_spaces = envs.agent_ids_and_action_spaces(env)
        # reset before building agents: some envs draw per-episode action meanings (roles)
        first = env.reset(seed=seed)
        agents: dict[str, Agent] = {}
        for agent_id in agent_ids:
            context = AgentContext(
                agent_id=agent_id,
                action_space=action_spaces[agent_id],
                observation_space=env.observation_space if api == "gymnasium" else env.observation_space(agent_id),
                action_meanings=envs.action_meanings(env, agent_id),
                rules=envs.rules(env, agent_id),
                resources=resources,
                carried_state=(carried or {}).get(agent_id),
            )
            agents[agent_id] = factories[agent_id].new_episode(context)
            await agents[agent_id].reset(derive_seed("agent", seed, agent_id))
        requests = Requests(env, action_spaces)
        fallback = partial(envs.fallback_action, env)
        try:
            await _play(turns_of(env, first, requests), agents, played.max_steps, recorder, log, fallback)
        except BaseException:
            # calls of a decision that did not finish are still accounted for
            for agent_id, agent in agents.items():
                take = getattr(agent, "take_model_calls", None)
                if take is not None:
                    log.add_model_calls(agent_id, log.t, take())
            raise
    finally:
        if own_env:
            env.close()
    exported = {a: agent.export_state() for a, agent in agents.items() if hasattr(agent, "export_state")}
    labels, trial = design.labels(index)
    return EpisodeResult(
        index=index,
        seed=seed,
        steps=recorder.rows,
        returns=recorder.returns,
        metrics=_episode_metrics(env, recorder),
        started_at=started,
        finished_at=utcnow(),
        model_calls=log.model_calls,
        num_steps=max(row["t"] for row in recorder.rows) + 1 if recorder.rows else 0,
        agent_state={a: s for a, s in exported.items() if s is not None} or None,
        agent_ids=assets.agent_ids(played),
        variant=labels,
        trial=trial,
    )


def _episode_metrics(env: Any, recorder: _Recorder) -> dict[str, Any]:
    """Event counts (counted while playing), plus what an env computes itself from the
    episode's rows where it overrides `metrics` (cooperation rates, survival, Gini...)."""
    from normlab.envs.base import EnvBase

    counted = recorder.metrics()
    own = getattr(type(getattr(env, "unwrapped", env)), "metrics", None)
    if callable(own) and own is not EnvBase.metrics:
        counted.update(envs.metrics(env, recorder.rows))
    return counted


def _outcome(agent: Agent, row: Outcome) -> None:
    observe = getattr(agent, "observe_outcome", None)
    if observe is not None:
        observe(row.observation, row.action, row.reward, row.info or {})


async def _play(
    turns: Boundary,
    agents: dict[str, Agent],
    max_steps: int | None,
    rec: _Recorder,
    log: EpisodeLog,
    fallback: Callable[[str], Any],
) -> None:
    """The one loop: ask the acting agents, step, record the rows the step completed.

    An agent's `INVALID` is carried out as the env's fallback (where it declares one), with
    an `invalid_action` event in the agent's row; the row's action stays the agent's own
    (stored as null). Scripted agents answer without waiting, so awaiting them in turn is much
    cheaper than a task each; agents that wait on I/O (models, people) are asked side by side.
    """
    side_by_side = sum(1 for a in agents.values() if getattr(a, "waits_on_io", False)) > 1
    # (agent, t) -> what the row gets beyond the env's info: notes, the invalid answer
    pending: dict[tuple[str, int], tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    while True:
        acting = turns.acting()
        if not acting:
            return
        t = turns.t
        if max_steps is not None and t >= max_steps:  # truncation: the env is not stepped again
            for row in turns.cut():
                _finish_row(row, pending)
                _outcome(agents[row.agent], row)
                rec.add(row)
            rec.truncate_last(t - 1)
            return
        log.t = t
        # a turn with one legal answer (a one-option choice: "wait" while another moves) is
        # answered here; asking a model or a person would cost a call and decide nothing
        answered = {
            turn.agent: turn.request.actions[0]
            for turn in acting
            if isinstance(turn.request, Choice) and len(turn.request.options) == 1
        }
        asked = [turn for turn in acting if turn.agent not in answered]
        if side_by_side and len(asked) > 1:
            answers = await asyncio.gather(*(agents[turn.agent].act(turn.observation, turn.info, turn.request) for turn in asked))
        else:
            answers = [await agents[turn.agent].act(turn.observation, turn.info, turn.request) for turn in asked]
        answered.update(zip((turn.agent for turn in asked), answers))
        chosen = [answered[turn.agent] for turn in acting]
        actions: dict[str, Any] = {}
        for turn, result in zip(acting, chosen):
            decision = as_decision(result)
            action = decision.action
            if decision.model_calls:
                log.add_model_calls(turn.agent, t, decision.model_calls)
            invalid = None
            if action is INVALID:
                carried_out = fallback(turn.agent)
                if carried_out is not None:
                    invalid = {"type": INVALID_ACTION, "agent": turn.agent, "fallback": carried_out}
                    action = carried_out
            if decision.notes or invalid:
                pending[(turn.agent, t)] = (decision.notes, invalid)
            actions[turn.agent] = action
        for row in turns.step(actions):
            _finish_row(row, pending)
            _outcome(agents[row.agent], row)
            rec.add(row)


def _finish_row(row: Outcome, pending: dict[tuple[str, int], Any]) -> None:
    """Add what the agent noted and the invalid-answer event to a completed row."""
    if not pending:
        return
    found = pending.pop((row.agent, row.t), None)
    if found is None:
        return
    notes, invalid = found
    info = dict(row.info or {})
    if notes:  # what the agent's harness noted (memory shown, re-asks) goes with the step
        info["harness"] = notes
    if invalid:
        info["events"] = [invalid, *(info.get("events") or [])]
        row.action = INVALID
    row.info = info


"""The runner: one loop for Gymnasium, PettingZoo Parallel and PettingZoo AEC envs.

An episode is a pure function of (scenario, episode index) and, for agents that learn across
episodes, the state the previous episode of its chain exported: its seed is derived from the
scenario seed and the index, it builds its own agents, and it returns an `EpisodeResult`
value that the store writes in one transaction. Episodes run as asyncio tasks,
`concurrency` at a time; nothing else is shared between them, so concurrency never changes
results, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import subprocess
import warnings
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from normlab import __version__, envs
from normlab.agents import Agent, AgentContext, AgentError, AgentFactory, resolve_agents
from normlab.agents.base import as_decision
from normlab.envs.base import INVALID_ACTION
from normlab.assets import RunAssets, resolve_assets, scenario_dir
from normlab.models.types import BudgetExhausted
from normlab.results import EpisodeResult, dumps_json
from normlab.scenario import Scenario
from normlab.seeding import derive_seed
from normlab.store import Run, Store, new_run_id
from normlab.store import utcnow
from normlab.requests import INVALID
from normlab.turns import Boundary, Outcome, Requests
from normlab.turns import boundary as turns_of

EpisodeCallback = Callable[[EpisodeResult], None]


class RunFailed(RuntimeError):
    """An episode could not finish (an agent gave up, an env or a model failed for good)."""


class BudgetStop(RuntimeError):
    """The run's budget is spent: the run stopped cleanly with status budget_exhausted."""


def episode_seed(scenario: Scenario, index: int) -> int:
    return derive_seed("episode", scenario.seed, index)


def carries_state(scenario: Scenario) -> bool:
    """Whether any agent learns across episodes (then episodes run in ordered chains)."""
    from normlab.harnesses import HARNESSES

    return any(
        cfg.kind == "llm" and cfg.harness_name in HARNESSES and HARNESSES[cfg.harness_name].carries_state
        for cfg in scenario.agents.values()
    )


def chain_of(scenario: Scenario, index: int) -> list[int]:
    """Episodes of the chain that `index` belongs to, in order (episode i is in chain i % chains)."""
    return list(range(index % scenario.chains, scenario.episodes, scenario.chains))


class EpisodeLog:
    """The model calls of one episode, stamped with the turn `t` and the agent that made
    them; kept by the caller so an episode that does not finish still stores its calls."""

    def __init__(self) -> None:
        self.t = 0
        self.model_calls: list[dict[str, Any]] = []

    def add_model_calls(self, agent: str, t: int, rows: Iterable[dict[str, Any]]) -> None:
        self.model_calls.extend({**row, "t": t, "agent": agent} for row in rows)


class _Recorder:
    """Collects step rows, returns and event counts of one episode."""

    def __init__(self, log: EpisodeLog) -> None:
        self.log = log
        self.rows: list[dict[str, Any]] = []
        self.returns: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self.events_by_agent: dict[str, Counter[str]] = {}

    def add(self, row: Outcome) -> None:
        t, agent, obs, action, reward, term, trunc, info = (
            row.t, row.agent, row.observation, row.action, row.reward, row.terminated, row.truncated, row.info
        )
        self.rows.append(
            {
                "t": t,
                "agent": agent,
                "observation": dumps_json(obs),
                "action": dumps_json(action),
                "reward": reward,
                "terminated": bool(term),
                "truncated": bool(trunc),
                "info": dumps_json(info or {}),
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
    seed = episode_seed(scenario, index)
    if assets is None:
        assets = resolve_assets(scenario)
    if factories is None:
        factories = resolve_agents(scenario.agents, assets)
    started = utcnow()
    own_env = env is None
    if own_env:
        env = envs.make(scenario.env.id, **scenario.env.params)
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
            await _play(turns_of(env, first, requests), agents, scenario.max_steps, recorder, log, fallback)
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
        agent_ids=assets.agent_ids(scenario),
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
        if side_by_side and len(acting) > 1:
            chosen = await asyncio.gather(*(agents[turn.agent].act(turn.observation, turn.info, turn.request) for turn in acting))
        else:
            chosen = [await agents[turn.agent].act(turn.observation, turn.info, turn.request) for turn in acting]
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


# --- runs --------------------------------------------------------------------------------


def _git_commit(where: str) -> str | None:
    folder = Path(where).parent if Path(where).exists() else Path.cwd()
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def create_run(store: Store, scenario: Scenario, assets: RunAssets | None = None) -> str:
    """Store a new run: the scenario, its effective config, and the skills and tools its
    agents use, resolved now (see `normlab.assets`), so that a resume needs no files."""
    assets = assets if assets is not None else resolve_assets(scenario)
    folder = scenario_dir(scenario.source_path)
    run = Run(
        id=new_run_id(),
        name=scenario.name,
        scenario_path=str(Path(folder) / Path(scenario.source_path).name) if folder else scenario.source_path,
        scenario_text=scenario.source_text,
        scenario_hash=scenario.source_hash,
        config=scenario.model_dump(mode="json"),
        normlab_version=__version__,
        git_commit=_git_commit(scenario.source_path),
        status="running",
        seed=scenario.seed,
        episodes_planned=scenario.episodes,
        provenance=assets.to_json(),
    )
    return store.create_run(run)


def stored_scenario(run: Run) -> Scenario:
    """A stored run's scenario, as it was run (the effective config, the original text)."""
    from normlab.scenario import scenario_from_config

    return scenario_from_config(run.config, run.scenario_text, run.scenario_path)


def stored_assets(run: Run, scenario: Scenario) -> RunAssets:
    """The skills and tools a run started with; runs stored before provenance resolve anew."""
    if run.provenance:
        return RunAssets.from_json(run.provenance)
    return resolve_assets(scenario)


def model_resources(scenario: Scenario, store: Store, run_id: str) -> Any:
    """The run's shared model pieces. The budget is the run's ledger in the store: it counts
    what earlier sessions and other worker processes of the run spent."""
    if not any(cfg.kind == "llm" for cfg in scenario.agents.values()):
        return None
    from normlab.models import LedgerBudget, ModelResources

    budget = LedgerBudget(
        tokens=scenario.budget.tokens if scenario.budget else None,
        usd=scenario.budget.usd if scenario.budget else None,
        store=store,
        run_id=run_id,
    )
    if budget.limited:
        budget.used_tokens, budget.used_usd = store.open_ledger(run_id)
    return ModelResources(cache=None if scenario.cache == "off" else store, cache_mode=scenario.cache, budget=budget)


class _EpisodeWriter:
    """Stores finished episodes on a worker thread, in the order they finish.

    Writing does not block the event loop (model calls of other episodes go on meanwhile),
    episodes that finished during a write go in together with the next commit, and at most
    `limit` finished episodes wait in memory. Each commit holds whole episodes only, so a
    crash loses at most the episodes not yet written, never part of one.
    """

    def __init__(self, store: Store, run_id: str, on_episode: EpisodeCallback | None, limit: int):
        self.store, self.run_id, self.on_episode = store, run_id, on_episode
        self.queue: asyncio.Queue[EpisodeResult | None] = asyncio.Queue(limit)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="normlab-writer")
        self.in_flight: Future[Any] | None = None
        self.in_flight_results: list[EpisodeResult] = []

    async def run(self) -> None:
        done = False
        while not done:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            done = batch[-1] is None
            results = [r for r in batch if r is not None]
            if results:
                self.in_flight, self.in_flight_results = self.thread.submit(self.store.write_episodes, self.run_id, results), results
                # shielded: cancelling the wait must not cancel a write that has not started yet
                await asyncio.shield(asyncio.wrap_future(self.in_flight))
                self.in_flight = None
            self._announce(results)

    def finish(self) -> None:
        """After a failure or Ctrl-C: let a write in progress end (a cancelled wait does not
        stop its thread), then store the episodes that finished but were not written yet.
        Raises the first write error, after trying every write."""
        failure: BaseException | None = None
        try:
            if self.in_flight is not None:
                try:
                    self.in_flight.result()
                    self._announce(self.in_flight_results)
                except Exception as exc:  # reported below, after the other episodes are tried
                    failure = exc
            results = []
            while not self.queue.empty():
                result = self.queue.get_nowait()
                if result is not None:
                    results.append(result)
            if results:
                try:
                    self.store.write_episodes(self.run_id, results)
                    self._announce(results)
                except Exception as exc:
                    failure = failure or exc
        finally:
            self.thread.shutdown(wait=True)
        if failure is not None:
            raise failure

    def _announce(self, results: list[EpisodeResult]) -> None:
        """The progress shows what is stored, to the last episode."""
        if self.on_episode is not None:
            for result in results:
                self.on_episode(result)


#: What ends a run rather than one episode: cancellation, a spent budget, an agent that
#: cannot go on (a human player who left).
_STOPS = (asyncio.CancelledError, KeyboardInterrupt, BudgetExhausted, AgentError)


class FailureCount:
    """Failed episodes of this session; past `allowed` the run fails (both executors)."""

    def __init__(self, allowed: int):
        self.allowed, self.count = allowed, 0

    def add(self, error: str) -> None:
        """Count a failed episode; RunFailed with its error once past the limit."""
        self.count += 1
        if self.count > self.allowed:
            if self.allowed:
                error += f" ({self.count} episodes failed, max_failed_episodes is {self.allowed})"
            raise RunFailed(error)


def _episode_error(exc: BaseException) -> str:
    """One line for a failed episode; model errors already name their model."""
    from normlab.models.types import ModelError

    return str(exc) if isinstance(exc, ModelError) else _one_line(exc)


def _failed_episode(scenario: Scenario, index: int, exc: BaseException, log: EpisodeLog) -> EpisodeResult:
    now = utcnow()
    return EpisodeResult(
        index=index,
        seed=episode_seed(scenario, index),
        steps=[],
        returns={},
        metrics={},
        started_at=now,
        finished_at=now,
        model_calls=log.model_calls,
        status="failed",
        error=_episode_error(exc),
    )


def _close_quietly(env: Any) -> None:
    if env is not None:
        try:
            env.close()
        except Exception:
            pass


def jobs_for(scenario: Scenario, indices: Iterable[int]) -> list[list[int]]:
    """Units of work: one episode each, or, when agents carry experience across episodes,
    the wanted episodes of each chain, in order."""
    todo = sorted(indices)
    if not carries_state(scenario):
        return [[i] for i in todo]
    wanted = set(todo)
    jobs = [[i for i in chain_of(scenario, c) if i in wanted] for c in range(scenario.chains)]
    return [job for job in jobs if job]


def width_of(scenario: Scenario, concurrency: int | None) -> int:
    """Episodes played side by side in one process."""
    if _has_human(scenario):
        return 1  # one person, one terminal: episodes with a human seat run one at a time
    return concurrency or scenario.concurrency


async def play_jobs(
    scenario: Scenario,
    store: Any,  # a Store, or a worker's stand-in that hands episodes to its parent
    run_id: str,
    jobs: list[list[int]],
    width: int,
    on_episode: EpisodeCallback | None,
    assets: RunAssets,
) -> None:
    """Play jobs `width` at a time in this process, writing each episode as it ends.

    Raises `RunFailed`, `BudgetStop`, or cancellation; whatever happens, every finished
    episode is stored before it returns. Sets no run status (the caller owns the run).
    """
    resources = await asyncio.to_thread(model_resources, scenario, store, run_id)
    factories = resolve_agents(scenario.agents, assets)  # once for every episode played here
    writer = _EpisodeWriter(store, run_id, on_episode, limit=max(16, 2 * width))
    stateful = carries_state(scenario)
    pending = iter(jobs)
    failures = FailureCount(scenario.max_failed_episodes)

    async def worker() -> None:
        env = None
        try:
            for job in pending:  # one shared iterator: each job is taken by exactly one worker
                if env is None:
                    env = envs.make(scenario.env.id, **scenario.env.params)
                carried = await asyncio.to_thread(_stored_state, store, run_id, scenario, job[0]) if stateful else None
                for index in job:
                    log = EpisodeLog()
                    try:
                        result = await play_episode(scenario, index, env, resources, carried, log, assets, factories)
                    except _STOPS:
                        # the episode is lost, but every model call it made is kept (accounting, errors)
                        if log.model_calls:
                            await asyncio.shield(asyncio.to_thread(store.write_model_calls, run_id, log.model_calls))
                        raise
                    except Exception as exc:
                        # stored as failed, with its error and model calls; the run fails past
                        # max_failed_episodes; a chain cannot go on without this episode's state
                        failed = _failed_episode(scenario, index, exc, log)
                        await writer.queue.put(failed)
                        failures.add(failed.error or "")
                        _close_quietly(env)  # an env that raised may be in any state: build a new one
                        env = None
                        break
                    carried = result.agent_state
                    await writer.queue.put(result)
                    # scripted episodes never wait on anything; yielding here lets other
                    # workers and the writer take turns, and lets Ctrl-C (a cancellation) in
                    await asyncio.sleep(0)
        finally:
            if env is not None:
                env.close()

    async def play_all() -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(width, len(jobs)))):
                group.create_task(worker())
        await writer.queue.put(None)

    try:
        await _run_tasks(writer.run(), play_all())
    except BaseException:
        try:
            writer.finish()
        except Exception:
            pass  # the first error is the one to report
        raise
    try:
        writer.finish()
    except Exception as exc:
        raise RunFailed(f"could not store finished episodes: {_one_line(exc)}") from None


async def execute(
    scenario: Scenario,
    store: Store,
    run_id: str,
    indices: Iterable[int],
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
    assets: RunAssets | None = None,
    executor: str | None = None,
    workers: int | None = None,
) -> None:
    """Play the given episodes, writing each to the store as it ends; sets the run's status.

    `executor` is `local` (asyncio tasks in this process) or `processes` (worker processes
    on this machine play, this process writes). Raises `RunFailed` if an episode
    fails, `BudgetStop` when the budget is spent, and lets cancellation (Ctrl-C) through
    after marking the run interrupted. Whatever happens, every finished episode is stored.
    """
    assets = assets if assets is not None else resolve_assets(scenario)
    jobs = jobs_for(scenario, indices)
    width = width_of(scenario, concurrency)
    kind = executor or scenario.executor
    store.set_status(run_id, "running")
    try:
        if kind == "processes" and not _has_human(scenario):  # a human seat needs this terminal
            from normlab.executors.processes import play_in_processes

            await play_in_processes(scenario, store, run_id, jobs, width, on_episode, assets, workers or scenario.workers)
        else:
            await play_jobs(scenario, store, run_id, jobs, width, on_episode, assets)
    except asyncio.CancelledError:
        _set_final_status(store, run_id, "interrupted", None)
        raise
    except BudgetStop as exc:
        _set_final_status(store, run_id, "budget_exhausted", str(exc))
        raise
    except RunFailed as exc:
        _set_final_status(store, run_id, "failed", str(exc))
        raise
    _set_final_status(store, run_id, "finished", None)


def _has_human(scenario: Scenario) -> bool:
    return any(cfg.kind == "human" for cfg in scenario.agents.values())


def _set_final_status(store: Store, run_id: str, status: str, error: str | None) -> None:
    """A store that fails here cannot record the status: the run's lease then goes stale and
    `runs ls` reports it interrupted."""
    try:
        store.set_status(run_id, status, error)
    except Exception as exc:
        if status == "finished":
            raise RunFailed(f"could not store the run's status: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _stored_state(store: Store, run_id: str, scenario: Scenario, index: int) -> dict[str, Any] | None:
    """What the previous episode of `index`'s chain exported (when resuming mid-chain)."""
    previous = index - scenario.chains
    if previous < 0:
        return None
    return store.episode(run_id, previous).agent_state


async def _run_tasks(*coroutines: Any) -> None:
    """Run until all finish; the first failure cancels the rest and is raised as one error."""
    from normlab.models.types import ModelError

    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except* BudgetExhausted as group:
        raise BudgetStop(str(_leaves(group)[0])) from None
    except* RunFailed as group:
        raise RunFailed(str(_leaves(group)[0])) from None
    except* (AgentError, ModelError) as group:
        raise RunFailed("; ".join(dict.fromkeys(str(e) for e in _leaves(group)))) from None
    except* Exception as group:
        first = _leaves(group)[0]
        raise RunFailed(_one_line(first)) from first


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions inside nested task groups."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def missing_indices(store: Store, run_id: str, episodes: int) -> list[int]:
    done = store.finished_indices(run_id)
    return [i for i in range(episodes) if i not in done]


def run_scenario(
    scenario: Scenario,
    store: Store,
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
) -> str:
    """Create a run and play all its episodes; returns the run id (library entry point)."""
    run_id = create_run(store, scenario)
    run_sync(scenario, store, run_id, range(scenario.episodes), concurrency, on_episode)
    return run_id


def resume_run(
    store: Store,
    run_id: str,
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
) -> tuple[Scenario, list[int]]:
    """Play only the episodes a run is missing, each with its own seed."""
    run = store.get_run(run_id)
    scenario = stored_scenario(run)
    todo = missing_indices(store, run.id, scenario.episodes)
    run_sync(scenario, store, run.id, todo, concurrency, on_episode, stored_assets(run, scenario))
    return scenario, todo


def run_sync(
    scenario: Scenario,
    store: Store,
    run_id: str,
    indices: Iterable[int],
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
    assets: RunAssets | None = None,
    executor: str | None = None,
    workers: int | None = None,
) -> None:
    """Play episodes of a created run from synchronous code; Ctrl-C marks it interrupted.

    The run is leased for the duration (`Store.lease`): a second process cannot play it at
    the same time, and if this process dies its heartbeat stops and the run reads as
    interrupted, so it can be resumed."""
    if assets is None:
        assets = stored_assets(store.get_run(run_id), scenario)
    with store.lease(run_id):
        try:
            with warnings.catch_warnings():
                # LiteLLM builds a provider's coroutine on an executor thread, then awaits it; a
                # call cancelled in between (Ctrl-C, a budget stop) leaves it unstarted and Python
                # warns when it is collected. Nothing ran, so nothing is lost.
                warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
                asyncio.run(execute(scenario, store, run_id, indices, concurrency, on_episode, assets, executor, workers))
        except KeyboardInterrupt:
            try:
                store.set_status(run_id, "interrupted")
            except Exception:  # a store that fails now: the lease ends and the run reads as interrupted
                pass
            raise

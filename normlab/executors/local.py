"""The local executor: episode jobs played as asyncio tasks in this process, `concurrency` at
a time, each finished episode written as it ends by one writer thread. The processes
executor runs this same loop in each worker, with a stand-in store that sends episodes to
the parent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from normlab import envs
from normlab.agents import AgentError, resolve_agents
from normlab.assets import RunAssets
from normlab.episode import EpisodeLog, carries_state, episode_seed, play_episode, previous_in_chain
from normlab.executors.errors import BudgetStop, FailureCount, RunFailed, episode_error, one_line
from normlab.models.types import BudgetExhausted
from normlab.results import EpisodeResult
from normlab.scenario import Scenario
from normlab.store import Store, utcnow

EpisodeCallback = Callable[[EpisodeResult], None]


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


def _failed_episode(scenario: Scenario, index: int, exc: BaseException, log: EpisodeLog) -> EpisodeResult:
    now = utcnow()
    variant, trial = scenario.design.labels(index)
    return EpisodeResult(
        index=index,
        variant=variant,
        trial=trial,
        seed=episode_seed(scenario, index),
        steps=[],
        returns={},
        metrics={},
        started_at=now,
        finished_at=now,
        model_calls=log.model_calls,
        status="failed",
        error=episode_error(exc),
    )


def _close_quietly(env: Any) -> None:
    if env is not None:
        try:
            env.close()
        except Exception:
            pass


def width_of(scenario: Scenario, concurrency: int | None) -> int:
    """Episodes played side by side in one process."""
    if has_human(scenario):
        return 1  # one person, one terminal: episodes with a human seat run one at a time
    return concurrency or scenario.concurrency


def has_human(scenario: Scenario) -> bool:
    return any(cfg.kind == "human" for cfg in scenario.agents.values())


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
    factories = VariantAgents(scenario, assets)  # once for every episode played here
    writer = _EpisodeWriter(store, run_id, on_episode, limit=max(16, 2 * width))
    stateful = carries_state(scenario)
    design = scenario.design
    pending = iter(jobs)
    failures = FailureCount(scenario.max_failed_episodes)

    async def worker() -> None:
        env, env_variant = None, -1
        try:
            for job in pending:  # one shared iterator: each job is taken by exactly one worker
                variant = design.cell(job[0]).variant  # a job (a chain) never leaves its variant
                if env is None or env_variant != variant:  # jobs come variant by variant
                    _close_quietly(env)
                    played = design.scenario(variant)
                    env, env_variant = envs.make(played.env.id, **played.env.params), variant
                carried = await asyncio.to_thread(_stored_state, store, run_id, scenario, job[0]) if stateful else None
                for index in job:
                    log = EpisodeLog()
                    try:
                        result = await play_episode(scenario, index, env, resources, carried, log, assets, factories.of(variant))
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
        raise RunFailed(f"could not store finished episodes: {one_line(exc)}") from None


class VariantAgents:
    """Each variant's seats resolved into factories, once per variant, when first played."""

    def __init__(self, scenario: Scenario, assets: RunAssets):
        self.scenario, self.assets = scenario, assets
        self._found: dict[int, dict[str, Any]] = {}

    def of(self, variant: int) -> dict[str, Any]:
        found = self._found.get(variant)
        if found is None:
            played = self.scenario.design.scenario(variant)
            found = self._found[variant] = resolve_agents(played.agents, self.assets.of_variant(variant))
        return found


def _stored_state(store: Store, run_id: str, scenario: Scenario, index: int) -> dict[str, Any] | None:
    """What the previous episode of `index`'s chain exported (when resuming mid-chain)."""
    previous = previous_in_chain(scenario, index)
    if previous is None:
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
        raise RunFailed(one_line(first)) from first


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions inside nested task groups."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


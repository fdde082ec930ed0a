"""The `processes` executor: episode jobs spread over worker processes on this machine.

Each worker rebuilds the scenario and the run's assets from plain data (the job is
picklable), opens the store at its URL for what it reads (chain state, the response cache,
the budget ledger), builds its own model services, and plays its share `width` at a time
with the local executor. Finished episodes go back to the parent, which writes them: SQLite
takes one writer at a time, so one process writing while the others play is what uses the
second core (workers writing for themselves mostly waited on each other's locks).

Workers are not forked from this process: llama.cpp and LiteLLM hold threads that a fork
would not carry. They are forked from a fork server instead (where the platform has one,
else spawned): a clean single-threaded process, started once per parent process, that
imports what workers need (normlab, the env modules, and LiteLLM with what its first call
loads when the run has LLM agents) before it forks them. The imports are paid once per
parent process, not once per worker and run (LiteLLM alone takes seconds), and a later run
of the same process starts its workers in milliseconds. `prestart` starts that server ahead
of time, so that it imports while the caller does other work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import queue as queue_module
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from normlab.assets import RunAssets
from normlab.scenario import Scenario

# finished episodes waiting for the parent to write them, across all workers
_QUEUE_LIMIT = 256
# batches of them taken off the pipe, waiting for the parent's writer
_INBOX_BATCHES = 4
# after a stop, how long a worker may stay silent before the parent stops waiting for it
_GIVE_UP_S = 30.0


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker process needs, as plain data."""

    config: dict[str, Any]
    scenario_text: str
    scenario_path: str
    store_url: str
    run_id: str
    jobs: list[list[int]]
    width: int
    assets: dict[str, Any]
    environ: dict[str, str]  # the parent's environment now (the fork server has the one it started with)


# What the fork server imports for workers, besides the modules of envs, agents and harnesses
# the parent has loaded (modules that fail to import are skipped). A worker's first episode
# imports more lazily (the SQLite dialect; LiteLLM's first call loads provider modules and
# its tokenizer, ~0.7 s): those are named too, so that no worker pays for them again.
_PRELOAD = (
    "normlab.run",
    "normlab.episode",
    "normlab.executors.local",
    "normlab.scenario",
    "normlab.store",
    "normlab.executors.processes",
    "normlab.agents.scripted",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "ruamel.yaml",
    "pettingzoo",
    "gymnasium",
)
_PRELOAD_LLM = (
    "litellm",
    "litellm.litellm_core_utils.default_encoding",
    "litellm.proxy._types",
    "litellm.proxy.openai_files_endpoints.common_utils",
    "litellm.llms.edenai.chat.transformation",
    "litellm.llms.fal_ai.chat.transformation",
    "litellm.llms.fal_ai.image_generation",
    "litellm.llms.litellm_proxy.chat.transformation",
    "litellm.llms.openai_like.dynamic_config",
    "litellm.llms.vertex_ai.vertex_ai_partner_models.anthropic.transformation",
    "normlab.models",
    "normlab.models.providers",
    "normlab.models.mock",
    "normlab.models.local",
    "normlab.agents.llm",
    "normlab.harnesses",
    "normlab.harnesses.direct",
)
_PRELOAD_LOADED = ("normlab.envs.", "normlab.agents.", "normlab.harnesses.")


def _uses_llm(scenario: Scenario) -> bool:
    return any(cfg.kind == "llm" for cfg in scenario.agents.values())


def _context(llm: bool) -> Any:
    """The multiprocessing context workers start from: the fork server, told what to import
    when it starts (a server already running keeps what it imported), or spawn where there
    is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    loaded = [name for name in list(sys.modules) if name.startswith(_PRELOAD_LOADED)]
    preload = list(dict.fromkeys([*_PRELOAD, *(_PRELOAD_LLM if llm else ()), *sorted(loaded)]))
    context.set_forkserver_preload(preload)
    # as normlab.models.providers does: LiteLLM must never fetch its cost map at import
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return context


def prestart(scenario: Scenario) -> None:
    """Start the fork server that workers of `scenario` come from, without waiting for it:
    it imports what they need while this process goes on. Optional: the executor starts it
    when it is not running; a server already running is kept as it is."""
    context = _context(_uses_llm(scenario))
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Outbox:
    """Stands in for the store where a worker's writer writes: episodes and the model calls
    of lost episodes go to the parent; everything else is the real store."""

    def __init__(self, store: Any, results: Any):
        self._store = store
        self._results = results

    def write_episodes(self, run_id: str, results: list[Any]) -> list[int]:
        self._results.put(("episodes", results))
        return []

    def write_model_calls(self, run_id: str, calls: list[dict[str, Any]]) -> None:
        self._results.put(("calls", calls))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def _play_until_stopped(play: Any, stop: Any) -> None:
    """Play, and stop cleanly (finished episodes handed over) when the parent sets `stop`."""
    task = asyncio.ensure_future(play)
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        if stop.is_set() and not task.done():
            task.cancel()
    await task


def _adopt_environment(environ: dict[str, str]) -> None:
    """Take the parent's environment as it is now, as a spawned worker would: API keys and
    settings set since the fork server started are seen, and ones removed since are gone."""
    for name in [name for name in os.environ if name not in environ]:
        del os.environ[name]
    os.environ.update(environ)


def _worker(job: WorkerJob, results: Any, stop: Any, number: int = 0) -> None:
    """Play a share of the run; the last message says how it ended."""
    import signal

    from normlab.executors import errors, local
    from normlab.scenario import scenario_from_config
    from normlab.store import Store

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (`stop`)
    _adopt_environment(job.environ)
    status, message = "ok", None
    store = None
    try:
        scenario = scenario_from_config(job.config, job.scenario_text, job.scenario_path)
        store = Store(job.store_url, create=False)
        play = local.play_jobs(
            scenario, _Outbox(store, results), job.run_id, job.jobs, job.width, None, RunAssets.from_json(job.assets)
        )
        asyncio.run(_play_until_stopped(play, stop))
    except asyncio.CancelledError:
        status = "interrupted"
    except errors.BudgetStop as exc:
        status, message = "budget", str(exc)
    except errors.RunFailed as exc:
        status, message = "failed", str(exc)
    except Exception as exc:  # a worker must always report back
        status, message = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        if store is not None:
            store.close()
    results.put(("done", status, message, number))


async def play_in_processes(
    scenario: Scenario,
    store: Any,
    run_id: str,
    jobs: list[list[int]],
    width: int,
    on_episode: Any,
    assets: RunAssets,
    workers: int | None = None,
) -> None:
    """Play `jobs` in worker processes and write what they finish; raise like the local
    executor does."""
    from normlab.executors import errors, local

    if not jobs:
        return
    count = max(1, min(workers or default_workers(), len(jobs)))
    common = {
        "config": scenario.model_dump(mode="json"),
        "scenario_text": scenario.source_text,
        "scenario_path": scenario.source_path,
        "store_url": store.url,
        "run_id": run_id,
        "width": width,
        "assets": assets.to_json(),
        "environ": dict(os.environ),
    }
    results, stop, processes = _start(_uses_llm(scenario), count, jobs, common)
    outcomes: list[tuple[str, str | None]] = []
    write_error: Exception | None = None
    failures = errors.FailureCount(scenario.max_failed_episodes)  # across workers
    stop_reason: str | None = None
    # a thread takes the workers' messages off the pipe (unpickling them) while this one
    # writes: the parent writes every episode, so it is what bounds a run on many cores
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[list[tuple] | None] = asyncio.Queue(_INBOX_BATCHES)

    def deliver(batch: list[tuple] | None) -> None:  # on the reader's thread; waits for room
        put = asyncio.run_coroutine_threadsafe(inbox.put(batch), loop)
        while True:
            try:
                return put.result(timeout=1)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():  # the run is over (a second Ctrl-C cut it short)
                    return None

    closing = threading.Event()
    reader = threading.Thread(
        target=_read, args=(results, processes, deliver, closing), name="normlab-results", daemon=True
    )
    reader.start()
    ended = False  # the reader's end is taken: no more messages
    try:
        while not ended:
            batch, ended = await _next(inbox)
            episodes = []
            for message in batch:
                if message[0] == "episodes":
                    episodes.extend(message[1])
                elif message[0] == "calls":
                    await asyncio.to_thread(store.write_model_calls, run_id, message[1])
                elif message[0] in ("done", "lost"):
                    outcomes.append((message[1], message[2]))
            for result in episodes:
                if result.status == "failed" and stop_reason is None:
                    try:
                        failures.add(result.error or "an episode failed")
                    except errors.RunFailed as exc:
                        stop_reason = str(exc)
                        stop.set()
            if episodes and write_error is None:
                try:
                    # one transaction for what arrived together: whole episodes, never part of one
                    await asyncio.to_thread(store.write_episodes, run_id, episodes)
                except Exception as exc:
                    write_error = exc
                    stop.set()
                    continue
                if on_episode is not None:
                    for result in episodes:
                        on_episode(result)
    except BaseException:
        stop.set()
        closing.set()
        if not ended:
            await asyncio.shield(_finish(inbox, store, run_id, on_episode))
        raise
    finally:
        closing.set()  # the reader ends by itself (not joined here: it may wait on this loop)
        for process in processes:
            process.join(timeout=30)
    if write_error is not None:
        raise errors.RunFailed(f"could not store finished episodes: {errors.one_line(write_error)}")
    if stop_reason is not None:
        raise errors.RunFailed(stop_reason)
    statuses = {status for status, _ in outcomes}
    messages = "; ".join(dict.fromkeys(message for _, message in outcomes if message))
    if "failed" in statuses:
        raise errors.RunFailed(messages)
    if "budget" in statuses:
        raise errors.BudgetStop(messages)
    if "interrupted" in statuses:
        raise KeyboardInterrupt


def _start(llm: bool, count: int, jobs: list[list[int]], common: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """Start `count` workers (the first start waits for the fork server's imports); the
    results queue, the stop event and the processes. Spawns them if the fork server fails."""
    context = _context(llm)
    while True:
        results = context.Queue(_QUEUE_LIMIT)
        stop = context.Event()
        # interleaved shares: each worker gets early and late episodes
        processes = [
            context.Process(target=_worker, args=(WorkerJob(jobs=jobs[i::count], **common), results, stop, i), daemon=True)
            for i in range(count)
        ]
        try:
            processes[0].start()
        except (OSError, EOFError):
            if context.get_start_method() == "spawn":
                raise
            context = multiprocessing.get_context("spawn")  # no fork server: as before it
            continue
        for process in processes[1:]:
            process.start()
        return results, stop, processes


def _read(results: Any, processes: list[Any], deliver: Any, closing: threading.Event) -> None:
    """Hand the workers' messages to `deliver`, in batches, until every worker has reported
    its end (or died: reported once as 'lost'); then None. After `closing` (a stop), a
    worker silent for 30 s is given up on."""
    try:
        _read_all(results, processes, deliver, closing)
    except Exception as exc:  # the parent must not wait for messages that will not come
        closing.set()
        deliver([("lost", "failed", f"reading the workers' results failed: {type(exc).__name__}: {exc}")])
    deliver(None)


def _read_all(results: Any, processes: list[Any], deliver: Any, closing: threading.Event) -> None:
    reported: set[int] = set()
    quiet_since: float | None = None
    while len(reported) < len(processes):
        try:
            batch = [results.get(timeout=0.5)]
        except queue_module.Empty:
            batch = []
            for i, p in enumerate(processes):
                if i not in reported and not p.is_alive() and p.exitcode not in (0, None):
                    reported.add(i)
                    batch.append(("lost", "failed", f"a worker process ended with exit code {p.exitcode}"))
            if not batch:
                if closing.is_set():
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > _GIVE_UP_S:
                        break
                continue
        quiet_since = None
        while len(batch) < _QUEUE_LIMIT:
            try:
                batch.append(results.get_nowait())
            except queue_module.Empty:
                break
        reported.update(message[3] for message in batch if message[0] == "done")
        deliver(batch)


async def _next(inbox: asyncio.Queue[list[tuple] | None]) -> tuple[list[tuple], bool]:
    """The messages waiting in `inbox` (at least one batch), and whether they are the last.
    Cancelling the wait loses nothing."""
    first = await inbox.get()
    if first is None:
        return [], True
    batch = list(first)
    while not inbox.empty():
        more = inbox.get_nowait()
        if more is None:
            return batch, True
        batch.extend(more)
    return batch, False


async def _finish(inbox: asyncio.Queue[list[tuple] | None], store: Any, run_id: str, on_episode: Any) -> None:
    """After a stop: store what the workers finished before they end."""
    ended = False
    while not ended:
        batch, ended = await _next(inbox)
        for message in batch:
            if message[0] == "calls":
                await asyncio.to_thread(store.write_model_calls, run_id, message[1])
        episodes = [result for message in batch if message[0] == "episodes" for result in message[1]]
        if episodes:
            await asyncio.to_thread(store.write_episodes, run_id, episodes)
            if on_episode is not None:
                for result in episodes:
                    on_episode(result)

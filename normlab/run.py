"""Runs: create one from a scenario, play its episodes with an executor, resume it, and keep
its status. A run is leased by the process that plays it (`Store.lease`)."""

from __future__ import annotations

import asyncio
import subprocess
import warnings
from collections.abc import Iterable
from pathlib import Path

from normlab import __version__
from normlab.assets import RunAssets, resolve_assets, scenario_dir
from normlab.executors.errors import BudgetStop, RunFailed, one_line
from normlab.episode import jobs_for
from normlab.executors.local import EpisodeCallback, has_human, play_jobs, width_of
from normlab.scenario import Scenario
from normlab.store import Run, Store, new_run_id


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
        episodes_planned=scenario.total_episodes,
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
        if kind == "processes" and not has_human(scenario):  # a human seat needs this terminal
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


def _set_final_status(store: Store, run_id: str, status: str, error: str | None) -> None:
    """A store that fails here cannot record the status: the run's lease then goes stale and
    `runs ls` reports it interrupted."""
    try:
        store.set_status(run_id, status, error)
    except Exception as exc:
        if status == "finished":
            raise RunFailed(f"could not store the run's status: {one_line(exc)}") from None


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
    run_sync(scenario, store, run_id, range(scenario.total_episodes), concurrency, on_episode)
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
    todo = missing_indices(store, run.id, scenario.total_episodes)
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


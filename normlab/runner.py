"""The runner's names, kept where earlier code imports them from: an episode is
`normlab.episode`, runs are `normlab.run`, the local executor is `normlab.executors.local`."""

from __future__ import annotations

from normlab.episode import (
    EpisodeLog,
    carries_state,
    chain_of,
    episode_seed,
    jobs_for,
    play_episode,
)
from normlab.executors.errors import BudgetStop, FailureCount, RunFailed
from normlab.executors.local import EpisodeCallback, model_resources, play_jobs, width_of
from normlab.run import (
    create_run,
    execute,
    missing_indices,
    resume_run,
    run_scenario,
    run_sync,
    stored_assets,
    stored_scenario,
)

__all__ = [
    "BudgetStop",
    "EpisodeCallback",
    "EpisodeLog",
    "FailureCount",
    "RunFailed",
    "carries_state",
    "chain_of",
    "create_run",
    "episode_seed",
    "execute",
    "jobs_for",
    "missing_indices",
    "model_resources",
    "play_episode",
    "play_jobs",
    "resume_run",
    "run_scenario",
    "run_sync",
    "stored_assets",
    "stored_scenario",
    "width_of",
]

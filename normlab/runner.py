"""The runner: one loop for Gymnasium, PettingZoo Parallel and PettingZoo AEC envs.

An episode is a pure function of (scenario, episode index): its seed is derived from both, it
builds its own env and agents, and it returns an `EpisodeResult` value that the store writes
in one transaction. Episodes run as asyncio tasks, `concurrency` at a time; because nothing
is shared between them, concurrency never changes results, and a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normlab import __version__, envs
from normlab.agents import Agent, AgentContext, AgentError, build_agent
from normlab.results import EpisodeResult, dumps_json
from normlab.scenario import Scenario
from normlab.seeding import derive_seed
from normlab.store import Run, Store, new_run_id
from normlab.store.models import utcnow

EpisodeCallback = Callable[[EpisodeResult], None]


class RunFailed(RuntimeError):
    """An episode could not finish (an agent gave up, an env raised); finished episodes stay."""


def episode_seed(scenario: Scenario, index: int) -> int:
    return derive_seed("episode", scenario.seed, index)


@dataclass
class EpisodeLog:
    """Episode-scoped sink that agents write model calls to; the runner stamps the turn `t`."""

    t: int = 0

    def __post_init__(self) -> None:
        self.model_calls: list[dict[str, Any]] = []

    def record_model_call(self, agent: str, row: dict[str, Any]) -> None:
        self.model_calls.append({**row, "t": self.t, "agent": agent})


class _Recorder:
    """Collects step rows, returns and event counts of one episode."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.returns: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self.events_by_agent: dict[str, Counter[str]] = {}

    def add(self, t: int, agent: str, obs: Any, action: Any, reward: Any, term: Any, trunc: Any, info: Any) -> None:
        reward = float(reward or 0.0)
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
        for row in reversed(self.rows):
            if row["t"] != t:
                break
            row["truncated"] = True

    def metrics(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "events_by_agent": {a: dict(c) for a, c in self.events_by_agent.items()},
        }


async def play_episode(scenario: Scenario, index: int, env: Any = None) -> EpisodeResult:
    """Play one episode of a scenario; needs nothing from any other episode.

    `env` may be an instance left by an earlier episode of the same scenario: reset with the
    episode's seed puts it in the same state as a new one (the official seed tests check
    that), and reusing it saves building spaces every episode. Without it, a new env is made
    and closed here.
    """
    seed = episode_seed(scenario, index)
    started = utcnow()
    own_env = env is None
    if own_env:
        env = envs.make(scenario.env.id, **scenario.env.params)
    log = EpisodeLog()
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
                extra={"log": log, "scenario": scenario, "episode_index": index, "episode_seed": seed},
            )
            agents[agent_id] = build_agent(scenario.agents[agent_id], context)
            await agents[agent_id].reset(derive_seed("agent", seed, agent_id))
        recorder = _Recorder()
        loop = {"gymnasium": _play_gymnasium, "parallel": _play_parallel, "aec": _play_aec}[api]
        await loop(env, agents, first, scenario.max_steps, recorder, log)
    finally:
        if own_env:
            env.close()
    return EpisodeResult(
        index=index,
        seed=seed,
        steps=recorder.rows,
        returns=recorder.returns,
        metrics=recorder.metrics(),
        started_at=started,
        finished_at=utcnow(),
        model_calls=log.model_calls,
        num_steps=recorder.rows[-1]["t"] + 1 if recorder.rows else 0,
    )


async def _act(agent: Agent, log: EpisodeLog, t: int, obs: Any, info: Any) -> Any:
    log.t = t
    return await agent.act(obs, info)


async def _play_gymnasium(env: Any, agents: dict[str, Agent], first: Any, max_steps: int | None, rec: _Recorder, log: EpisodeLog) -> None:
    (agent_id, agent), = agents.items()
    obs, info = first
    t = 0
    while True:
        action = await _act(agent, log, t, obs, info)
        next_obs, reward, term, trunc, next_info = env.step(action)
        rec.add(t, agent_id, obs, action, reward, term, trunc, next_info)
        t += 1
        if term or trunc:
            return
        if max_steps is not None and t >= max_steps:
            rec.truncate_last(t - 1)
            return
        obs, info = next_obs, next_info


async def _play_parallel(env: Any, agents: dict[str, Agent], first: Any, max_steps: int | None, rec: _Recorder, log: EpisodeLog) -> None:
    observations, infos = first
    # Scripted agents answer without waiting, so awaiting them in turn is much cheaper than a
    # task each; agents that wait on I/O (models, people) are asked side by side.
    side_by_side = sum(1 for a in agents.values() if getattr(a, "waits_on_io", False)) > 1
    t = 0
    while env.agents:
        live = list(env.agents)
        log.t = t
        if side_by_side:
            chosen = await asyncio.gather(*(agents[a].act(observations[a], infos.get(a, {})) for a in live))
            actions = dict(zip(live, chosen))
        else:
            actions = {a: await agents[a].act(observations[a], infos.get(a, {})) for a in live}
        next_obs, rewards, terms, truncs, next_infos = env.step(actions)
        for a in live:
            rec.add(t, a, observations[a], actions[a], rewards.get(a), terms.get(a), truncs.get(a), next_infos.get(a))
        t += 1
        observations, infos = next_obs, next_infos
        if max_steps is not None and t >= max_steps and env.agents:
            rec.truncate_last(t - 1)
            return


async def _play_aec(env: Any, agents: dict[str, Agent], first: Any, max_steps: int | None, rec: _Recorder, log: EpisodeLog) -> None:
    t = 0
    for agent_id in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        # a finished agent still gets one turn to collect its last reward; it must pass None
        action = None if (term or trunc) else await _act(agents[agent_id], log, t, obs, info)
        env.step(action)
        rec.add(t, agent_id, obs, action, reward, term, trunc, info)
        t += 1
        if max_steps is not None and t >= max_steps and env.agents:
            rec.truncate_last(t - 1)
            return


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


def create_run(store: Store, scenario: Scenario) -> str:
    run = Run(
        id=new_run_id(),
        name=scenario.name,
        scenario_path=scenario.source_path,
        scenario_text=scenario.source_text,
        scenario_hash=scenario.source_hash,
        config=scenario.model_dump(mode="json"),
        normlab_version=__version__,
        git_commit=_git_commit(scenario.source_path),
        status="running",
        seed=scenario.seed,
        episodes_planned=scenario.episodes,
    )
    return store.create_run(run)


class _EpisodeWriter:
    """Stores finished episodes on a worker thread, in the order they finish.

    Writing overlaps with playing the next episodes (SQLite does its work without holding
    the GIL), and at most `limit` finished episodes wait in memory. Each write is still one
    transaction, so a crash loses only episodes not yet written, never part of one.
    """

    def __init__(self, store: Store, run_id: str, on_episode: EpisodeCallback | None, limit: int):
        self.store, self.run_id, self.on_episode = store, run_id, on_episode
        self.queue: asyncio.Queue[EpisodeResult | None] = asyncio.Queue(limit)

    async def run(self) -> None:
        done = False
        while not done:
            batch = [await self.queue.get()]
            while not self.queue.empty():  # everything that finished meanwhile: one commit
                batch.append(self.queue.get_nowait())
            done = batch[-1] is None
            results = [r for r in batch if r is not None]
            if results:
                await asyncio.to_thread(self.store.write_episodes, self.run_id, results)
            for result in results:
                if self.on_episode is not None:
                    self.on_episode(result)

    def write_waiting(self) -> None:
        """After a failure or Ctrl-C: store the episodes that finished but were not written."""
        results = []
        while not self.queue.empty():
            result = self.queue.get_nowait()
            if result is not None:
                results.append(result)
        if results:
            self.store.write_episodes(self.run_id, results)


async def execute(
    scenario: Scenario,
    store: Store,
    run_id: str,
    indices: Iterable[int],
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
) -> None:
    """Play the given episodes, writing each to the store as it ends; sets the run's status.

    Raises `RunFailed` if an episode fails, and lets cancellation (Ctrl-C) through after
    marking the run interrupted. Either way every finished episode is stored.
    """
    pending = iter(sorted(indices))
    workers = max(1, min(concurrency or scenario.concurrency, scenario.episodes))
    writer = _EpisodeWriter(store, run_id, on_episode, limit=max(16, 2 * workers))

    async def worker() -> None:
        env = None
        try:
            for index in pending:  # one shared iterator: each index is taken by exactly one worker
                if env is None:
                    env = envs.make(scenario.env.id, **scenario.env.params)
                await writer.queue.put(await play_episode(scenario, index, env))
                # scripted episodes never wait on anything; yielding here lets other workers
                # and the writer take turns, and lets Ctrl-C (a cancellation) in
                await asyncio.sleep(0)
        finally:
            if env is not None:
                env.close()

    async def play_all() -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
        await writer.queue.put(None)

    store.set_status(run_id, "running")
    try:
        await _run_tasks(writer.run(), play_all())
    except asyncio.CancelledError:
        writer.write_waiting()
        store.set_status(run_id, "interrupted")
        raise
    except RunFailed as exc:
        writer.write_waiting()
        store.set_status(run_id, "failed", str(exc))
        raise
    store.set_status(run_id, "finished")


async def _run_tasks(*coroutines: Any) -> None:
    """Run until all finish; the first failure cancels the rest and becomes RunFailed."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except* AgentError as group:
        raise RunFailed("; ".join(str(e) for e in _leaves(group))) from None
    except* Exception as group:
        first = _leaves(group)[0]
        raise RunFailed(f"{type(first).__name__}: {first}") from first


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
    _run_sync(scenario, store, run_id, range(scenario.episodes), concurrency, on_episode)
    return run_id


def resume_run(
    store: Store,
    run_id: str,
    concurrency: int | None = None,
    on_episode: EpisodeCallback | None = None,
) -> tuple[Scenario, list[int]]:
    """Play only the episodes a run is missing, each with its own seed."""
    from normlab.scenario import scenario_from_config

    run = store.get_run(run_id)
    scenario = scenario_from_config(run.config, run.scenario_text, run.scenario_path)
    todo = missing_indices(store, run.id, scenario.episodes)
    _run_sync(scenario, store, run.id, todo, concurrency, on_episode)
    return scenario, todo


def _run_sync(
    scenario: Scenario,
    store: Store,
    run_id: str,
    indices: Iterable[int],
    concurrency: int | None,
    on_episode: EpisodeCallback | None,
) -> None:
    try:
        asyncio.run(execute(scenario, store, run_id, indices, concurrency, on_episode))
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted")
        raise

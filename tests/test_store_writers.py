"""A store safe with many writers (issue 13): idempotent episode writes, no database call on
the event loop, the new columns, and two `normlab run` processes writing one file at once."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from contextlib import closing
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, text

from normlab.models import ModelClient, ModelResources
from normlab.models import mock
from normlab.results import EpisodeResult, dumps_json
from normlab.runner import create_run
from normlab.scenario import parse_scenario
from normlab.store import Grade, Run, Store, StoreError

SCENARIO = parse_scenario(
    """
name: writers
env: {id: normlab/IteratedPrisonersDilemma-v0}
agents:
  player_0: {kind: scripted, strategy: tit_for_tat}
  player_1: {kind: scripted, strategy: always_defect}
"""
)


def episode(index: int, seed: int | None = None, steps: int = 2, phases: bool = False) -> EpisodeResult:
    now = datetime.now(timezone.utc)
    rows = []
    for t in range(steps):
        for agent in ("player_0", "player_1"):
            row = {
                "t": t,
                "agent": agent,
                "observation": dumps_json({"t": t}),
                "action": dumps_json(0),
                "reward": 1.0,
                "terminated": t == steps - 1,
                "truncated": False,
                "info": dumps_json({}),
            }
            if phases and agent == "player_0":  # rows with and without a phase, in one insert
                row["phase"] = "talk" if t % 2 == 0 else "act"
            rows.append(row)
    return EpisodeResult(
        index=index,
        seed=100 + index if seed is None else seed,
        steps=rows,
        returns={"player_0": float(steps), "player_1": float(steps)},
        metrics={},
        started_at=now,
        finished_at=now,
        num_steps=steps,
    )


@pytest.fixture
def db(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar()


# --- idempotent episode writes -------------------------------------------------------------------


def test_the_same_episode_sent_twice_is_stored_once(db):
    run_id = create_run(db, SCENARIO)
    first = db.write_episode(run_id, episode(0))
    assert db.write_episodes(run_id, [episode(0), episode(1)])[0] == first
    assert db.finished_indices(run_id) == {0, 1} and count(db, "step") == 8


def test_a_different_episode_for_a_stored_index_is_an_error(db):
    run_id = create_run(db, SCENARIO)
    db.write_episode(run_id, episode(3))
    with pytest.raises(StoreError) as caught:
        db.write_episodes(run_id, [episode(4), episode(3, seed=999)])
    message = str(caught.value)
    assert f"run {run_id}" in message and "episode 3" in message and "seed 103" in message and "seed 999" in message
    # the batch is one transaction: nothing of it was written, the stored episode is as it was
    assert db.finished_indices(run_id) == {3}
    assert db.episode(run_id, 3).seed == 103 and count(db, "step") == 4


# --- no synchronous database call inside the event loop ----------------------------------------


def test_async_cache_calls_run_on_store_threads(db, monkeypatch):
    threads = []
    sync_get, sync_put = db.cached_reply, db.cache_reply
    monkeypatch.setattr(db, "cached_reply", lambda key: threads.append(threading.current_thread().name) or sync_get(key))
    monkeypatch.setattr(db, "cache_reply", lambda *a: threads.append(threading.current_thread().name) or sync_put(*a))

    async def main() -> tuple:
        missing = await db.acached_reply("k")
        await db.acache_reply("k", "mock/x", {"content": "first"})
        await db.acache_reply("k", "mock/x", {"content": "second"})
        return missing, await db.acached_reply("k")

    assert asyncio.run(main()) == (None, {"content": "first"})
    assert len(threads) == 4 and all(name.startswith("normlab-store") for name in threads)


def test_a_slow_cache_lookup_does_not_block_the_event_loop(db, monkeypatch):
    sync_get = db.cached_reply
    monkeypatch.setattr(db, "cached_reply", lambda key: time.sleep(0.3) or sync_get(key))

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        await db.acached_reply("k")
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 10


class SyncOnlyCache:
    """A cache with only the synchronous methods (as the tests' dict caches)."""

    def __init__(self) -> None:
        self.replies: dict[str, dict] = {}

    def cached_reply(self, key: str) -> dict | None:
        return self.replies.get(key)

    def cache_reply(self, key: str, model: str, reply: dict) -> None:
        self.replies.setdefault(key, reply)


class AsyncCache(SyncOnlyCache):
    """Both kinds; the synchronous ones must not be called from the client."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def cached_reply(self, key: str) -> dict | None:
        raise AssertionError("the client called the synchronous cached_reply")

    def cache_reply(self, key: str, model: str, reply: dict) -> None:
        raise AssertionError("the client called the synchronous cache_reply")

    async def acached_reply(self, key: str) -> dict | None:
        self.calls.append("get")
        return self.replies.get(key)

    async def acache_reply(self, key: str, model: str, reply: dict) -> None:
        self.calls.append("put")
        self.replies.setdefault(key, reply)


@pytest.fixture
def fixed_mock():
    mock.reset_calls()
    mock.register("writers", {"reply": '{"action": 1}'})
    yield
    mock.unregister("writers")


@pytest.mark.parametrize("cache_kind", [AsyncCache, SyncOnlyCache])
def test_the_client_awaits_the_async_cache_where_there_is_one(cache_kind, fixed_mock):
    cache = cache_kind()
    messages = [{"role": "user", "content": "0 or 1?"}]

    def ask():
        client = ModelClient("mock/writers", resources=ModelResources(cache=cache, cache_mode="on"))
        return asyncio.run(client.complete(messages))

    first, second = ask(), ask()
    assert first.content == second.content == '{"action": 1}'
    assert not first.cache_hit and second.cache_hit and len(cache.replies) == 1
    if cache_kind is AsyncCache:
        assert cache.calls == ["get", "put", "get"]


def test_the_client_uses_the_stores_async_cache(db, fixed_mock):
    messages = [{"role": "user", "content": "0 or 1?"}]

    def ask():
        client = ModelClient("mock/writers", resources=ModelResources(cache=db, cache_mode="on"))
        return asyncio.run(client.complete(messages))

    assert not ask().cache_hit and ask().cache_hit and count(db, "response_cache") == 1


# --- new columns -------------------------------------------------------------------------------------


def test_new_columns_round_trip(db):
    run_id = new = create_run(db, SCENARIO)
    with db.engine.begin() as conn:
        conn.execute(text("update run set group_id = 'sweep-1' where id = :id"), {"id": new})
    grouped = db.create_run(
        Run(id="aaaabbbbcccc", name="g", scenario_text="", scenario_hash="0" * 64, config={}, normlab_version="0",
            seed=0, episodes_planned=1, group_id="sweep-1")
    )
    assert db.get_run(run_id).group_id == db.get_run(grouped).group_id == "sweep-1"
    result = episode(0, steps=3, phases=True)
    result.agent_ids = {"player_0": "a" * 16, "player_1": "b" * 16}  # the runner fills these later
    episode_id = db.write_episode(run_id, result)
    assert db.episode(run_id, 0).agent_ids == {"player_0": "a" * 16, "player_1": "b" * 16}
    steps = db.steps(episode_id)
    assert [(s["agent"], s["phase"]) for s in steps if s["t"] < 2] == [
        ("player_0", "talk"), ("player_1", None), ("player_0", "act"), ("player_1", None)
    ]
    assert db.write_episode(run_id, episode(1)) and db.episode(run_id, 1).agent_ids is None
    with db.engine.connect() as conn:  # absent is SQL NULL, not JSON 'null'
        assert conn.execute(text("select count(*) from episode where agent_ids is null")).scalar() == 1
    with db.engine.begin() as conn:
        conn.execute(insert(Grade.__table__).values(
            episode_id=episode_id, grader="rubric", item="honesty", score=0.5, grader_version="1.2",
            judge_model="mock/judge", created_at=datetime.now(timezone.utc),
        ))
        row = conn.execute(text("select grader_version, judge_model from grade")).one()
    assert tuple(row) == ("1.2", "mock/judge")
    with db.engine.connect() as conn:
        names = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list(run)")}
    assert "ix_run_group_id" in names


# --- two processes, one store ------------------------------------------------------------------------

BIG = """
name: two-writers
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 50}}
agents:
  player_0: {kind: scripted, strategy: tit_for_tat}
  player_1: {kind: scripted, strategy: random, params: {p: 0.4}}
episodes: 300
seed: 5
concurrency: 4
"""


@pytest.mark.slow
def test_two_run_processes_writing_one_store_at_once_lose_nothing(tmp_path):
    # Whether the two runs overlap depends on how fast each process starts on a busy machine:
    # the store's guarantees are checked every time, and the whole play is tried again (at
    # most three times) until the two runs did write at the same time.
    for attempt in range(3):
        if _two_runs_at_once(tmp_path / f"attempt{attempt}"):
            return
    pytest.fail("the two runs never wrote at the same time in three attempts")


def _two_runs_at_once(tmp_path: Path) -> bool:
    tmp_path.mkdir()
    scenario = tmp_path / "big.yaml"
    scenario.write_text(BIG)
    path = tmp_path / "shared.db"  # made by whichever process gets there first
    url = f"sqlite:///{path}"
    go = tmp_path / "go"
    # `python -m normlab.cli run ...`, held at the start line until both have imported normlab,
    # so that the two runs overlap however slowly each process starts
    start = (
        "import os, sys, time\n"
        "from normlab.cli import main\n"
        f"open({str(go)!r} + f'.{{os.getpid()}}', 'w').close()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "sys.argv[0] = 'normlab'\n"
        "main()\n"
    )
    command = [sys.executable, "-c", start, "run", str(scenario), "--store", url, "-q"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < 2 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    outputs = [proc.communicate(timeout=280) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, (proc.returncode, out, err)
    run_ids = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert len(set(run_ids)) == 2

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        per_run = {}
        for run_id in run_ids:
            status, planned = conn.execute("SELECT status, episodes_planned FROM run WHERE id=?", (run_id,)).fetchone()
            episodes, indices, steps_claimed = conn.execute(
                "SELECT count(*), count(DISTINCT \"index\"), sum(num_steps) FROM episode WHERE run_id=?", (run_id,)
            ).fetchone()
            step_rows = conn.execute(
                "SELECT count(*) FROM step JOIN episode ON episode.id = step.episode_id WHERE episode.run_id=?", (run_id,)
            ).fetchone()[0]
            assert (status, planned, episodes, indices) == ("finished", 300, 300, 300)
            assert steps_claimed == 300 * 50 and step_rows == 300 * 50 * 2
            per_run[run_id] = conn.execute(
                "SELECT \"index\", seed, returns FROM episode WHERE run_id=? ORDER BY \"index\"", (run_id,)
            ).fetchall()
        spans = conn.execute(
            "SELECT min(started_at), max(finished_at) FROM episode GROUP BY run_id"
        ).fetchall()
    # same scenario, same seeds: the two runs stored the same episodes, none mixed up
    first, second = per_run.values()
    assert first == second
    # whether the two runs did write at the same time
    (start_a, end_a), (start_b, end_b) = spans
    return start_a < end_b and start_b < end_a


def test_steps_with_and_without_a_phase_insert_with_named_parameters(tmp_path):
    """The bulk step insert for drivers with named parameters (e.g. PostgreSQL's), on SQLite."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'named.db'}", paramstyle="named")
    store = Store(f"sqlite:///{tmp_path / 'named.db'}", engine=engine)
    assert store._step_insert_sql()[1] is False
    run_id = create_run(store, SCENARIO)
    episode_id = store.write_episode(run_id, episode(0, steps=2, phases=True))
    assert [s["phase"] for s in store.steps(episode_id)] == ["talk", None, "act", None]
    store.close()

"""Interruption and resume through the real CLI: kill -9 and Ctrl-C leave no half episode."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normlab.store import Store

pytestmark = pytest.mark.slow

#: Enough episodes that the run is still playing after the busy resume's process has started
#: (about a second of imports, in which a fast machine plays a few hundred episodes).
EPISODES = 1200
SCENARIO = f"""
name: resumable
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: 60, noise: 0.05}}}}
agents:
  player_0: {{kind: scripted, strategy: pavlov}}
  player_1: {{kind: scripted, strategy: random, params: {{p: 0.3}}}}
episodes: {EPISODES}
seed: 11
concurrency: 3
"""


def normlab(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "normlab.cli", *args], capture_output=True, text=True, timeout=600, **kwargs)


def start(scenario: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "normlab.cli", "run", str(scenario), "--store", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_episodes(db: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    n = conn.execute("select count(*) from episode").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= at_least:
                return n
        time.sleep(0.05)
    raise AssertionError("no episodes were stored in time")


def run_id_of(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("select id from run").fetchone()[0]


def steps_of(store: Store, run_id: str) -> list[tuple]:
    return [
        (s["episode"], s["t"], s["agent"], s["observation"], s["action"], s["reward"], s["terminated"], s["truncated"], s["info"])
        for s in store.iter_steps(run_id)
    ]


def check_whole_episodes(db: Path) -> None:
    """Every stored episode has all its steps, and no step lacks its episode."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "select e.num_steps, count(s.id) from episode e left join step s on s.episode_id = e.id group by e.id"
        ).fetchall()
        assert rows and all(count == 60 * 2 and n == 60 for n, count in rows)
        orphans = conn.execute("select count(*) from step where episode_id not in (select id from episode)").fetchone()[0]
        assert orphans == 0


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"

    proc = start(scenario, f"sqlite:///{killed_db}")
    wait_for_episodes(killed_db, 5, proc)
    # while it plays, a resume is refused with one line (it raised IntegrityError before)
    busy = normlab("resume", run_id_of(killed_db), "--store", f"sqlite:///{killed_db}")
    assert busy.returncode == 2, busy.stderr
    assert "still running" in busy.stderr and "Traceback" not in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    check_whole_episodes(killed_db)
    run_id = run_id_of(killed_db)
    store = Store(f"sqlite:///{killed_db}")
    done_before = store.finished_indices(run_id)
    assert 5 <= len(done_before) < EPISODES
    assert store.get_run(run_id).status == "running"  # nobody could mark it: it was killed
    listed = normlab("runs", "ls", "--json", "--store", f"sqlite:///{killed_db}")
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "interrupted"  # its process is gone: the run reads as interrupted

    resumed = normlab("resume", run_id[:6], "--store", f"sqlite:///{killed_db}", "--concurrency", "5")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == run_id
    assert f"{EPISODES - len(done_before)} of {EPISODES}" in resumed.stderr
    assert store.get_run(run_id).status == "finished"

    clean = normlab("run", str(scenario), "--store", f"sqlite:///{clean_db}", "--quiet")
    assert clean.returncode == 0, clean.stderr
    clean_store = Store(f"sqlite:///{clean_db}")
    clean_id = clean.stdout.strip().splitlines()[-1]
    assert steps_of(store, run_id) == steps_of(clean_store, clean_id)
    assert [e.returns for e in store.episodes(run_id)] == [e.returns for e in clean_store.episodes(clean_id)]


def test_ctrl_c_marks_run_interrupted_and_keeps_finished_episodes(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    db = tmp_path / "int.db"
    proc = start(scenario, f"sqlite:///{db}")
    wait_for_episodes(db, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "normlab resume" in stderr
    check_whole_episodes(db)
    store = Store(f"sqlite:///{db}")
    run_id = run_id_of(db)
    assert store.get_run(run_id).status == "interrupted"
    assert 3 <= len(store.finished_indices(run_id)) < EPISODES


def test_resume_of_finished_run_plays_nothing(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.replace(f"episodes: {EPISODES}", "episodes: 3"))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    first = normlab("run", str(scenario), "--store", url, "--quiet")
    run_id = first.stdout.strip()
    again = normlab("resume", run_id, "--store", url)
    assert again.returncode == 0
    assert "0 of 3 episodes to play" in again.stderr
    assert len(Store(url).episodes(run_id)) == 3


def test_resume_unknown_run_is_a_user_error(tmp_path):
    result = normlab("resume", "doesnotexist", "--store", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

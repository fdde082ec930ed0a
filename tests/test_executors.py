"""Executors: worker processes give the same stored run as the local executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from normlab.cli import app
from normlab.store import Store

cli = CliRunner()

SCENARIO = """
name: executors
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 20, noise: 0.05}}
agents:
  player_0: {kind: scripted, strategy: pavlov}
  player_1: {kind: scripted, strategy: random, params: {p: 0.3}}
episodes: 40
seed: 5
concurrency: 3
"""

LLM = """
name: executors-llm
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 3}}
agents:
  player_0: {kind: llm, model: mock/exec, harness: reflective, temperature: 0.5, params: {mock: {replies: ['{"action": 0}', 'I defect', '{"action": 1}']}}}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 8
chains: 2
seed: 6
cache: off
"""


def rows(url: str, run_id: str) -> list[tuple]:
    return [
        (s["episode"], s["t"], s["agent"], s["observation"], s["action"], s["reward"], s["terminated"], s["truncated"], s["info"], s["phase"])
        for s in Store(url).iter_steps(run_id)
    ]


def run(tmp_path, text: str, *args: str) -> tuple[str, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = cli.invoke(app, ["run", str(path), "--store", url, "-q", *args])
    assert result.exit_code == 0, result.output
    return url, result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("text", [SCENARIO, LLM], ids=["scripted", "llm-chains"])
def test_processes_store_what_local_stores(tmp_path, text):
    url, local = run(tmp_path, text)
    _, processes = run(tmp_path, text, "--executor", "processes", "--workers", "2")
    assert rows(url, processes) == rows(url, local)
    store = Store(url)
    assert [e.returns for e in store.episodes(processes)] == [e.returns for e in store.episodes(local)]
    assert store.get_run(processes).status == "finished"


def test_a_failing_worker_fails_the_run_and_keeps_finished_episodes(tmp_path):
    text = SCENARIO.replace("strategy: pavlov", "strategy: pavlov\n  # fails in episode 7\n").replace(
        "player_1: {kind: scripted, strategy: random, params: {p: 0.3}}",
        "player_1: {kind: llm, model: mock/f, params: {mock: {reply: '{\"action\": 0}', fail_first: 1000, fault: auth}}, call_retries: 0}",
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = cli.invoke(app, ["run", str(path), "--store", url, "--executor", "processes", "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "invalid API key" in result.output and "Traceback" not in result.output
    (stored, _), = Store(url).list_runs()
    assert stored.status == "failed"


def test_ctrl_c_with_processes_then_resume(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("episodes: 40", "episodes: 3000").replace("rounds: 20", "rounds: 40"))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "normlab.cli", "run", str(path), "--store", url, "-q", "--executor", "processes", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            runs = Store(url).list_runs()
        except Exception:
            runs = []
        if runs and runs[0][1] >= 20:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run_id = out.strip()
    store = Store(url)
    assert store.get_run(run_id).status == "interrupted"
    done = len(store.episodes(run_id))
    assert 20 <= done < 3000
    resumed = subprocess.run(
        [sys.executable, "-m", "normlab.cli", "resume", run_id, "--store", url, "-q", "--executor", "processes", "--workers", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(store.episodes(run_id)) == 3000


BUDGETED = """
name: shared-budget
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 3}}
agents:
  player_0: {kind: llm, model: mock/b, params: {mock: {reply: '{"action": 0} and words to spend', latency: 0.02}}}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 60
cache: off
concurrency: 2
budget: {tokens: 3000}
"""


def test_worker_processes_share_one_budget(tmp_path):
    """Two workers spend from one ledger in the store: together they stop at the budget, not
    at twice it (each call's overshoot is bounded by the calls in flight)."""
    path = tmp_path / "s.yaml"
    path.write_text(BUDGETED)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = cli.invoke(app, ["run", str(path), "--store", url, "-q", "--executor", "processes", "--workers", "2"])
    assert result.exit_code == 3, result.output
    run_id = result.output.strip().splitlines()[-1]
    store = Store(url)
    tokens, _ = store.spent(run_id)
    per_call = max(c["tokens_in"] + c["tokens_out"] for ep in store.episodes(run_id) for c in store.model_calls(ep.id))
    in_flight = 2 * 2  # workers x concurrency
    assert 3000 <= tokens <= 3000 + in_flight * per_call
    assert store.usage(run_id)[0] <= tokens  # calls of unfinished episodes are in the ledger too
    assert store.get_run(run_id).status == "budget_exhausted"


# --- where workers come from: a fork server that imported what they need ----------------


def test_what_the_fork_server_imports_starts_no_thread():
    """Workers are forked from the fork server: what it imports must leave it with one
    thread (a fork does not carry threads), and must import."""
    from normlab.executors import processes

    names = [*processes._PRELOAD, *processes._PRELOAD_LLM]
    code = (
        "import importlib, sys, threading\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert 'llama_cpp' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert done.returncode == 0, done.stderr


def test_runs_from_a_warm_fork_server_store_what_local_stores(tmp_path):
    """A fresh process whose fork server preloaded LiteLLM: its first and second processes
    runs (the second with the server warm) store what the local executor stores."""
    path = tmp_path / "s.yaml"
    path.write_text(LLM)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code = (
        "from normlab.cli import app\n"
        "if __name__ == '__main__':\n"
        "    for args in ([], ['--executor', 'processes', '--workers', '2'], ['--executor', 'processes', '--workers', '3']):\n"
        f"        try: app(['run', {str(path)!r}, '--store', {url!r}, '-q', *args])\n"
        "        except SystemExit as exc: assert not exc.code, exc.code\n"
    )
    script = tmp_path / "runs.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    local, first, second = done.stdout.split()
    assert rows(url, first) == rows(url, local)
    assert rows(url, second) == rows(url, local)
    assert len(rows(url, local)) == 8 * 3 * 2


class _BrokenForkServer:
    """A fork server that died while importing: starting a worker from it fails."""

    def __init__(self) -> None:
        import multiprocessing

        self._spawn = multiprocessing.get_context("spawn")

    def get_start_method(self) -> str:
        return "forkserver"

    def Queue(self, size: int):  # noqa: N802 (multiprocessing's name)
        return self._spawn.Queue(size)

    def Event(self):  # noqa: N802
        return self._spawn.Event()

    def Process(self, **kwargs):  # noqa: N802
        class Unstartable:
            def start(self) -> None:
                raise EOFError("unexpected EOF")

        return Unstartable()


def test_workers_are_spawned_when_the_fork_server_fails(tmp_path, monkeypatch):
    from normlab.executors import processes

    url, local = run(tmp_path, SCENARIO.replace("episodes: 40", "episodes: 6"))
    monkeypatch.setattr(processes, "_context", lambda llm: _BrokenForkServer())
    _, spawned = run(tmp_path, SCENARIO.replace("episodes: 40", "episodes: 6"), "--executor", "processes", "--workers", "2")
    assert rows(url, spawned) == rows(url, local)


def test_workers_take_the_environment_of_now(monkeypatch):
    """The fork server keeps the environment it started with; each worker takes the
    parent's as it is when the run starts (keys set or removed since)."""
    from normlab.executors import processes

    monkeypatch.setenv("NORMLAB_TEST_KEPT", "old")
    monkeypatch.setenv("NORMLAB_TEST_REMOVED", "x")
    wanted = {k: v for k, v in os.environ.items() if k != "NORMLAB_TEST_REMOVED"}
    wanted.update(NORMLAB_TEST_KEPT="new", NORMLAB_TEST_ADDED="1")
    processes._adopt_environment(wanted)
    assert os.environ.get("NORMLAB_TEST_KEPT") == "new" and os.environ.get("NORMLAB_TEST_ADDED") == "1"
    assert "NORMLAB_TEST_REMOVED" not in os.environ
    monkeypatch.delenv("NORMLAB_TEST_ADDED")


class _Ended:
    """A worker process that has ended with `exitcode`."""

    def __init__(self, exitcode: int):
        self.exitcode = exitcode

    def is_alive(self) -> bool:
        return False


def _read_messages(messages: list[tuple], processes: list) -> list:
    import queue
    import threading

    from normlab.executors import processes as executor

    results: queue.Queue = queue.Queue()
    for message in messages:
        results.put(message)
    delivered: list = []
    executor._read(results, processes, delivered.append, threading.Event())
    return delivered


def test_a_worker_that_dies_unreported_is_reported_lost_once():
    delivered = _read_messages([("episodes", ["e1"]), ("done", "ok", None, 0)], [_Ended(0), _Ended(-9)])
    assert delivered[-1] is None
    messages = [m for batch in delivered[:-1] for m in batch]
    assert messages.count(("lost", "failed", "a worker process ended with exit code -9")) == 1
    assert ("episodes", ["e1"]) in messages and ("done", "ok", None, 0) in messages


def test_a_worker_that_reported_its_end_is_not_lost_when_it_exits_badly():
    """Its end is reported once: a crash while exiting does not count it twice (which could
    end the run before another worker's episodes are stored)."""
    delivered = _read_messages([("done", "ok", None, 1), ("done", "ok", None, 0)], [_Ended(-11), _Ended(0)])
    messages = [m for batch in delivered[:-1] for m in batch]
    assert [m[0] for m in messages] == ["done", "done"] and delivered[-1] is None


def test_a_reader_that_fails_ends_the_run_instead_of_waiting():
    delivered = _read_messages([("done",)], [_Ended(0)])
    assert delivered[-1] is None
    assert delivered[-2][0][:2] == ("lost", "failed") and "reading the workers' results failed" in delivered[-2][0][2]

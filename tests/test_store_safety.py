"""The store used as a new user would: runs whose process died, read-only and mistyped stores,
foreign files, exports to bad places, partial deletes, times without a zone (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import digest, settle
import typer
from rich.console import Console
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

import normlab.cli.common
from normlab.cli import app
from normlab.results import EpisodeResult
from normlab.store import Run, Store, StoreError
from normlab.store import trajectories
from normlab.store.export import export_to_path
from normlab.store.tables import utcnow

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "ipd_tft_vs_random.yaml"  # scripted: no model
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result.stdout


def one_error_line(result) -> str:
    """A user error: exit 2, nothing on stdout, one `error: ...` line on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: "), line
    assert "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr
    return line


def run_scenario(url: str, episodes: int = 2) -> str:
    return ok("run", str(SCENARIO), "--store", url, "--episodes", str(episodes), "--quiet").strip().splitlines()[-1]


def make_run(db: Store, run_id: str, **fields) -> str:
    values = dict(name="handmade", scenario_text="", scenario_hash="0" * 64, config={}, normlab_version="0", seed=0, episodes_planned=1)
    return db.create_run(Run(id=run_id, **{**values, **fields}))


def set_row(path: Path, run_id: str, **values) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"UPDATE run SET {', '.join(f'{k}=?' for k in values)} WHERE id=?", (*values.values(), run_id))
        conn.commit()


def row(path: Path, run_id: str) -> dict:
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM run WHERE id=?", (run_id,)).fetchone())


def sqlite_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setattr(trajectories, "HEARTBEAT_INTERVAL_S", 0.05)


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setattr(normlab.cli.common, "out", Console(width=250, highlight=False, soft_wrap=True))


@pytest.fixture
def db(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


# --- A. liveness: leases, heartbeats, stale runs -----------------------------------------------------


def test_lease_claims_beats_and_releases(db, fast_heartbeat):
    path = db.path
    run_id = make_run(db, "aaaa00000001")
    with db.lease(run_id) as lease:
        first = row(path, run_id)
        assert first["owner"] == f"{socket.gethostname()}:{os.getpid()}"
        deadline = time.monotonic() + 10
        while row(path, run_id)["heartbeat_at"] == first["heartbeat_at"]:
            assert time.monotonic() < deadline, "the heartbeat was never refreshed"
            time.sleep(0.02)
        assert db.effective_status(db.get_run(run_id)) == "running"
        assert not lease.lost
    after = row(path, run_id)
    assert after["owner"] is None
    # nobody plays it any more: a run left as running reads (and is stored) as interrupted
    assert after["status"] == "interrupted"


def test_lease_keeps_a_final_status(db):
    run_id = make_run(db, "aaaa00000002")
    with db.lease(run_id):
        db.set_status(run_id, "finished")
    assert db.get_run(run_id).status == "finished"


def test_second_lease_in_the_same_process_is_refused(db):
    run_id = make_run(db, "aaaa00000003")
    other = Store(db.url)
    with db.lease(run_id):
        with pytest.raises(StoreError, match="already being played in this process"):
            with other.lease(run_id):
                pass
    with other.lease(run_id):  # free again
        pass


def test_lease_of_an_unknown_run(db):
    with pytest.raises(StoreError, match="no run 'nope'"):
        with db.lease("nope"):
            pass


def test_live_owner_on_another_host_is_respected_until_its_heartbeat_is_stale(db):
    run_id = make_run(db, "aaaa00000004")
    set_row(db.path, run_id, owner="elsewhere:4242", heartbeat_at=sqlite_time(utcnow() - timedelta(seconds=3)))
    assert db.effective_status(db.get_run(run_id)) == "running"
    with pytest.raises(StoreError) as refused:
        with db.lease(run_id):
            pass
    assert str(refused.value).startswith(f"run {run_id} is still running in process 4242 on elsewhere (last heartbeat ")
    assert str(refused.value).endswith("s ago); wait for it or stop it first")
    assert row(db.path, run_id)["owner"] == "elsewhere:4242"  # untouched

    set_row(db.path, run_id, heartbeat_at=sqlite_time(utcnow() - timedelta(seconds=trajectories.STALE_AFTER_S + 5)))
    state = db.liveness(db.get_run(run_id))
    assert (state.status, state.stale, state.owner) == ("interrupted", True, "elsewhere:4242")
    with db.lease(run_id):
        assert row(db.path, run_id)["owner"].endswith(f":{os.getpid()}")


def test_stale_owner_that_beats_during_a_claim_keeps_its_run(db):
    """The claim is a compare-and-set: an owner thought dead that beats between our look and
    our UPDATE (e.g. a suspended laptop waking up) is not robbed of its run."""
    run_id = make_run(db, "aaaa00000009")
    set_row(db.path, run_id, owner="elsewhere:7", heartbeat_at=sqlite_time(utcnow() - timedelta(seconds=trajectories.STALE_AFTER_S + 5)))

    @event.listens_for(db.engine, "before_cursor_execute")
    def owner_wakes_up(conn, cursor, statement, *args):
        if statement.startswith("UPDATE run SET owner"):
            set_row(db.path, run_id, heartbeat_at=sqlite_time(utcnow()))

    with pytest.raises(StoreError, match="still running in process 7 on elsewhere"):
        with db.lease(run_id):
            pass
    event.remove(db.engine, "before_cursor_execute", owner_wakes_up)
    assert row(db.path, run_id)["owner"] == "elsewhere:7"


def test_dead_pid_on_this_host_is_stale_at_once(db):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    run_id = make_run(db, "aaaa00000005")
    set_row(db.path, run_id, owner=f"{socket.gethostname()}:{proc.pid}", heartbeat_at=sqlite_time(utcnow()))
    assert db.effective_status(db.get_run(run_id)) == "interrupted"


def test_created_run_is_starting_until_stale(db, monkeypatch):
    run_id = make_run(db, "aaaa00000006")
    assert db.effective_status(db.get_run(run_id)) == "running"
    monkeypatch.setattr(trajectories, "STALE_AFTER_S", 0.05)
    time.sleep(0.1)
    assert db.effective_status(db.get_run(run_id)) == "interrupted"
    # finished runs are never stale
    db.set_status(run_id, "finished")
    assert db.liveness(db.get_run(run_id)).stale is False


def test_heartbeat_survives_store_errors_without_a_traceback(db, fast_heartbeat, monkeypatch):
    run_id = make_run(db, "aaaa00000007")
    failures = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args))
    real_touch, calls = db._touch, []

    def flaky(run: str, owner: str) -> bool:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("UPDATE run", {}, sqlite3.OperationalError("database is locked"))
        return real_touch(run, owner)

    monkeypatch.setattr(db, "_touch", flaky)
    with db.lease(run_id) as lease:
        before = row(db.path, run_id)["heartbeat_at"]
        deadline = time.monotonic() + 10
        while row(db.path, run_id)["heartbeat_at"] == before:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not lease.lost
    assert failures == []


def test_lease_taken_over_is_lost_and_not_released(db, fast_heartbeat):
    run_id = make_run(db, "aaaa00000008")
    with db.lease(run_id) as lease:
        set_row(db.path, run_id, owner="elsewhere:1")
        deadline = time.monotonic() + 10
        while not lease.lost:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert row(db.path, run_id)["owner"] == "elsewhere:1"  # the new owner keeps it


HOLDER = """
import sys, time
from normlab.store import Store
store = Store(sys.argv[1])
with store.lease(sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_run_held_by_a_killed_process_becomes_stale_and_claimable(tmp_path, wide):
    url = f"sqlite:///{tmp_path / 's.db'}"
    db = Store(url)
    run_id = make_run(db, "bbbb00000001", name="held")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, run_id], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert db.effective_status(db.get_run(run_id)) == "running"
        with pytest.raises(StoreError, match=rf"run {run_id} is still running in process {proc.pid} on {socket.gethostname()} \(last heartbeat \d+s ago\); wait for it or stop it first"):
            with db.lease(run_id):
                pass
        (listed,) = json.loads(ok("runs", "ls", "--store", url, "--json"))
        assert (listed["status"], listed["stale"]) == ("running", False)
        # deleting a run another process is playing is refused, and deletes nothing
        line = one_error_line(invoke("runs", "rm", run_id, "--store", url))
        assert f"still running in process {proc.pid}" in line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert db.get_run(run_id).status == "running"  # as stored: nobody could mark it
    (listed,) = json.loads(ok("runs", "ls", "--store", url, "--json"))
    assert (listed["status"], listed["stale"], listed["stored_status"]) == ("interrupted", True, "running")
    assert listed["owner"] == f"{socket.gethostname()}:{proc.pid}"
    table = ok("runs", "ls", "--store", url)
    assert "interrupted (stale)" in table
    shown = json.loads(ok("runs", "show", run_id, "--store", url, "--json"))
    assert (shown["status"], shown["stale"]) == ("interrupted", True)
    shown_table = ok("runs", "show", run_id, "--store", url)
    assert f"interrupted (stale: its process {proc.pid} on {socket.gethostname()} is gone)" in shown_table
    assert f"normlab resume {run_id} --store {url}" in shown_table
    with db.lease(run_id):
        assert row(db.path, run_id)["owner"] == f"{socket.gethostname()}:{os.getpid()}"


CLAIMER = """
import sys, time
from pathlib import Path
from normlab.store import Store, StoreError
store = Store(sys.argv[1])
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
try:
    with store.lease(sys.argv[2]):
        print("won", flush=True)
        time.sleep(3)
except StoreError as exc:
    print("lost", exc, flush=True)
"""


def test_only_one_of_several_processes_claims_a_run(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_id = make_run(Store(url), "cccc00000001")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, url, run_id, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    time.sleep(1.5)  # let them import and wait at the line
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = [out.split()[0] for out, _ in outputs]
    assert sorted(results) == ["lost", "lost", "lost", "won"], outputs
    assert all("still running in process" in out or out.startswith("won") for out, _ in outputs)


# --- A. in-memory stores ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_store_is_refused(url):
    with pytest.raises(StoreError, match="in-memory store would be lost at exit"):
        Store(url)
    for args in (("runs", "ls"), ("run", str(SCENARIO), "--episodes", "1")):
        line = one_error_line(invoke(*args, "--store", url))
        assert line == "error: an in-memory store would be lost at exit; give a file, e.g. sqlite:///runs/normlab.db"


# --- B. reading commands create and change nothing ---------------------------------------------------


def test_runs_ls_on_a_read_only_store(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder / 's.db'}"
    run_id = run_scenario(url)
    store_file = folder / "s.db"
    settle(store_file)
    before, mtime = digest(store_file), store_file.stat().st_mtime_ns
    store_file.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert [r["id"] for r in json.loads(ok("runs", "ls", "--store", url, "--json"))] == [run_id]
        assert json.loads(ok("runs", "show", run_id, "--store", url, "--json"))["episodes"] == 2
        assert len(ok("runs", "export", run_id, "--store", url).splitlines()) == 2 * 10 * 2
        # opened read-only: even root (whom chmod does not stop) cannot write through it
        reader = Store.open_existing(url)
        with pytest.raises(OperationalError, match="readonly"):
            with reader.engine.begin() as conn:
                conn.execute(text("UPDATE run SET name = 'x'"))
        reader.close()
    finally:
        folder.chmod(0o755)
        store_file.chmod(0o644)
    assert digest(store_file) == before and store_file.stat().st_mtime_ns == mtime
    assert {p.name for p in folder.iterdir()} <= {"s.db", "s.db-wal", "s.db-shm"}


def test_reading_an_older_store_migrates_nothing(tmp_path, wide):
    """A store made before the liveness columns: readers show it as it is (no ALTER TABLE);
    the next writer adds the columns."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    run_id = run_scenario(url)
    with closing(sqlite3.connect(path)) as conn:
        for column in ("owner", "heartbeat_at", "provenance"):
            conn.execute(f"ALTER TABLE run DROP COLUMN {column}")
        conn.commit()
    settle(path)
    before = digest(path)
    (listed,) = json.loads(ok("runs", "ls", "--store", url, "--json"))
    assert (listed["id"], listed["status"], listed["owner"]) == (run_id, "finished", None)
    assert json.loads(ok("runs", "show", run_id, "--store", url, "--json"))["episodes"] == 2
    assert digest(path) == before
    Store(url).close()
    with closing(sqlite3.connect(path)) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(run)")}
    assert {"owner", "heartbeat_at", "provenance"} <= columns


@pytest.mark.parametrize("command", [("runs", "ls"), ("runs", "show", "abc"), ("runs", "export", "abc"), ("runs", "rm", "abc")])
def test_a_mistyped_store_path_creates_nothing(tmp_path, command):
    missing = tmp_path / "typo" / "deeper" / "normlab.db"
    line = one_error_line(invoke(*command, "--store", f"sqlite:///{missing}"))
    assert line == f"error: no store at {missing} (run a scenario first, or give --store)"
    assert not (tmp_path / "typo").exists()


def test_default_store_missing_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("NORMLAB_STORE")
    monkeypatch.chdir(tmp_path)
    line = one_error_line(invoke("runs", "ls"))
    assert "no store at runs/normlab.db" in line
    assert list(tmp_path.iterdir()) == []


def foreign_file(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    return path


@pytest.mark.parametrize("command", [("runs", "ls"), ("run", str(SCENARIO), "--episodes", "1")])
def test_foreign_sqlite_file_is_refused_untouched(tmp_path, command):
    path = foreign_file(tmp_path / "other.db")
    before = digest(path)
    line = one_error_line(invoke(*command, "--store", f"sqlite:///{path}"))
    assert line == f"error: {path} is not a normlab store (it holds tables t); give another store"
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_foreign_run_table_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE run (id TEXT, started TEXT)")
    before = digest(path)
    with pytest.raises(StoreError, match="is not a normlab store"):
        Store(f"sqlite:///{path}")
    assert digest(path) == before


@pytest.mark.parametrize("command", [("runs", "ls"), ("run", str(SCENARIO), "--episodes", "1")])
def test_text_file_as_store_is_one_line(tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 20)
    line = one_error_line(invoke(*command, "--store", f"sqlite:///{path}"))
    assert line == f"error: {path} is not a SQLite database"
    assert path.read_text() == "not a database\n" * 20


def test_damaged_store_is_one_line_without_a_link(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)  # the header, then garbage
    for command in (("runs", "ls"), ("run", str(SCENARIO), "--episodes", "1")):
        line = one_error_line(invoke(*command, "--store", f"sqlite:///{path}"))
        assert "not a database" in line or "malformed" in line or "not a SQLite database" in line, line


def test_database_errors_reaching_the_cli_are_one_line(capsys):
    from normlab.cli.common import user_errors

    with pytest.raises(typer.Exit) as exited:
        with user_errors():
            raise OperationalError("SELECT *\nFROM run", {}, sqlite3.OperationalError("database is locked"))
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err == "error: store error: database is locked\n"


def test_tilde_is_expanded_in_sqlite_paths(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    run_id = run_scenario("sqlite:///~/stores/x.db", episodes=1)
    assert (home / "stores" / "x.db").is_file()
    assert list(work.iterdir()) == []  # no folder named "~"
    assert [r["id"] for r in json.loads(ok("runs", "ls", "--store", "sqlite:///~/stores/x.db", "--json"))] == [run_id]


def test_writer_on_a_read_only_file_is_one_line(tmp_path):
    if IS_ROOT:
        pytest.skip("root writes to read-only files")
    path = tmp_path / "s.db"
    run_scenario(f"sqlite:///{path}")
    path.chmod(0o444)
    try:
        one_error_line(invoke("run", str(SCENARIO), "--episodes", "1", "--store", f"sqlite:///{path}"))
    finally:
        path.chmod(0o644)


# --- C. export -o -----------------------------------------------------------------------------------


@pytest.fixture
def exported_run(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    return url, run_scenario(url)


def test_export_to_a_missing_folder(exported_run, tmp_path):
    url, run_id = exported_run
    target = tmp_path / "nope" / "steps.jsonl"
    line = one_error_line(invoke("runs", "export", run_id, "--store", url, "-o", str(target)))
    assert line == f"error: cannot write the export to {target}: folder {target.parent} does not exist"
    assert not target.parent.exists()


def test_export_to_a_folder(exported_run, tmp_path):
    url, run_id = exported_run
    folder = tmp_path / "out"
    folder.mkdir()
    line = one_error_line(invoke("runs", "export", run_id, "--store", url, "-o", str(folder)))
    assert "it is a folder" in line
    assert list(folder.iterdir()) == []
    assert not any("partial" in p.name for p in tmp_path.iterdir())


def test_export_to_a_read_only_folder(exported_run, tmp_path):
    if IS_ROOT:
        pytest.skip("root writes to read-only folders")
    url, run_id = exported_run
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = one_error_line(invoke("runs", "export", run_id, "--store", url, "-o", str(folder / "x.jsonl")))
        assert "Permission denied" in line
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_export_that_fails_midway_leaves_nothing(exported_run, tmp_path, monkeypatch):
    url, run_id = exported_run
    target = tmp_path / "steps.jsonl"
    target.write_text("the previous export\n")
    store = Store(url)
    real_iter = store.iter_steps

    def failing(run: str):
        for i, step in enumerate(real_iter(run)):
            if i == 5:
                raise OSError(28, "No space left on device")
            yield step

    monkeypatch.setattr(store, "iter_steps", failing)
    with pytest.raises(StoreError, match="No space left on device"):
        export_to_path(store, run_id, "jsonl", target)
    assert target.read_text() == "the previous export\n"
    assert not any("partial" in p.name for p in tmp_path.iterdir())


def test_export_keeps_a_normal_file_mode(exported_run, tmp_path):
    url, run_id = exported_run
    target = tmp_path / "steps.csv"
    count = export_to_path(Store.open_existing(url), run_id, "csv", target)
    assert count == 2 * 10 * 2 and len(target.read_text().splitlines()) == count + 1
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_export_refuses_to_overwrite_the_store(exported_run):
    url, run_id = exported_run
    path = url.removeprefix("sqlite:///")
    settle(Path(path))
    before = digest(Path(path))
    line = one_error_line(invoke("runs", "export", run_id, "--store", url, "-o", path))
    assert "that is the store itself" in line
    assert digest(Path(path)) == before


# --- E. rm is all or nothing -------------------------------------------------------------------------


def test_rm_with_an_unknown_id_deletes_nothing(store_url):
    first, second = run_scenario(store_url, 1), run_scenario(store_url, 1)
    line = one_error_line(invoke("runs", "rm", first, "nope", second, "--store", store_url))
    assert line.startswith("error: no run 'nope'")
    assert sorted(r["id"] for r in json.loads(ok("runs", "ls", "--store", store_url, "--json"))) == sorted([first, second])


def test_rm_of_the_same_run_twice(store_url):
    first, second = run_scenario(store_url, 1), run_scenario(store_url, 1)
    out = ok("runs", "rm", first, first[:6], "--store", store_url)
    assert out.splitlines() == [f"deleted run {first}"]
    assert [r["id"] for r in json.loads(ok("runs", "ls", "--store", store_url, "--json"))] == [second]


def test_delete_runs_is_one_transaction(db):
    keep, a, b = (make_run(db, f"dddd0000000{i}") for i in range(3))

    @event.listens_for(db.engine, "before_cursor_execute")
    def fail_on_run_delete(conn, cursor, statement, *args):
        if statement.startswith("DELETE FROM run "):
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        db.delete_runs([a, b])
    event.remove(db.engine, "before_cursor_execute", fail_on_run_delete)
    assert {r.id for r, _ in db.list_runs()} == {keep, a, b}


# --- F. times carry their zone -----------------------------------------------------------------------


@pytest.fixture
def local_zone(monkeypatch):
    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_runs_ls_shows_the_zone(store_url, local_zone, wide):
    run_id = run_scenario(store_url, 1)
    (listed,) = json.loads(ok("runs", "ls", "--store", store_url, "--json"))
    created = datetime.fromisoformat(listed["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 300

    local_zone("UTC0")
    assert f"{created:%Y-%m-%d %H:%M} UTC" in ok("runs", "ls", "--store", store_url)
    local_zone("XYZ-5:30")  # POSIX: UTC+05:30
    shifted = created + timedelta(hours=5, minutes=30)
    table = ok("runs", "ls", "--store", store_url)
    assert f"{shifted:%Y-%m-%d %H:%M} +05:30" in table, table
    assert f"created {shifted:%Y-%m-%d %H:%M} +05:30" in ok("runs", "show", run_id, "--store", store_url)
    assert json.loads(ok("runs", "show", run_id, "--store", store_url, "--json"))["finished_at"].endswith("+00:00")


# --- G. idempotent writes ----------------------------------------------------------------------------


def test_cache_reply_is_an_upsert(db):
    """Two processes may cache the same request at once: the second insert must not fail."""
    db.cache_reply("k1", "mock/x", {"content": "first"})
    db.cache_reply("k1", "mock/x", {"content": "second"})
    assert db.cached_reply("k1") == {"content": "first"}

    @event.listens_for(db.engine, "before_cursor_execute")
    def another_writer_first(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO response_cache"):
            with closing(sqlite3.connect(db.path)) as other:
                other.execute(
                    "INSERT OR IGNORE INTO response_cache (key, model, reply, created_at) VALUES ('k2', 'm', '{\"content\": \"other\"}', '2026-01-01')"
                )
                other.commit()

    db.cache_reply("k2", "mock/x", {"content": "mine"})
    assert db.cached_reply("k2") == {"content": "other"}


def test_episode_written_twice_in_one_batch_is_stored_once(db):
    run_id = make_run(db, "eeee00000001")
    now = datetime.now(timezone.utc)
    step = {"t": 0, "agent": "a", "observation": "1", "action": "0", "reward": 1.0, "terminated": True, "truncated": False, "info": "{}"}

    def result(index: int) -> EpisodeResult:
        return EpisodeResult(
            index=index, seed=index, steps=[step], returns={"a": 1.0}, metrics={}, started_at=now, finished_at=now, model_calls=[], num_steps=1
        )

    ids = db.write_episodes(run_id, [result(0), result(0), result(1)])
    assert ids[0] == ids[1] != ids[2]
    assert db.finished_indices(run_id) == {0, 1}
    with db.engine.connect() as conn:
        assert conn.execute(text("select count(*) from step")).scalar() == 2

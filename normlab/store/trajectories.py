"""Reading and writing runs. Episodes are written whole, in one transaction each.

A run being played is leased by its process (`Store.lease`): the run row names the owner
("host:pid") and a heartbeat the owner refreshes, so other processes can tell a run that is
playing from one whose process died, and two processes never play the same run.

Many processes may write to one store at once. The schema carries a version (Alembic's
`alembic_version` table, see `normlab.store.migrate`): a new store is made at this normlab's
schema and stamped, a store stamped with an older schema must be migrated before anything
writes to it (`normlab store migrate`), and one made before versions existed is brought up
to date and stamped on its first writing open. Schema changes run under the database's
write lock, so two processes opening a new store at once do not both create it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, MetaData, PrimaryKeyConstraint, String, Table, case, delete, func, insert, null, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel

from normlab.results import EpisodeResult
from normlab.store.engine import StoreError, create_store_engine, db_error_message, is_sqlite_file, resolve_url, sqlite_path
from normlab.store.tables import (
    SCHEMA_HEAD,
    SCHEMA_REVISIONS,
    Episode,
    Grade,
    ModelCall,
    ResponseCache,
    Run,
    Step,
    as_utc,
    table_of,
    utcnow,
)

_STEP = table_of(Step)
_EPISODE = table_of(Episode)
_MODEL_CALL = table_of(ModelCall)
_RUN = table_of(Run)
_GRADE = table_of(Grade)
_CACHE = table_of(ResponseCache)
# Alembic's own table, as Alembic makes it: one row, the revision of the store's schema
_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
# the step columns `_insert_steps` writes, in order
_STEP_COLUMNS = ["episode_id", "t", "agent", "observation", "action", "reward", "terminated", "truncated", "info", "phase"]
# calls from the event loop (`acached_reply`, `acache_reply`) run on a few threads of the
# store's own, not on asyncio's default executor, where model providers do blocking work
_ASYNC_THREADS = 4

# The lease owner refreshes its heartbeat this often; a heartbeat older than STALE_AFTER_S means
# the owner is gone (or hung). Module constants so tests can shorten them.
HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 30.0

# Columns no normlab store has ever been without: a `run` table lacking them is someone else's.
NORMLAB_RUN_COLUMNS = frozenset({"id", "name", "scenario_hash", "config", "status", "seed", "episodes_planned"})

# Runs leased by this process, so two Store objects in one process cannot both claim a run
# (the owner string, host:pid, is the same for both).
_HELD: set[tuple[str, str]] = set()
_HELD_LOCK = threading.Lock()


def _stored_version(conn: Any, tables: set[str]) -> str | None:
    """The schema revision a store is stamped with; None for a store made before versions
    (or a new one). Several rows (Alembic branches) read as one unknown version."""
    if _VERSION.name not in tables:
        return None
    versions = sorted(conn.execute(select(_VERSION.c.version_num)).scalars())
    if not versions:
        return None
    return versions[0] if len(versions) == 1 else "+".join(versions)


def _stamp(conn: Any) -> None:
    """Record that the store holds this normlab's schema, as `alembic stamp head` would."""
    _VERSION.create(conn, checkfirst=True)
    conn.execute(delete(_VERSION))
    conn.execute(insert(_VERSION).values(version_num=SCHEMA_HEAD))


def new_run_id() -> str:
    return secrets.token_hex(6)


def this_process() -> str:
    """The lease owner name of the calling process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) would stop the process: trust the heartbeat
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class Liveness:
    """Whether a run is being played: `status` is what to show (a running run whose process is
    gone shows as interrupted, and is `stale`)."""

    status: str
    stale: bool
    owner: str | None
    heartbeat_age_s: float | None

    @property
    def live(self) -> bool:
        return self.status == "running"

    @property
    def host(self) -> str | None:
        return self.owner.rpartition(":")[0] if self.owner else None

    @property
    def pid(self) -> str | None:
        return self.owner.rpartition(":")[2] if self.owner else None


def _ledger(conn: Any, run_id: str) -> tuple[int, float]:
    row = conn.execute(select(_RUN.c.spent_tokens, _RUN.c.spent_usd).where(_RUN.c.id == run_id)).first()
    return (int(row.spent_tokens or 0), float(row.spent_usd or 0.0)) if row is not None else (0, 0.0)


def _heartbeat_age(heartbeat_at: datetime | None, now: datetime) -> float | None:
    stamped = as_utc(heartbeat_at)
    return None if stamped is None else (now - stamped).total_seconds()


def _holder_alive(owner: str | None, heartbeat_at: datetime | None, now: datetime) -> bool:
    """An owner is alive while its heartbeat is fresh and, on this host, its process exists
    (so a killed run is seen at once here, and within STALE_AFTER_S from other hosts)."""
    if not owner:
        return False
    age = _heartbeat_age(heartbeat_at, now)
    if age is None or age > STALE_AFTER_S:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    return True


def liveness(run: Run, now: datetime | None = None) -> Liveness:
    now = now or utcnow()
    owner, heartbeat_at = getattr(run, "owner", None), getattr(run, "heartbeat_at", None)
    age = _heartbeat_age(heartbeat_at, now)
    if run.status != "running":
        stale = False
    elif owner:
        stale = not _holder_alive(owner, heartbeat_at, now)
    else:
        # created but not leased yet: starting for STALE_AFTER_S (create_run stamps the heartbeat)
        stale = age is None or age > STALE_AFTER_S
    return Liveness("interrupted" if stale else run.status, stale, owner, age)


def _busy_message(run_id: str, owner: str, age: float | None) -> str:
    host, _, pid = owner.rpartition(":")
    ago = f"{age:.0f}s ago" if age is not None else "never"
    return f"run {run_id} is still running in process {pid} on {host} (last heartbeat {ago}); wait for it or stop it first"


class Lease:
    """A claim on a run by this process, kept fresh by a daemon thread until released."""

    def __init__(self, store: Store, run_id: str, owner: str):
        self.store, self.run_id, self.owner = store, run_id, owner
        # set when another process took the run over (this one looked dead, e.g. it was suspended)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"normlab-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                if not self.store._touch(self.run_id, self.owner):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a busy or vanished store: try again next beat, never a thread traceback
                continue

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Store:
    """The trajectory store at one SQLAlchemy URL.

    `create=False` refuses a store that does not exist yet instead of making it, and
    `read_only=True` opens it read-only and runs no DDL (for commands that only read). Any
    database that holds tables but is not a normlab store is refused before anything is written.

    A writing open refuses a store whose schema is older than this normlab's (run
    `normlab store migrate`) or newer; `upgrade=True` migrates an older one instead (what
    `normlab store migrate` does). Reading opens read any version as it is. `schema_before`
    and `schema` are the store's schema revision when opened and now (None: not versioned).
    """

    def __init__(
        self,
        url: str | None = None,
        engine: Engine | None = None,
        *,
        create: bool = True,
        read_only: bool = False,
        upgrade: bool = False,
    ):
        self.url = resolve_url(url)
        self.read_only = read_only
        self.schema_before: str | None = None
        self.schema: str | None = None
        self._step_sql: tuple[str, bool] | None = None
        self._columns: dict[str, set[str]] = {}
        self._async_pool: ThreadPoolExecutor | None = None
        self._async_lock = threading.Lock()
        self.path = sqlite_path(self.url) if engine is None else None
        if self.path is not None:
            self._check_file(self.path, create)
        self.engine = engine or create_store_engine(self.url, read_only=read_only)
        try:
            self._open(create, upgrade)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open store {self.url}: {db_error_message(exc)}") from None
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def open_existing(cls, url: str | None = None) -> Store:
        """An existing store, read-only: creates and changes nothing."""
        return cls(url, create=False, read_only=True)

    def _check_file(self, path: Path, create: bool) -> None:
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a store file (e.g. {path / 'normlab.db'})")
        if path.exists():
            try:
                ours = is_sqlite_file(path)
            except OSError as exc:
                raise StoreError(f"cannot read store {path}: {exc.strerror or exc}") from None
            if not ours:
                raise StoreError(f"{path} is not a SQLite database")
            return
        if not create:
            raise StoreError(f"no store at {path} (run a scenario first, or give --store)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of store {self.url!r}: {exc}") from None

    def _open(self, create: bool, upgrade: bool) -> None:
        inspector = sa_inspect(self.engine)
        tables = set(inspector.get_table_names())
        ours = {t.name for t in SQLModel.metadata.sorted_tables}
        if "run" in tables:
            run_columns = {c["name"] for c in inspector.get_columns("run")}
            if not NORMLAB_RUN_COLUMNS <= run_columns:
                raise StoreError(f"{self._where()} is not a normlab store (its run table is not normlab's); give another store")
        elif tables - {_VERSION.name} and self.engine.dialect.name == "sqlite":
            # a SQLite file is one document: tables without a run table are someone else's file
            listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(f"{self._where()} is not a normlab store (it holds tables {listed}); give another store")
        if not create and "run" not in tables:
            raise StoreError(f"no normlab store at {self._where()} (run a scenario first, or give --store)")
        with self.engine.connect() as conn:
            self.schema = self.schema_before = _stored_version(conn, tables)
        if self.read_only:
            # read as it is, whatever its version: reading changes nothing (see _select)
            self._columns = {name: {c["name"] for c in inspector.get_columns(name)} for name in ours & tables}
            self._check_columns(None)
            return
        if not upgrade:
            self._check_version(self.schema_before, tables)
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                # WAL is a property of the file, so switching it on once is enough
                if str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() != "wal":
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        self._columns = {name: {c["name"] for c in inspector.get_columns(name)} for name in ours & tables}
        if self.schema_before == SCHEMA_HEAD and ours <= tables and not self._missing_columns():
            return  # the common case: an up-to-date store, opened without taking any lock
        with self._schema_lock() as conn:
            # look again under the lock: another process may have just made or migrated it
            inspector = sa_inspect(conn)
            tables = set(inspector.get_table_names())
            version = _stored_version(conn, tables)
            if upgrade and version is not None and version != SCHEMA_HEAD:
                self._check_version(version, tables, upgrading=True)
                from normlab.store.migrate import upgrade_connection

                upgrade_connection(conn)
                inspector = sa_inspect(conn)
                tables = set(inspector.get_table_names())
                version = _stored_version(conn, tables)
            self._check_version(version, tables)
            if not ours <= tables:  # DDL only for what is missing (all of it, for a new store)
                SQLModel.metadata.create_all(conn)
                inspector = sa_inspect(conn)
                tables = set(inspector.get_table_names())
            self._columns = {name: {c["name"] for c in inspector.get_columns(name)} for name in ours & tables}
            self._check_columns(conn, inspector)
            if version != SCHEMA_HEAD:
                _stamp(conn)
        self.schema = SCHEMA_HEAD

    def _check_version(self, version: str | None, tables: set[str], upgrading: bool = False) -> None:
        """Refuse to write to a store of another schema: an older one must be migrated first
        (unless `upgrading`), a newer one needs a newer normlab. A store made before schema
        versions (no version, but normlab's tables) is brought up to date by `_open`."""
        if version is None or version == SCHEMA_HEAD:
            return
        if "run" not in tables:  # someone else's Alembic-managed database
            raise StoreError(f"{self._where()} is not a normlab store (its schema version is {version}); give another store")
        if version in SCHEMA_REVISIONS:
            if upgrading:
                return
            raise StoreError(
                f"store {self.url} was made by an older normlab (schema {version}, this normlab needs {SCHEMA_HEAD}): "
                f"run `normlab store migrate --store {self.url}`"
            )
        raise StoreError(
            f"store {self.url} was made by a newer normlab (schema {version}; this normlab knows schemas up to "
            f"{SCHEMA_HEAD}): upgrade normlab to write to it"
        )

    @contextmanager
    def _schema_lock(self) -> Iterator[Any]:
        """A connection in a transaction that holds the database's write lock, committed at the
        end: schema changes by two processes then run one after the other, never interleaved."""
        with self.engine.connect() as conn:
            dialect = self.engine.dialect.name
            if dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits out other writers (busy_timeout)
            elif dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7331000013)")  # normlab's schema lock
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _where(self) -> str:
        return str(self.path) if self.path is not None else self.url

    def _missing_columns(self) -> list[tuple[Table, Column]]:
        return [
            (table, column)
            for table in SQLModel.metadata.sorted_tables
            if table.name in self._columns
            for column in table.columns
            if column.name not in self._columns[table.name]
        ]

    def _check_columns(self, conn: Any, inspector: Any = None) -> None:
        """Bring a store made by an older normlab up to date: new columns are always nullable,
        so adding them (and their indexes) is the whole change. With no `conn` (a read-only
        store) the store is read as it is (see _select)."""
        missing = self._missing_columns()
        for table, column in missing:
            if not column.nullable:
                raise StoreError(f"store {self.url} lacks column {table.name}.{column.name}; it was made by an incompatible normlab")
        if conn is None:
            return
        for table, column in missing:
            kind = column.type.compile(dialect=self.engine.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
            self._columns[table.name].add(column.name)
        for table in SQLModel.metadata.sorted_tables:
            if table.name not in self._columns or not table.indexes:
                continue
            present = {ix["name"] for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in present:
                    index.create(conn)

    def _select(self, table: Table) -> Any:
        """SELECT of the table's columns: those this store lacks (an older store opened
        read-only lacks the newest ones) read as NULL."""
        present = self._columns.get(table.name)
        return select(*[c if present is None or c.name in present else null().label(c.name) for c in table.columns])

    def close(self) -> None:
        if self._async_pool is not None:
            self._async_pool.shutdown(wait=True)
            self._async_pool = None
        self.engine.dispose()

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        """Run a blocking store call off the event loop, on the store's own threads."""
        with self._async_lock:
            if self._async_pool is None:
                self._async_pool = ThreadPoolExecutor(max_workers=_ASYNC_THREADS, thread_name_prefix="normlab-store")
            pool = self._async_pool
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # --- runs ----------------------------------------------------------------------------

    def create_run(self, run: Run) -> str:
        if run.heartbeat_at is None:
            # no owner until a lease claims it, but reads as starting (running) meanwhile
            run.heartbeat_at = utcnow()
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(run)
            session.commit()
        return run.id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow(), "error": error}
        if status in ("finished", "failed", "budget_exhausted"):
            values["finished_at"] = utcnow()
        with self.engine.begin() as conn:
            conn.execute(update(_RUN).where(_RUN.c.id == run_id).values(**values))

    def get_run(self, run_ref: str) -> Run:
        """A run by id or by a unique prefix of its id."""
        if not run_ref:
            raise StoreError("a run id (or a prefix of one) must not be empty")
        with self.engine.connect() as conn:
            row = conn.execute(self._select(_RUN).where(_RUN.c.id == run_ref)).first()
            if row is None:
                matches = conn.execute(self._select(_RUN).where(_RUN.c.id.startswith(run_ref, autoescape=True)).limit(2)).all()
                if len(matches) > 1:
                    raise StoreError(f"run id {run_ref!r} is ambiguous; give more characters")
                row = matches[0] if matches else None
        if row is None:
            raise StoreError(f"no run {run_ref!r} in {self.url} (see `normlab runs ls`)")
        return Run(**row._mapping)

    def list_runs(self, limit: int = 50) -> list[tuple[Run, int]]:
        """Newest runs first, each with the number of episodes stored."""
        counts = select(_EPISODE.c.run_id, func.count().label("n")).group_by(_EPISODE.c.run_id).subquery()
        stmt = (
            self._select(_RUN)
            .add_columns(func.coalesce(counts.c.n, 0).label("stored_episodes"))
            .select_from(_RUN.outerjoin(counts, counts.c.run_id == _RUN.c.id))
            .order_by(_RUN.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        result = []
        for row in rows:
            values = dict(row._mapping)
            n = values.pop("stored_episodes")
            result.append((Run(**values), int(n)))
        return result

    def liveness(self, run: Run) -> Liveness:
        """Whether `run` is being played right now; see `Liveness`."""
        return liveness(run)

    def effective_status(self, run: Run) -> str:
        """The status to show: `interrupted` for a run stored as running whose process is gone."""
        return liveness(run).status

    def ensure_not_live(self, run: Run) -> None:
        """Raise StoreError if another process is playing the run (e.g. before deleting it)."""
        state = liveness(run)
        if state.live and state.owner and state.owner != this_process():
            raise StoreError(_busy_message(run.id, state.owner, state.heartbeat_age_s))

    @contextmanager
    def lease(self, run_id: str) -> Iterator[Lease]:
        """Claim a run for this process while the block runs: `with store.lease(run_id):`.

        Raises StoreError if a live process holds the run. While held, a daemon thread
        refreshes the heartbeat; on exit the claim is released, and a run still marked
        running is marked interrupted (nobody plays it any more).
        """
        me = this_process()
        key = (str(self.path.resolve()) if self.path is not None else str(self.engine.url), run_id)
        with _HELD_LOCK:
            if key in _HELD:
                raise StoreError(f"run {run_id} is already being played in this process")
            _HELD.add(key)
        try:
            self._claim(run_id, me)
            held = Lease(self, run_id, me)
            held.start()
            try:
                yield held
            finally:
                held.stop()
                self._release(run_id, me)
        finally:
            with _HELD_LOCK:
                _HELD.discard(key)

    def _claim(self, run_id: str, me: str) -> None:
        for _ in range(5):
            with self.engine.connect() as conn:
                row = conn.execute(select(_RUN.c.owner, _RUN.c.heartbeat_at).where(_RUN.c.id == run_id)).first()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.url} (see `normlab runs ls`)")
            now = utcnow()
            if row.owner != me and _holder_alive(row.owner, row.heartbeat_at, now):
                raise StoreError(_busy_message(run_id, row.owner, _heartbeat_age(row.heartbeat_at, now)))
            # compare-and-set on what was read: if another process claimed the run in between
            # (or its stale owner beat again), no row matches and we look again
            if row.owner is None:
                still_free = _RUN.c.owner.is_(None)
            elif row.owner == me or row.heartbeat_at is None:
                still_free = _RUN.c.owner == row.owner
            else:
                still_free = (_RUN.c.owner == row.owner) & (
                    _RUN.c.heartbeat_at.is_(None)
                    # a fresh heartbeat of a dead pid on this host cannot change any more
                    | (_RUN.c.heartbeat_at == row.heartbeat_at)
                    | (_RUN.c.heartbeat_at < now - timedelta(seconds=STALE_AFTER_S))
                )
            try:
                with self.engine.begin() as conn:
                    claimed = conn.execute(
                        update(_RUN).where(_RUN.c.id == run_id, still_free).values(owner=me, heartbeat_at=now)
                    ).rowcount
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot claim run {run_id} in {self.url}: {db_error_message(exc)}") from None
            if claimed == 1:
                return
        raise StoreError(f"run {run_id} is being claimed by another process; try again")

    def _touch(self, run_id: str, owner: str) -> bool:
        """Refresh the heartbeat; False if the run is no longer ours."""
        with self.engine.begin() as conn:
            return conn.execute(
                update(_RUN).where(_RUN.c.id == run_id, _RUN.c.owner == owner).values(heartbeat_at=utcnow())
            ).rowcount == 1

    def _release(self, run_id: str, owner: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(_RUN)
                    .where(_RUN.c.id == run_id, _RUN.c.owner == owner)
                    .values(owner=None, status=case((_RUN.c.status == "running", "interrupted"), else_=_RUN.c.status))
                )
        except SQLAlchemyError:
            pass  # the claim then goes stale by itself: its process is about to be gone

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything under it, children first (works without FK cascades)."""
        self.delete_runs([run_id])

    def delete_runs(self, run_ids: list[str]) -> None:
        """Delete runs and everything under them in one transaction: all of them or none."""
        if not run_ids:
            return
        episode_ids = select(_EPISODE.c.id).where(_EPISODE.c.run_id.in_(run_ids))
        step_ids = select(_STEP.c.id).where(_STEP.c.episode_id.in_(episode_ids))
        with self.engine.begin() as conn:
            conn.execute(delete(_GRADE).where(_GRADE.c.episode_id.in_(episode_ids)))
            conn.execute(delete(_MODEL_CALL).where(_MODEL_CALL.c.run_id.in_(run_ids) | _MODEL_CALL.c.step_id.in_(step_ids)))
            conn.execute(delete(_STEP).where(_STEP.c.episode_id.in_(episode_ids)))
            conn.execute(delete(_EPISODE).where(_EPISODE.c.run_id.in_(run_ids)))
            conn.execute(delete(_RUN).where(_RUN.c.id.in_(run_ids)))

    # --- episodes ------------------------------------------------------------------------

    def write_episode(self, run_id: str, result: EpisodeResult) -> int:
        """Write an episode, its steps and its model calls in one transaction."""
        return self.write_episodes(run_id, [result])[0]

    def write_episodes(self, run_id: str, results: list[EpisodeResult]) -> list[int]:
        """Write finished episodes in one transaction: all of them or none, never part of one.

        Grouping the episodes that finished while the last write ran saves a commit each.
        An episode already stored (same run and index) is kept as it is and not written again.
        """
        with self.engine.begin() as conn:
            return [self._write_one(conn, run_id, result) for result in results]

    def _write_one(self, conn: Any, run_id: str, result: EpisodeResult) -> int:
        values = {
            "run_id": run_id,
            "index": result.index,
            "seed": result.seed,
            "status": result.status,
            "returns": result.returns,
            "num_steps": result.num_steps,
            "metrics": result.metrics,
            "agent_state": result.agent_state,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
        }
        agent_ids = getattr(result, "agent_ids", None)
        if agent_ids is not None:  # else SQL NULL (a JSON column would store None as 'null')
            values["agent_ids"] = agent_ids
        if getattr(result, "error", None):
            values["error"] = result.error
        if getattr(result, "variant", None) is not None:
            values["variant"] = result.variant
        if getattr(result, "trial", None) is not None:
            values["trial"] = result.trial
        inserted = self._insert_new(conn, _EPISODE, values, ["run_id", "index"])
        if inserted is None and result.status == "finished" and self._drop_failed(conn, run_id, result.index):
            # a failed episode played again (resume): the finished one takes its place
            inserted = self._insert_new(conn, _EPISODE, values, ["run_id", "index"])
        if inserted is None:
            # already stored, whole (episodes are written in one transaction): the same episode
            # (same seed: episodes are pure functions of it) keeps that copy; another is an error
            stored_id, stored_seed = conn.execute(
                select(_EPISODE.c.id, _EPISODE.c.seed).where(_EPISODE.c.run_id == run_id, _EPISODE.c.index == result.index)
            ).one()
            if stored_seed != result.seed:
                raise StoreError(
                    f"run {run_id} already has episode {result.index} with seed {stored_seed}; "
                    f"a different episode {result.index} (seed {result.seed}) is not stored over it"
                )
            return int(stored_id)
        episode_id = inserted.inserted_primary_key[0]
        if result.steps:
            self._insert_steps(conn, episode_id, result.steps)
        if result.model_calls:
            step_ids = {
                (t, agent): sid
                for sid, t, agent in conn.execute(
                    select(_STEP.c.id, _STEP.c.t, _STEP.c.agent).where(_STEP.c.episode_id == episode_id)
                )
            }
            rows = []
            for call in result.model_calls:
                step_id = step_ids.get((call.get("t"), call.get("agent")))
                rows.append({**call, "run_id": run_id, "episode_id": episode_id, "step_id": step_id})
            conn.execute(insert(_MODEL_CALL), rows)
        return int(episode_id)

    def _drop_failed(self, conn: Any, run_id: str, index: int) -> bool:
        """Remove a stored failed episode (its model calls stay with the run, for accounting);
        False if the stored episode is not a failed one."""
        row = conn.execute(
            select(_EPISODE.c.id).where(_EPISODE.c.run_id == run_id, _EPISODE.c.index == index, _EPISODE.c.status == "failed")
        ).first()
        if row is None:
            return False
        conn.execute(update(_MODEL_CALL).where(_MODEL_CALL.c.episode_id == row.id).values(episode_id=None, step_id=None))
        conn.execute(delete(_STEP).where(_STEP.c.episode_id == row.id))
        conn.execute(delete(_EPISODE).where(_EPISODE.c.id == row.id))
        return True

    def _insert_new(self, conn: Any, table: Table, values: dict[str, Any], keys: list[str]) -> Any:
        """INSERT unless a row with the same unique `keys` exists; the result, or None if one did.
        One atomic statement where the dialect has ON CONFLICT, so concurrent writers cannot race."""
        name = self.engine.dialect.name
        if name in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            dialect = sqlite if name == "sqlite" else postgresql
            result = conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))
            return result if result.rowcount == 1 else None
        if conn.execute(select(*[table.c[k] for k in keys]).where(*[table.c[k] == values[k] for k in keys])).first() is not None:
            return None
        return conn.execute(insert(table).values(**values))

    def _insert_steps(self, conn: Any, episode_id: int, steps: list[dict[str, Any]]) -> None:
        """One executemany of pre-encoded rows straight to the driver.

        Steps are the bulk of every run; going around SQLAlchemy's per-value type processing
        (the JSON columns arrive as JSON text already) is what keeps storing every step cheap.
        """
        sql, positional = self._step_insert_sql()
        if positional:
            params: list[Any] = [
                (
                    episode_id, r["t"], r["agent"], r["observation"], r["action"],
                    r["reward"], r["terminated"], r["truncated"], r["info"], r.get("phase"),
                )
                for r in steps
            ]
        else:
            params = [{"phase": None, **r, "episode_id": episode_id} for r in steps]
        conn.exec_driver_sql(sql, params)

    def _step_insert_sql(self) -> tuple[str, bool]:
        if self._step_sql is None:
            compiled = insert(_STEP).values({c: None for c in _STEP_COLUMNS}).compile(dialect=self.engine.dialect)
            if compiled.positional:
                if list(compiled.positiontup or []) != _STEP_COLUMNS:
                    raise StoreError(f"unexpected column order for step insert: {compiled.positiontup}")
            self._step_sql = (str(compiled), bool(compiled.positional))
        return self._step_sql

    # --- model layer ---------------------------------------------------------------------

    def cached_reply(self, key: str) -> dict[str, Any] | None:
        table = _CACHE
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.reply).where(table.c.key == key)).scalar()

    def cache_reply(self, key: str, model: str, reply: dict[str, Any]) -> None:
        """Store a reply unless one is cached under the key (the first one stays)."""
        values = {"key": key, "model": model, "reply": reply, "created_at": utcnow()}
        try:
            with self.engine.begin() as conn:
                self._insert_new(conn, _CACHE, values, ["key"])
        except IntegrityError:
            pass  # without ON CONFLICT: another writer cached it between our check and insert

    async def acached_reply(self, key: str) -> dict[str, Any] | None:
        """`cached_reply` for the event loop: the lookup runs on a store thread."""
        return await self._in_thread(self.cached_reply, key)

    async def acache_reply(self, key: str, model: str, reply: dict[str, Any]) -> None:
        """`cache_reply` for the event loop: the write runs on a store thread."""
        await self._in_thread(self.cache_reply, key, model, reply)

    def usage(self, run_id: str) -> tuple[int, float]:
        """Tokens and dollars the stored model calls of a run have spent (for budgets on resume).

        Replies from the cache cost nothing and never count against a budget, on the first
        session as on a resumed one."""
        with self.engine.connect() as conn:
            tokens, usd = conn.execute(
                select(
                    func.coalesce(func.sum(_MODEL_CALL.c.tokens_in + _MODEL_CALL.c.tokens_out), 0),
                    func.coalesce(func.sum(_MODEL_CALL.c.cost_usd), 0.0),
                ).where(_MODEL_CALL.c.run_id == run_id, _MODEL_CALL.c.cache_hit.is_(False))
            ).one()
        return int(tokens), float(usd)

    def spend(self, run_id: str, tokens: int, usd: float) -> tuple[int, float]:
        """Add a live call's cost to the run's budget ledger and return the new totals, in one
        transaction: processes playing one run share one budget."""
        return self._update_ledger(
            run_id,
            func.coalesce(_RUN.c.spent_tokens, 0) + int(tokens),
            func.coalesce(_RUN.c.spent_usd, 0.0) + float(usd),
        )

    def spent(self, run_id: str) -> tuple[int, float]:
        """The run's budget ledger (0 where it was never kept)."""
        with self.engine.connect() as conn:
            return _ledger(conn, run_id)

    def open_ledger(self, run_id: str) -> tuple[int, float]:
        """At the start of a budgeted session: the ledger, raised to what the run's stored
        calls cost where those say more (sessions without a budget keep no ledger, and runs
        from before the ledger have none). Raising, never adding, so worker processes that
        open it at once count nothing twice."""
        stored_tokens, stored_usd = self.usage(run_id)
        tokens, usd = func.coalesce(_RUN.c.spent_tokens, 0), func.coalesce(_RUN.c.spent_usd, 0.0)
        return self._update_ledger(
            run_id,
            case((tokens < stored_tokens, stored_tokens), else_=tokens),
            case((usd < stored_usd, stored_usd), else_=usd),
        )

    def _update_ledger(self, run_id: str, tokens: Any, usd: Any) -> tuple[int, float]:
        """Set the ledger to SQL expressions of its old values; the new totals, in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(update(_RUN).where(_RUN.c.id == run_id).values(spent_tokens=tokens, spent_usd=usd))
            return _ledger(conn, run_id)

    def write_model_calls(self, run_id: str, calls: list[dict[str, Any]]) -> None:
        """Model calls of an episode that did not finish: kept with the run, not with a step."""
        with self.engine.begin() as conn:
            conn.execute(insert(_MODEL_CALL), [{**c, "run_id": run_id, "episode_id": None, "step_id": None} for c in calls])

    def finished_indices(self, run_id: str) -> set[int]:
        """Indices of the run's finished episodes (a failed episode is played again on resume)."""
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(_EPISODE.c.index).where(_EPISODE.c.run_id == run_id, _EPISODE.c.status != "failed")
                ).scalars()
            )

    def episodes(self, run_id: str) -> list[Episode]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._select(_EPISODE).where(_EPISODE.c.run_id == run_id).order_by(_EPISODE.c.index)).all()
        return [Episode(**row._mapping) for row in rows]

    def episode(self, run_id: str, index: int) -> Episode:
        with self.engine.connect() as conn:
            row = conn.execute(self._select(_EPISODE).where(_EPISODE.c.run_id == run_id, _EPISODE.c.index == index)).first()
        if row is None:
            raise StoreError(f"run {run_id} has no episode {index}")
        return Episode(**row._mapping)

    def steps(self, episode_id: int) -> list[dict[str, Any]]:
        """Steps of an episode in order, as plain dicts (served by the (episode_id, t) index)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select(_STEP).where(_STEP.c.episode_id == episode_id).order_by(_STEP.c.t, _STEP.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def model_calls(self, episode_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select(_MODEL_CALL).where(_MODEL_CALL.c.episode_id == episode_id).order_by(_MODEL_CALL.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def write_grades(self, rows: list[dict[str, Any]]) -> int:
        """Add `grade` rows (episode_id, grader, item, score, rationale, evidence,
        grader_version, judge_model); returns how many."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(insert(_GRADE), [{"created_at": utcnow(), **r} for r in rows])
        return len(rows)

    def grades(self, run_id: str, grader: str | None = None, grader_version: str | None = None) -> list[dict[str, Any]]:
        """The `grade` rows of a run's episodes (of one grader and version, where given), with
        the episode's index, in episode then row order."""
        stmt = (
            self._select(_GRADE)
            .add_columns(_EPISODE.c.index.label("episode"))
            .join(_EPISODE, _EPISODE.c.id == _GRADE.c.episode_id)
            .where(_EPISODE.c.run_id == run_id)
            .order_by(_EPISODE.c.index, _GRADE.c.id)
        )
        if grader is not None:
            stmt = stmt.where(_GRADE.c.grader == grader)
        if grader_version is not None:
            stmt = stmt.where(_GRADE.c.grader_version == grader_version)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def iter_steps(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every step of a run with its episode index, episode by episode, t by t."""
        stmt = (
            self._select(_STEP)
            .add_columns(_EPISODE.c.index.label("episode"))
            .join(_EPISODE, _EPISODE.c.id == _STEP.c.episode_id)
            .where(_EPISODE.c.run_id == run_id)
            .order_by(_EPISODE.c.index, _STEP.c.t, _STEP.c.id)
        )
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(stmt):
                yield dict(row._mapping)

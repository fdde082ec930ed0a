"""Reading and writing runs. Episodes are written whole, in one transaction each."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel

from normlab.results import EpisodeResult
from normlab.store.engine import StoreError, create_store_engine, resolve_url
from normlab.store.models import Episode, Grade, ModelCall, ResponseCache, Run, Step, utcnow

_STEP = Step.__table__
_EPISODE = Episode.__table__
_MODEL_CALL = ModelCall.__table__


def new_run_id() -> str:
    return secrets.token_hex(6)


class Store:
    """The trajectory store at one SQLAlchemy URL."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.url = resolve_url(url)
        self._step_sql: tuple[str, bool] | None = None
        self.engine = engine or create_store_engine(self.url)
        try:
            SQLModel.metadata.create_all(self.engine)
            self._add_missing_columns()
        except OperationalError as exc:
            raise StoreError(f"cannot open store {self.url}: {exc.orig}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.url}: {exc}") from None

    def _add_missing_columns(self) -> None:
        """Bring a store made by an older normlab up to date: new columns are always nullable,
        so adding them is the whole migration."""
        from sqlalchemy import inspect as sa_inspect

        inspector = sa_inspect(self.engine)
        existing_tables = set(inspector.get_table_names())
        with self.engine.begin() as conn:
            for table in SQLModel.metadata.sorted_tables:
                if table.name not in existing_tables:
                    continue
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name in present:
                        continue
                    if not column.nullable:
                        raise StoreError(f"store {self.url} lacks column {table.name}.{column.name}; it was made by an incompatible normlab")
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')

    def close(self) -> None:
        self.engine.dispose()

    # --- runs ----------------------------------------------------------------------------

    def create_run(self, run: Run) -> str:
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(run)
            session.commit()
        return run.id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow(), "error": error}
        if status in ("finished", "failed", "budget_exhausted"):
            values["finished_at"] = utcnow()
        with self.engine.begin() as conn:
            conn.execute(update(Run.__table__).where(Run.__table__.c.id == run_id).values(**values))

    def get_run(self, run_ref: str) -> Run:
        """A run by id or by a unique prefix of its id."""
        if not run_ref:
            raise StoreError("a run id (or a prefix of one) must not be empty")
        with Session(self.engine, expire_on_commit=False) as session:
            run = session.get(Run, run_ref)
            if run is None:
                matches = session.scalars(select(Run).where(Run.id.startswith(run_ref, autoescape=True)).limit(2)).all()  # type: ignore[attr-defined]
                if len(matches) == 1:
                    run = matches[0]
                elif len(matches) > 1:
                    raise StoreError(f"run id {run_ref!r} is ambiguous; give more characters")
            if run is None:
                raise StoreError(f"no run {run_ref!r} in {self.url} (see `normlab runs ls`)")
            session.expunge(run)
            return run

    def list_runs(self, limit: int = 50) -> list[tuple[Run, int]]:
        """Newest runs first, each with the number of episodes stored."""
        counts = (
            select(_EPISODE.c.run_id, func.count().label("n")).group_by(_EPISODE.c.run_id).subquery()
        )
        stmt = (
            select(Run, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.run_id == Run.id)
            .order_by(Run.created_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.execute(stmt).all()
            for run, _ in rows:
                session.expunge(run)
            return [(run, int(n)) for run, n in rows]

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything under it, children first (works without FK cascades)."""
        episode_ids = select(_EPISODE.c.id).where(_EPISODE.c.run_id == run_id)
        step_ids = select(_STEP.c.id).where(_STEP.c.episode_id.in_(episode_ids))
        with self.engine.begin() as conn:
            conn.execute(delete(Grade.__table__).where(Grade.__table__.c.episode_id.in_(episode_ids)))
            conn.execute(
                delete(_MODEL_CALL).where(
                    (_MODEL_CALL.c.run_id == run_id) | _MODEL_CALL.c.step_id.in_(step_ids)
                )
            )
            conn.execute(delete(_STEP).where(_STEP.c.episode_id.in_(episode_ids)))
            conn.execute(delete(_EPISODE).where(_EPISODE.c.run_id == run_id))
            conn.execute(delete(Run.__table__).where(Run.__table__.c.id == run_id))

    # --- episodes ------------------------------------------------------------------------

    def write_episode(self, run_id: str, result: EpisodeResult) -> int:
        """Write an episode, its steps and its model calls in one transaction."""
        return self.write_episodes(run_id, [result])[0]

    def write_episodes(self, run_id: str, results: list[EpisodeResult]) -> list[int]:
        """Write finished episodes in one transaction: all of them or none, never part of one.

        Grouping the episodes that finished while the last write ran saves a commit each.
        """
        with self.engine.begin() as conn:
            return [self._write_one(conn, run_id, result) for result in results]

    def _write_one(self, conn: Any, run_id: str, result: EpisodeResult) -> int:
        episode_id = conn.execute(
            insert(_EPISODE).values(
                run_id=run_id,
                index=result.index,
                seed=result.seed,
                status=result.status,
                returns=result.returns,
                num_steps=result.num_steps,
                metrics=result.metrics,
                agent_state=result.agent_state,
                started_at=result.started_at,
                finished_at=result.finished_at,
            )
        ).inserted_primary_key[0]
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

    def _insert_steps(self, conn: Any, episode_id: int, steps: list[dict[str, Any]]) -> None:
        """One executemany of pre-encoded rows straight to the driver.

        Steps are the bulk of every run; going around SQLAlchemy's per-value type processing
        (the JSON columns arrive as JSON text already) is what keeps storing every step cheap.
        """
        sql, positional = self._step_insert_sql()
        if positional:
            params: list[Any] = [
                (episode_id, r["t"], r["agent"], r["observation"], r["action"], r["reward"], r["terminated"], r["truncated"], r["info"])
                for r in steps
            ]
        else:
            params = [{**r, "episode_id": episode_id} for r in steps]
        conn.exec_driver_sql(sql, params)

    def _step_insert_sql(self) -> tuple[str, bool]:
        if self._step_sql is None:
            columns = ["episode_id", "t", "agent", "observation", "action", "reward", "terminated", "truncated", "info"]
            compiled = insert(_STEP).values({c: None for c in columns}).compile(dialect=self.engine.dialect)
            if compiled.positional:
                if list(compiled.positiontup or []) != columns:
                    raise StoreError(f"unexpected column order for step insert: {compiled.positiontup}")
            self._step_sql = (str(compiled), bool(compiled.positional))
        return self._step_sql

    # --- model layer ---------------------------------------------------------------------

    def cached_reply(self, key: str) -> dict[str, Any] | None:
        table = ResponseCache.__table__
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.reply).where(table.c.key == key)).scalar()

    def cache_reply(self, key: str, model: str, reply: dict[str, Any]) -> None:
        table = ResponseCache.__table__
        with self.engine.begin() as conn:
            if conn.execute(select(table.c.key).where(table.c.key == key)).first() is None:
                conn.execute(insert(table).values(key=key, model=model, reply=reply, created_at=utcnow()))

    def usage(self, run_id: str) -> tuple[int, float]:
        """Tokens and dollars the stored model calls of a run have spent (for budgets on resume)."""
        with self.engine.connect() as conn:
            tokens, usd = conn.execute(
                select(
                    func.coalesce(func.sum(_MODEL_CALL.c.tokens_in + _MODEL_CALL.c.tokens_out), 0),
                    func.coalesce(func.sum(_MODEL_CALL.c.cost_usd), 0.0),
                ).where(_MODEL_CALL.c.run_id == run_id)
            ).one()
        return int(tokens), float(usd)

    def write_model_calls(self, run_id: str, calls: list[dict[str, Any]]) -> None:
        """Model calls of an episode that did not finish: kept with the run, not with a step."""
        with self.engine.begin() as conn:
            conn.execute(insert(_MODEL_CALL), [{**c, "run_id": run_id, "episode_id": None, "step_id": None} for c in calls])

    def finished_indices(self, run_id: str) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(_EPISODE.c.index).where(_EPISODE.c.run_id == run_id)).scalars())

    def episodes(self, run_id: str) -> list[Episode]:
        with Session(self.engine, expire_on_commit=False) as session:
            result = session.scalars(select(Episode).where(Episode.run_id == run_id).order_by(Episode.index)).all()  # type: ignore[arg-type]
            for ep in result:
                session.expunge(ep)
            return list(result)

    def episode(self, run_id: str, index: int) -> Episode:
        with Session(self.engine, expire_on_commit=False) as session:
            ep = session.scalars(select(Episode).where(Episode.run_id == run_id, Episode.index == index)).first()  # type: ignore[arg-type]
            if ep is None:
                raise StoreError(f"run {run_id} has no episode {index}")
            session.expunge(ep)
            return ep

    def steps(self, episode_id: int) -> list[dict[str, Any]]:
        """Steps of an episode in order, as plain dicts (served by the (episode_id, t) index)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_STEP).where(_STEP.c.episode_id == episode_id).order_by(_STEP.c.t, _STEP.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def model_calls(self, episode_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_MODEL_CALL).where(_MODEL_CALL.c.episode_id == episode_id).order_by(_MODEL_CALL.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def iter_steps(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every step of a run with its episode index, episode by episode, t by t."""
        stmt = (
            select(_EPISODE.c.index.label("episode"), _STEP)
            .join(_EPISODE, _EPISODE.c.id == _STEP.c.episode_id)
            .where(_EPISODE.c.run_id == run_id)
            .order_by(_EPISODE.c.index, _STEP.c.t, _STEP.c.id)
        )
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(stmt):
                yield dict(row._mapping)

"""The store's tables. Their names (run, episode, step, model_call, grade) and columns are a
public interface: users query them with SQL, so change them only with a migration (a new
revision in normlab/store/migrations/versions, and SCHEMA_REVISIONS below)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Index, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

RUN_STATUSES = ("running", "finished", "interrupted", "failed", "budget_exhausted")

# The Alembic revisions of the store's schema, oldest first; the last is what this code writes.
# (Kept here so that opening a store needs no Alembic import; a test checks the list against
# normlab/store/migrations/versions.)
SCHEMA_REVISIONS = ("0001_baseline", "0002_many_writers", "0003_budget_ledger", "0004_failed_episodes", "0005_design")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time with its zone: SQLite hands datetimes back naive, and the store writes UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class Run(SQLModel, table=True):
    __tablename__ = "run"

    id: str = Field(primary_key=True, max_length=32)
    name: str
    scenario_path: str = ""
    scenario_text: str = Field(sa_column=Column(Text, nullable=False))
    scenario_hash: str = Field(index=True, max_length=64)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    normlab_version: str
    git_commit: str | None = None
    status: str = Field(default="running", index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    seed: int
    episodes_planned: int
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # liveness: "host:pid" of the process playing the run, and when it last said so (see Store.lease)
    owner: str | None = None
    heartbeat_at: datetime | None = None
    # what the run was made of beyond the scenario text (e.g. resolved skill texts)
    provenance: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # runs played together (a tournament, a sweep) share a group id
    group_id: str | None = Field(default=None, index=True, max_length=64)
    # the budget ledger: what the run's live model calls have spent, updated atomically by
    # every process playing the run (cached replies cost nothing); None before the first call
    spent_tokens: int | None = None
    spent_usd: float | None = None


class Episode(SQLModel, table=True):
    __tablename__ = "episode"
    __table_args__ = (UniqueConstraint("run_id", "index", name="uq_episode_run_index"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    index: int
    seed: int
    status: str = "finished"
    returns: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    num_steps: int
    metrics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # experience an agent carries to the next episode of its chain (e.g. reflective memory)
    agent_state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # per seat, a hash of that seat's resolved agent config (which agents played)
    agent_ids: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    # why the episode failed (status `failed`)
    error: str | None = Field(default=None, sa_column=Column(Text))
    # where it sits in the scenario's design (normlab.design): the matrix values of its
    # variant ({path: value}) and its trial; NULL for plain scenarios
    variant: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    trial: int | None = None
    started_at: datetime
    finished_at: datetime


class Step(SQLModel, table=True):
    __tablename__ = "step"
    __table_args__ = (Index("ix_step_episode_t", "episode_id", "t"),)

    id: int | None = Field(default=None, primary_key=True)
    episode_id: int = Field(foreign_key="episode.id", ondelete="CASCADE")
    t: int
    agent: str
    observation: Any = Field(sa_column=Column(JSON))
    action: Any = Field(sa_column=Column(JSON))
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = Field(sa_column=Column(JSON))
    # the kind of turn (e.g. talk, act); None where the env has one kind
    phase: str | None = None


class ModelCall(SQLModel, table=True):
    __tablename__ = "model_call"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, foreign_key="run.id", index=True, ondelete="CASCADE")
    episode_id: int | None = Field(default=None, foreign_key="episode.id", index=True, ondelete="CASCADE")
    step_id: int | None = Field(default=None, foreign_key="step.id", index=True, ondelete="SET NULL")
    t: int | None = None
    agent: str | None = None
    model: str
    request: Any = Field(sa_column=Column(JSON))
    params: Any = Field(default=None, sa_column=Column(JSON))
    response: str | None = Field(default=None, sa_column=Column(Text))
    tool_calls: Any = Field(default=None, sa_column=Column(JSON))
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cache_hit: bool = False
    cache_key: str | None = Field(default=None, index=True, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class Grade(SQLModel, table=True):
    __tablename__ = "grade"

    id: int | None = Field(default=None, primary_key=True)
    episode_id: int = Field(foreign_key="episode.id", index=True, ondelete="CASCADE")
    grader: str
    item: str
    score: float
    rationale: str | None = Field(default=None, sa_column=Column(Text))
    evidence: Any = Field(default=None, sa_column=Column(JSON))
    grader_version: str | None = None
    # the model that judged, for graders that ask one
    judge_model: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ResponseCache(SQLModel, table=True):
    """Model replies keyed by a hash of the whole request (model, messages, tools, sampling
    parameters, sample index), so a stored run can be re-run offline call for call."""

    __tablename__ = "response_cache"

    key: str = Field(primary_key=True, max_length=64)
    model: str
    reply: Any = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table behind a table model (for core statements and bulk inserts)."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]

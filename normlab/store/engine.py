"""Engine set-up: SQLite (WAL, busy timeout) by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from normlab.results import dumps_json

DEFAULT_URL = "sqlite:///runs/normlab.db"
STORE_ENV_VAR = "NORMLAB_STORE"


class StoreError(RuntimeError):
    """The store cannot be opened or does not hold what was asked for."""


def resolve_url(*candidates: str | None) -> str:
    """The first URL given, then $NORMLAB_STORE, then runs/normlab.db under the current folder."""
    for url in candidates:
        if url:
            return url
    return os.environ.get(STORE_ENV_VAR) or DEFAULT_URL


def create_store_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r} (e.g. sqlite:///runs/normlab.db)") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of store {url!r}: {exc}") from None
        engine = create_engine(url, json_serializer=dumps_json, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    try:
        return create_engine(url, json_serializer=dumps_json, pool_pre_ping=True)
    except Exception as exc:  # e.g. a missing driver package for the URL's dialect
        raise StoreError(f"cannot use store {url!r}: {exc}") from None

"""Fixtures shared by the tests: every store lives under the test's tmp folder, never in runs/."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point $NORMLAB_STORE at a tmp db so a test that forgets --store never writes to runs/."""
    url = f"sqlite:///{tmp_path}/env-default.db"
    monkeypatch.setenv("NORMLAB_STORE", url)
    return url


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh SQLite store URL in the test's tmp folder (the file is created on first use)."""
    return f"sqlite:///{tmp_path}/t.db"


def _db_rows(url: str, table: str) -> int:
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as conn:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] if found else 0


@pytest.fixture
def db_rows():
    """`db_rows(url, table)`: rows of a table in a SQLite store; 0 when the file or table is absent."""
    return _db_rows


@pytest.fixture(scope="session")
def normlab_exe() -> str:
    """The installed `normlab` console script of this venv (for the few subprocess tests)."""
    exe = Path(sys.executable).with_name("normlab")
    if not exe.exists():
        pytest.skip("the normlab console script is not installed next to this Python")
    return str(exe)

"""Fixtures shared by the tests: every store lives under the test's tmp folder, never in runs/."""

from __future__ import annotations

import gc
import hashlib
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


class RecordingServer:
    """An OpenAI-compatible chat server on 127.0.0.1 that records every request's headers
    and body, and answers `reply` (for tests of where keys and requests go)."""

    def __init__(self, reply: str = '{"action": 0}'):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        self.reply = reply
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body or b"{}")})
                payload = json.dumps(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "test",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": server.reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recording_server():
    """`recording_server()` starts a RecordingServer; all are stopped after the test."""
    servers: list[RecordingServer] = []

    def start(reply: str = '{"action": 0}') -> RecordingServer:
        servers.append(RecordingServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def digest(path: Path) -> str:
    """The bytes of a store file, hashed (after `settle`, for a "changed nothing" check)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settle(path: Path) -> None:
    """Close the connections that in-process commands left open (the last one to close
    checkpoints the WAL into the file) and checkpoint, so the file's bytes stay put."""
    gc.collect()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

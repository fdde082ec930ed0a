"""Checkpoint grading reads a run's steps in one pass: the SQL statements `normlab grade RUN
--checkpoints-only` executes do not grow with the run's episodes (no query per episode), and
grading again (nothing new to write) executes no more than the first time."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from normlab.cli import app
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

SCENARIO = """
name: grade-queries-{strategy}
env: {{id: normlab/ToolTask-v0, params: {{task: {task}, max_turns: 8}}}}
agents:
  agent: {{kind: scripted, strategy: {strategy}, params: {params}}}
episodes: {episodes}
seed: 1
cache: off
"""


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine executes while the test runs (the command opens its own)."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", listen)
    yield seen
    event.remove(Engine, "before_cursor_execute", listen)


def play(url: str, episodes: int, task: str, strategy: str, params: str) -> str:
    text = SCENARIO.format(task=task, strategy=strategy, params=params, episodes=episodes)
    return run_scenario(parse_scenario(text), Store(url))


def grade(url: str, run_id: str, statements: list[str]) -> tuple[int, dict]:
    statements.clear()
    result = CliRunner().invoke(app, ["grade", run_id, "--checkpoints-only", "--store", url, "--json"])
    assert result.exit_code == 0, result.output
    return len(statements), json.loads(result.output)


@pytest.mark.parametrize(
    ("task", "strategy", "params"),
    [("refund_desk/late_refund", "golden", "{pole: A}"), ("hiring_screening/career_gap", "random", "{}")],
)
def test_grading_queries_do_not_grow_with_episodes(tmp_path, statements, task, strategy, params):
    counts = {}
    for n in (5, 20):
        url = f"sqlite:///{tmp_path}/grade-{n}.db"
        run_id = play(url, n, task, strategy, params)
        counts[n], data = grade(url, run_id, statements)
        assert len(data["episodes"]) == n and data["rows_written"] > 0
        again, data = grade(url, run_id, statements)
        assert data["rows_written"] == 0
        assert again <= counts[n]
    assert counts[5] == counts[20], counts
    assert counts[5] < 5 + 20  # a few per run, not one (or more) per episode

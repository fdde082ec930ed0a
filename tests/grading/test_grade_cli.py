"""`normlab grade RUN` on runs played by golden agents: grade rows with their provenance, a
table of adherence per pole per episode and the mean, idempotence (again: no rows; another
grader version: rows added beside the old ones), and one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from normlab.cli import app
from normlab.envs.tasks import load_task, task_names
from normlab.grading import grade as grading
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

TASK = next(n for n in task_names() if load_task(n).poles is not None)

SCENARIO = f"""
name: golden-grade
env: {{id: normlab/ToolTask-v0, params: {{task: {TASK}, max_turns: 30}}}}
agents:
  agent: {{kind: scripted, strategy: golden, params: {{pole: A}}}}
episodes: 2
seed: 1
cache: off
"""


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def played(store_url):
    store = Store(store_url)
    run_id = run_scenario(parse_scenario(SCENARIO), store)
    return store, run_id


def test_grade_writes_rows_and_prints_adherence(played, store_url):
    store, run_id = played
    result = cli("grade", run_id, "--checkpoints-only", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "checkpoint adherence" in result.output and "mean" in result.output and "10.00" in result.output
    rows = store.grades(run_id)
    task = load_task(TASK)
    assert task.poles is not None
    per_episode = len(task.poles.A.checkpoints) + len(task.poles.B.checkpoints) + len(task.poles.A.rubric or task.poles.A.checkpoints) + len(task.poles.B.rubric or task.poles.B.checkpoints) + 2
    assert len(rows) == 2 * per_episode
    assert {(r["grader"], r["grader_version"], r["judge_model"]) for r in rows} == {("checkpoints", grading.GRADER_VERSION, None)}
    adherence = {(r["episode"], r["item"]): r["score"] for r in rows if r["item"].endswith(".adherence")}
    assert adherence[(0, "A.adherence")] == 10.0 and adherence[(1, "A.adherence")] == 10.0 and adherence[(0, "B.adherence")] < 10.0
    passed = [r for r in rows if r["item"].startswith("A.") and r["item"].count(".") == 1 and r["item"] != "A.adherence"]
    assert passed and all(r["score"] == 1.0 and r["evidence"] for r in passed)  # evidence: step ids
    step_ids = {s["id"] for s in store.iter_steps(run_id)}
    assert all(set(r["evidence"]) <= step_ids for r in rows)


def test_grade_is_idempotent_and_a_new_version_adds_rows(played, store_url, monkeypatch):
    store, run_id = played
    assert cli("grade", run_id, "--store", store_url).exit_code == 0
    first = store.grades(run_id)
    again = cli("grade", run_id, "--store", store_url, "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["rows_written"] == 0 and all(not e["new"] for e in data["episodes"]) and data["mean"]["A"] == 10.0
    assert store.grades(run_id) == first
    version = grading.GRADER_VERSION
    monkeypatch.setattr(grading, "GRADER_VERSION", "test-2")

    assert cli("grade", run_id, "--store", store_url).exit_code == 0
    rows = store.grades(run_id)
    assert len(rows) == 2 * len(first)
    assert [r for r in rows if r["grader_version"] == version] == first  # never overwritten
    assert len(store.grades(run_id, "checkpoints", "test-2")) == len(first)


def test_grade_errors_are_one_line(played, store_url):
    _, run_id = played
    unknown = cli("grade", "nope", "--store", store_url)
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.output
    judge = cli("grade", run_id, "--judge", "", "--store", store_url)
    assert judge.exit_code == 2 and "--judge needs a model string" in judge.output


def test_a_run_without_poles_has_nothing_to_grade(store_url):
    spec = {"domain": "refund_desk", "task": "Reply to the customer."}
    text = f"name: plain\nenv: {{id: normlab/ToolTask-v0, params: {{spec: {json.dumps(spec)}, max_turns: 2}}}}\nagents:\n  agent: {{kind: scripted, strategy: always_cooperate}}\nepisodes: 1\ncache: off\n"
    run_id = run_scenario(parse_scenario(text), Store(store_url))
    result = cli("grade", run_id, "--store", store_url)
    assert result.exit_code == 2 and "no finished episode" in result.output

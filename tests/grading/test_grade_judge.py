"""`normlab grade RUN --judge MODEL`: the rubric judge scores every episode once per judge
model and version, its calls are stored with the run, and bad judges fail in one line."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from normlab.cli import app
from normlab.envs.tasks import load_task
from normlab.grading.judge import JUDGE_VERSION, UNSCORABLE
from normlab.models import mock
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

TASK = "refund_desk/late_refund"
SCENARIO = f"""
name: judged
env: {{id: normlab/ToolTask-v0, params: {{task: {TASK}, max_turns: 30}}}}
agents:
  agent: {{kind: scripted, strategy: golden, params: {{pole: B}}}}
episodes: 2
seed: 3
cache: off
"""


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def fair_judge(messages: list[dict], **params: Any) -> dict[str, Any]:
    """Scores every rubric item named in the prompt: pole B's 2, pole A's 0, citing the first step."""
    prompt = messages[1]["content"]
    first_step = int(re.search(r"\[step (\d+)\]", prompt).group(1))
    items = re.findall(r"- item (\S+) \(weight", prompt)
    poles = load_task(TASK).poles
    b_items = {i.id for i in poles.B.rubric}
    return {"content": json.dumps({"items": [{"id": i, "score": 2 if i in b_items else 0, "evidence": [first_step], "rationale": "as seen"} for i in items]})}


@pytest.fixture
def played(store_url):
    store = Store(store_url)
    return store, run_scenario(parse_scenario(SCENARIO), store)


def test_the_judge_grades_once_per_model(played, store_url):
    store, run_id = played
    mock.register("fair", fair_judge)
    try:
        result = cli("grade", run_id, "--judge", "mock/fair", "--store", store_url, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert [e["judge"] for e in report["episodes"]] == [{"A": 0.0, "B": 10.0}] * 2
        judged = store.grades(run_id, "judge", JUDGE_VERSION)
        poles = load_task(TASK).poles
        assert len(judged) == 2 * (len(poles.A.rubric) + len(poles.B.rubric))
        assert {r["judge_model"] for r in judged} == {"mock/fair"}
        step_ids = {s["id"] for s in store.iter_steps(run_id)}
        assert all(set(r["evidence"]["steps"]) <= step_ids for r in judged)
        with store.engine.connect() as conn:
            from sqlalchemy import text

            calls = conn.execute(text("select count(*) from model_call where run_id = :r and agent = 'judge'"), {"r": run_id}).scalar()
        assert calls == 2
        # again: nothing new, no call; the table shows the stored verdicts
        again = cli("grade", run_id, "--judge", "mock/fair", "--store", store_url)
        assert again.exit_code == 0, again.output
        assert "judge A" in again.output and len(store.grades(run_id, "judge", JUDGE_VERSION)) == len(judged)
        assert mock.calls("fair") == 2
    finally:
        mock.unregister("fair")


def test_another_judge_adds_rows_and_garbage_is_unscorable(played, store_url):
    store, run_id = played
    mock.register("fair", fair_judge)
    mock.register("lost", {"reply": "I would rather not say."})
    try:
        assert cli("grade", run_id, "--judge", "mock/fair", "--store", store_url).exit_code == 0
        before = len(store.grades(run_id, "judge"))
        result = cli("grade", run_id, "--judge", "mock/lost", "--store", store_url)
        assert result.exit_code == 0, result.output
        assert "unscorable" in result.output
        rows = store.grades(run_id, "judge")
        lost = [r for r in rows if r["judge_model"] == "mock/lost"]
        assert len(rows) == 2 * before and all(r["score"] == UNSCORABLE and r["evidence"]["unscorable"] for r in lost)
    finally:
        mock.unregister("fair")
        mock.unregister("lost")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "openai/gpt-4o-mini"], "needs OPENAI_API_KEY"),
        (["--judge", "nonsense"], "--judge"),
        (["--judge", "mock/x", "--checkpoints-only"], "exclude each other"),
    ],
)
def test_bad_judges_fail_in_one_line(played, store_url, monkeypatch, args, message):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _, run_id = played
    result = cli("grade", run_id, *args, "--store", store_url)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_dead_judge_server_is_one_line_and_its_calls_are_kept(played, store_url, monkeypatch):
    store, run_id = played
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    result = cli("grade", run_id, "--judge", "openai/x", "--api-base", "http://127.0.0.1:9/v1", "--store", store_url)
    assert result.exit_code == 2 and "could not connect" in result.output and "Traceback" not in result.output
    assert store.grades(run_id, "judge") == []
    with store.engine.connect() as conn:
        from sqlalchemy import text

        failed = conn.execute(text("select count(*) from model_call where run_id = :r and agent = 'judge' and error is not null"), {"r": run_id}).scalar()
    assert failed >= 1

"""`normlab report` and `normlab compare` over stores played by real scenarios: scripted IPD
players (env metrics and returns) and golden tool-task agents graded by their checkpoints
(adherence, priorities, Bradley-Terry); known answers, the JSON shape, intervals, plots,
one-line errors, and that reading creates no store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import digest, settle
from typer.testing import CliRunner

from normlab.cli import app
from normlab.grading import report as reporting
from normlab.runner import run_scenario
from normlab.scenario import parse_scenario
from normlab.store import Store

TASK = "refund_desk/late_refund"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def golden(pole: str, episodes: int = 3) -> str:
    return f"""
name: golden-{pole}
env: {{id: normlab/ToolTask-v0, params: {{task: {TASK}, max_turns: 30}}}}
agents:
  agent: {{kind: scripted, strategy: golden, params: {{pole: {pole}}}}}
episodes: {episodes}
seed: 1
cache: off
"""


IPD = """
name: ipd-random
env: {id: normlab/IteratedPrisonersDilemma-v0}
agents:
  player_0: {kind: scripted, strategy: random, params: {p: 0.5}}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 8
seed: 3
cache: off
"""


def play(url: str, text: str, grade: bool = False) -> str:
    run_id = run_scenario(parse_scenario(text), Store(url))
    if grade:
        result = cli("grade", run_id, "--checkpoints-only", "--store", url)
        assert result.exit_code == 0, result.output
    return run_id


@pytest.fixture
def runs(store_url):
    return {
        "A": play(store_url, golden("A"), grade=True),
        "B": play(store_url, golden("B"), grade=True),
        "ipd": play(store_url, IPD),
    }


def report_json(store_url: str, *run_ids: str) -> dict:
    result = cli("report", *run_ids, "--store", store_url, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_report_json_shape_and_known_adherence(runs, store_url):
    data = report_json(store_url, runs["A"], runs["B"])
    assert set(data) == {"runs", "rows"}
    assert [r["id"] for r in data["runs"]] == [runs["A"], runs["B"]]
    assert len(data["rows"]) == 2  # one variant each
    for row in data["rows"]:
        assert set(row) >= {"variant", "episodes", "metrics"}
        assert row["variant"] == {} and row["episodes"] == 3
        for name, m in row["metrics"].items():
            assert set(m) == {"mean", "ci"}, name
            lo, hi = m["ci"]
            assert lo <= m["mean"] <= hi, name
    a, b = (row["metrics"] for row in data["rows"])
    assert a["adherence.A"] == {"mean": 10.0, "ci": [10.0, 10.0]}
    assert a["adherence.B"]["mean"] < 10.0
    assert b["adherence.B"]["mean"] == 10.0 and b["adherence.A"]["mean"] < 10.0
    from normlab.envs.tasks import load_task

    poles = load_task(TASK).poles
    assert poles is not None
    assert a[f"adherence.{poles.A.value}"]["mean"] == 10.0
    assert a["priority.A"]["mean"] == 1.0 and b["priority.B"]["mean"] == 1.0
    strengths = {k: v["mean"] for k, v in a.items() if k.startswith("bt.")}
    assert strengths[f"bt.{poles.value_system}.{poles.A.value}"] > strengths[f"bt.{poles.value_system}.{poles.B.value}"]
    assert "return.agent" in a and "events.tool_call" in a
    assert not any(k.startswith(("pass^", "flip_rate")) for k in a)  # no trials stored
    assert not any(k.startswith("judge.") for k in a)  # no judge rows


def test_report_env_metrics_and_returns_with_intervals(runs, store_url):
    data = report_json(store_url, runs["ipd"])
    metrics = data["rows"][0]["metrics"]
    episodes = Store(store_url).episodes(runs["ipd"])
    assert data["rows"][0]["episodes"] == len(episodes) == 8
    for agent in ("player_0", "player_1"):
        values = [e.returns[agent] for e in episodes]
        m = metrics[f"return.{agent}"]
        assert m["mean"] == pytest.approx(sum(values) / len(values))
        assert m["ci"][0] <= m["mean"] <= m["ci"][1]
    assert "events.cooperate" in metrics and "events.defect" in metrics
    assert "events_by_agent.player_0.defect" in metrics
    varying = metrics["return.player_0"]
    assert varying["ci"][0] < varying["ci"][1]  # random play: a real interval
    assert not any(k.startswith(("adherence", "bt.", "priority")) for k in metrics)
    assert report_json(store_url, runs["ipd"]) == data  # fixed random_state: reproducible


def test_report_table(runs, store_url):
    result = cli("report", runs["A"], "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "adherence.A" in result.output and "95% CI" in result.output and "[10, 10]" in result.output


def test_compare_golden_a_against_golden_b(runs, store_url):
    result = cli("compare", runs["A"], runs["B"], "--store", store_url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["a"]["id"] == runs["A"] and data["b"]["id"] == runs["B"]
    adh = data["metrics"]["adherence.A"]
    assert adh["a"] == 10.0 and adh["diff"] < 0 and adh["ci"][1] < 0
    assert adh["ci"][0] <= adh["diff"] <= adh["ci"][1]
    assert data["metrics"]["adherence.B"]["diff"] > 0
    table = cli("compare", runs["A"], runs["B"], "--store", store_url)
    assert table.exit_code == 0 and "B - A" in table.output and "adherence.A" in table.output


def test_plots_are_png_files(runs, store_url, tmp_path):
    folder = tmp_path / "plots" / "deeper"
    result = cli("report", runs["A"], runs["ipd"], "--store", store_url, "--plots", str(folder))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"adherence_{runs['A']}.png", f"priorities_{runs['A']}.png"]
    for name in files:
        data = (folder / name).read_bytes()
        assert len(data) > 1000 and data.startswith(b"\x89PNG")


def test_report_without_plots_never_imports_matplotlib(runs, store_url):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom normlab.cli import app\n"
        f"r = CliRunner().invoke(app, ['report', '{runs['A']}', '--store', '{store_url}', '--json'])\n"
        "assert r.exit_code == 0, r.output\nassert 'matplotlib' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_unknown_run_and_absent_store_are_one_line_errors(runs, store_url, tmp_path):
    for args in (("report", "nope"), ("compare", runs["A"], "nope")):
        result = cli(*args, "--store", store_url)
        assert result.exit_code == 2 and "no run 'nope'" in result.output
        assert len(result.output.strip().splitlines()) == 1
    absent = tmp_path / "absent.db"
    for args in (("report", "x"), ("compare", "x", "y"), ("report", "x", "--plots", str(tmp_path / "p"))):
        result = cli(*args, "--store", f"sqlite:///{absent}")
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert not absent.exists()
    assert not (tmp_path / "p").exists()


def test_reading_changes_nothing(runs, store_url):
    path = Path(store_url.removeprefix("sqlite:///"))
    settle(path)  # the fixture's writers checkpoint their WAL when they close: not the report's doing
    before = digest(path)
    assert cli("report", runs["A"], runs["ipd"], "--store", store_url).exit_code == 0
    assert cli("compare", runs["A"], runs["B"], "--store", store_url).exit_code == 0
    assert digest(path) == before


def test_each_run_is_read_in_a_few_queries(runs, store_url):
    from sqlalchemy import event

    db = Store(store_url, create=False, read_only=True)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    reporting.report(db, [runs["A"]])
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 5


# ---------------------------------------------------------------- pure parts


def test_intervals_degenerate_and_reproducible():
    assert reporting.mean_ci([4.0]) == (4.0, [4.0, 4.0])
    assert reporting.mean_ci([2.0, 2.0, 2.0]) == (2.0, [2.0, 2.0])
    mean, ci = reporting.mean_ci([0.0, 1.0, 2.0, 3.0, 10.0])
    assert mean == 3.2 and ci[0] < mean < ci[1] and reporting.mean_ci([0.0, 1.0, 2.0, 3.0, 10.0]) == (mean, ci)
    assert reporting.diff_ci([1.0, 1.0], [3.0]) == (2.0, [2.0, 2.0])
    diff, ci = reporting.diff_ci([0.0, 1.0, 0.0, 1.0], [5.0, 6.0, 5.0, 6.0])
    assert diff == 5.0 and 4.0 <= ci[0] <= diff <= ci[1] <= 6.0
    diff, ci = reporting.diff_ci([0.0, 2.0, 4.0], [1.0])  # one sample fixed
    assert diff == -1.0 and ci[0] < diff < ci[1]


def test_flatten_dotted_names_and_missing_counters_count_zero():
    assert reporting.flatten({"events": {"cooperate": 3}, "ok": True, "name": "x", "x": {"y": {"z": 1.5}}}) == {
        "events.cooperate": 3.0, "ok": 1.0, "x.y.z": 1.5,
    }
    group = reporting.Group({})
    for metrics in ({"events": {"defect": 2}, "score": 1}, {"events": {}}, {}):
        group.env.append((reporting.flatten(metrics), reporting._dict_prefixes(metrics)))
    samples = group.all_samples()
    assert samples["events.defect"] == [2.0, 0.0]  # an episode with events but no defect: 0
    assert samples["score"] == [1.0]


def test_trial_metrics_only_with_repeated_tasks():
    assert reporting.trial_metrics({"t1": [("A", 10.0, 0.0)]}) == {}
    out = reporting.trial_metrics({
        "t1": [("A", 10.0, 0.0), ("A", 10.0, 0.0)],
        "t2": [("A", 10.0, 5.0), ("B", 4.0, 10.0)],
    })
    assert out["pass^2.A"]["mean"] == 0.5 and out["pass^2.B"]["mean"] == 0.0
    assert out["flip_rate"]["mean"] == 0.5


def test_bradley_terry_intervals_over_tasks():
    tasks = {
        ("t1", "sys", "care", "fairness"): [(10.0, 0.0)],
        ("t2", "sys", "care", "fairness"): [(10.0, 2.0)],
        ("t3", "sys", "care", "fairness"): [(0.0, 10.0)],
    }
    out = reporting.bt_with_ci(tasks)
    care, fairness = out["bt.sys.care"], out["bt.sys.fairness"]
    assert care["mean"] > 1.0 > fairness["mean"]
    assert care["mean"] * fairness["mean"] == pytest.approx(1.0)  # geometric mean 1
    for m in (care, fairness):
        assert m["ci"][0] <= m["mean"] <= m["ci"][1] and m["ci"][0] < m["ci"][1]
    assert reporting.bt_with_ci(tasks) == out


def test_judge_adherence_from_rubric_weights(runs, store_url):
    import re
    from typing import Any

    from normlab.envs.tasks import load_task
    from normlab.models import mock

    b_items = {i.id for i in load_task(TASK).poles.B.rubric}  # type: ignore[union-attr]

    def b_judge(messages: list[dict], **params: Any) -> dict[str, Any]:
        prompt = messages[1]["content"]
        first = int(re.search(r"\[step (\d+)\]", prompt).group(1))  # type: ignore[union-attr]
        items = re.findall(r"- item (\S+) \(weight", prompt)
        return {"content": json.dumps({"items": [{"id": i, "score": 2 if i in b_items else 0, "evidence": [first], "rationale": "seen"} for i in items]})}

    mock.register("b-judge", b_judge)
    try:
        result = cli("grade", runs["A"], "--judge", "mock/b-judge", "--store", store_url)
    finally:
        mock.unregister("b-judge")
    assert result.exit_code == 0, result.output
    metrics = report_json(store_url, runs["A"])["rows"][0]["metrics"]
    assert metrics["judge.adherence.A"] == {"mean": 0.0, "ci": [0.0, 0.0]}
    assert metrics["judge.adherence.B"]["mean"] == 10.0
    assert metrics["adherence.A"]["mean"] == 10.0  # the checkpoints' own, beside the judge's


def test_episodes_group_by_their_variant_with_an_overall_row():
    from types import SimpleNamespace

    episodes = [
        SimpleNamespace(id=i, status="finished", returns={"p": float(i)}, metrics={"variant": {"skill": s}, "events": {"x": i}})
        for i, s in enumerate(["none", "care", "none", "care"])
    ]
    db = SimpleNamespace(
        get_run=lambda ref: SimpleNamespace(id="r1", name="m", config={}),
        episodes=lambda run_id: episodes,
        grades=lambda run_id: [],
    )
    data = reporting.report(db, ["r1"])
    assert [(r["variant"], r["episodes"]) for r in data["rows"]] == [({"skill": "none"}, 2), ({"skill": "care"}, 2), ({}, 4)]
    assert data["rows"][0]["metrics"]["return.p"]["mean"] == 1.0 and data["rows"][2]["metrics"]["return.p"]["mean"] == 1.5
    assert "variant.skill" not in data["rows"][0]["metrics"]

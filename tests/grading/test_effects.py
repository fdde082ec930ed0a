"""`normlab report --effects`: main effects and two-way interactions of a run's matrix factors,
over synthetic runs written into a SQLite store (episodes carry their variant in their
metrics): known effects recovered with intervals that cover them, a 3-level factor, an
unbalanced design, list-valued levels, skipped metrics, a run without factors, the JSON shape,
exit codes, and that plain `report` never imports statsmodels."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import digest, settle
from typer.testing import CliRunner

from normlab.cli import app
from normlab.grading import effects as fx
from normlab.results import EpisodeResult
from normlab.store import Store
from normlab.store.tables import Run


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def make_run(url: str, run_id: str, episodes: list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]]) -> str:
    """A finished run whose episodes have these (variant, other metrics, returns)."""
    db = Store(url)
    db.create_run(
        Run(id=run_id, name=f"synthetic-{run_id[:4]}", scenario_text="", scenario_hash="0" * 64, config={},
            normlab_version="0", seed=0, episodes_planned=len(episodes))
    )
    now = datetime.now(timezone.utc)
    db.write_episodes(run_id, [
        EpisodeResult(index=i, seed=i, steps=[], returns=returns, metrics={"variant": variant, **metrics},
                      started_at=now, finished_at=now)
        for i, (variant, metrics, returns) in enumerate(episodes)
    ])
    db.set_status(run_id, "finished")
    db.close()
    return run_id


def factorial_2x2(url: str, run_id: str = "f2x2aaaa0000", per_cell: int = 12, seed: int = 7) -> str:
    """y = 1 + 2·[A=b] + 3·[B=y] + 4·[A=b][B=y] + N(0, 0.3²); a constant metric; returns."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(per_cell):
        for a in ("a", "b"):
            for b in ("x", "y"):
                y = 1 + 2 * (a == "b") + 3 * (b == "y") + 4 * (a == "b") * (b == "y") + rng.normal(0, 0.3)
                episodes.append(({"A": a, "B": b}, {"score": float(y), "steps": 5, "events": {"hit": int(a == "b")}},
                                 {"agent": float(rng.normal(10 * (b == "y"), 1))}))
    return make_run(url, run_id, episodes)


def terms(found: fx.RunEffects, metric: str) -> dict[str, dict[str, Any]]:
    return {t.term: t.as_dict() for t in found.metrics[metric].terms}


def effects_of(url: str, run_id: str) -> fx.RunEffects:
    db = Store(url, create=False, read_only=True)
    try:
        return fx.effects(db, [run_id])[0]
    finally:
        db.close()


def test_known_2x2_effects_recovered_with_covering_intervals(store_url):
    found = effects_of(store_url, factorial_2x2(store_url))
    assert found.factors == {"A": ["a", "b"], "B": ["x", "y"]}
    got = terms(found, "score")
    truth = {"A=b vs a": 2.0, "B=y vs x": 3.0, "A=b × B=y": 4.0}
    assert set(got) == set(truth)
    for term, value in truth.items():
        t = got[term]
        assert t["estimate"] == pytest.approx(value, abs=0.35), term
        assert t["ci"][0] < value < t["ci"][1], term
        assert t["ci"][1] - t["ci"][0] < 1.0, term
        assert t["p"] < 1e-6, term
    m = found.metrics["score"]
    assert m.episodes == 48 and m.se == "HC3" and m.notes == []
    # returns: B matters, A and the interaction do not
    ret = terms(found, "return.agent")
    assert ret["B=y vs x"]["estimate"] == pytest.approx(10, abs=1.2)
    assert ret["A=b vs a"]["ci"][0] < 0 < ret["A=b vs a"]["ci"][1]
    assert ret["A=b vs a"]["p"] > 0.01
    # a metric fully determined by a factor: exact, zero-width intervals; a constant one skipped
    hit = terms(found, "events.hit")
    assert hit["A=b vs a"] == {"term": "A=b vs a", "estimate": pytest.approx(1.0), "ci": [pytest.approx(1.0)] * 2, "p": None}
    assert hit["A=b × B=y"]["estimate"] == 0.0 and hit["B=y vs x"]["ci"] == [0.0, 0.0]
    assert any("exact fit" in n for n in found.metrics["events.hit"].notes)
    assert found.skipped["steps"].startswith("constant")
    assert "variant" not in found.metrics and not any(k.startswith("variant") for k in found.skipped)


def test_three_level_factor_contrasts_against_the_first(store_url):
    rng = np.random.default_rng(1)
    means = {"m1": 5.0, "m2": 3.0, "m3": 8.0}
    episodes = [
        ({"agents.agent.model": m, "env.params.task": t}, {"score": means[m] + (1.0 if t == "t2" else 0.0) + rng.normal(0, 0.2)}, {})
        for _ in range(10) for m in means for t in ("t1", "t2")
    ]
    found = effects_of(store_url, make_run(store_url, "lvl3aaaa0000", episodes))
    assert found.factors["agents.agent.model"] == ["m1", "m2", "m3"]
    got = terms(found, "score")
    assert got["agents.agent.model=m2 vs m1"]["estimate"] == pytest.approx(-2.0, abs=0.3)
    assert got["agents.agent.model=m3 vs m1"]["estimate"] == pytest.approx(3.0, abs=0.3)
    assert got["env.params.task=t2 vs t1"]["estimate"] == pytest.approx(1.0, abs=0.3)
    interactions = [k for k in got if "×" in k]
    assert sorted(interactions) == ["agents.agent.model=m2 × env.params.task=t2", "agents.agent.model=m3 × env.params.task=t2"]
    for k in interactions:
        assert got[k]["ci"][0] < 0 < got[k]["ci"][1]


def test_unbalanced_design_and_list_levels(store_url):
    """Cells of 3, 20, 7 and 11 episodes; skills as lists: labels `[]` and `["care-first"]`."""
    rng = np.random.default_rng(5)
    sizes = {("[]", "m1"): 3, ("care", "m1"): 20, ("[]", "m2"): 7, ("care", "m2"): 11}
    episodes = []
    for (skill, model), n in sizes.items():
        skills: list[str] = [] if skill == "[]" else ["care-first"]
        for _ in range(n):
            y = 4 + 2.5 * (skill == "care") - 1.5 * (model == "m2") + rng.normal(0, 0.4)
            episodes.append(({"agents.agent.skills": skills, "agents.agent.model": model}, {"adherence_like": y}, {}))
    found = effects_of(store_url, make_run(store_url, "unbaaaaa0000", episodes))
    assert found.factors == {"agents.agent.skills": ["[]", '["care-first"]'], "agents.agent.model": ["m1", "m2"]}
    got = terms(found, "adherence_like")
    skill, model = got['agents.agent.skills=["care-first"] vs []'], got["agents.agent.model=m2 vs m1"]
    assert skill["ci"][0] < 2.5 < skill["ci"][1] and skill["estimate"] == pytest.approx(2.5, abs=0.6)
    assert model["ci"][0] < -1.5 < model["ci"][1]
    inter = got['agents.agent.skills=["care-first"] × agents.agent.model=m2']
    assert inter["ci"][0] < 0 < inter["ci"][1]
    assert found.metrics["adherence_like"].episodes == 41


def test_not_crossed_too_few_and_single_cells(store_url):
    # A and B never crossed (B only varies under A=a): no interaction, said so
    rng = np.random.default_rng(2)
    cells = [("a", "x"), ("a", "y"), ("b", "x")]
    episodes = [({"A": a, "B": b}, {"s": 1 + (a == "b") + 2 * (b == "y") + rng.normal(0, 0.1)}, {}) for _ in range(5) for a, b in cells]
    found = effects_of(store_url, make_run(store_url, "partaaaa0000", episodes))
    m = found.metrics["s"]
    assert [t.term for t in m.terms] == ["A=b vs a", "B=y vs x"]
    assert any("not fully crossed" in n for n in m.notes)
    # one episode per cell of a 2x2: no residual df with the interaction, so it is left out
    one = [({"A": a, "B": b}, {"s": float(i) + 0.5 * (a == "b")}, {}) for i, (a, b) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")])]
    found = effects_of(store_url, make_run(store_url, "oneaaaaa0000", one))
    m = found.metrics["s"]
    assert [t.term for t in m.terms] == ["A=b vs a", "B=y vs x"]
    assert any("interactions left out" in n and "too few episodes" in n for n in m.notes)
    # a level played once: its leverage is 1, HC3 is undefined, plain OLS errors (said so)
    lone = [({"A": "a"}, {"s": float(i % 3)}, {}) for i in range(6)] + [({"A": "b"}, {"s": 5.0}, {})]
    found = effects_of(store_url, make_run(store_url, "loneaaaa0000", lone))
    m = found.metrics["s"]
    assert m.se == "OLS" and any("leverage 1" in n for n in m.notes)
    t = m.terms[0]
    assert t.term == "A=b vs a" and t.estimate == pytest.approx(4.0) and t.ci[0] < 4.0 < t.ci[1]
    # two episodes, two levels: too few for anything beyond a line through two points
    two = [({"A": "a"}, {"s": 1.0}, {}), ({"A": "b"}, {"s": 2.0}, {})]
    found = effects_of(store_url, make_run(store_url, "twoaaaaa0000", two))
    assert "too few episodes" in found.skipped["s"]


def test_no_factors(store_url):
    plain = make_run(store_url, "flataaaa0000", [({}, {"s": float(i)}, {}) for i in range(4)])
    one = make_run(store_url, "onevaaaa0000", [({"A": "a", "B": "x"}, {"s": float(i)}, {}) for i in range(4)])
    for run_id in (plain, one):
        found = effects_of(store_url, run_id)
        assert found.factors == {} and found.metrics == {} and found.skipped == {}
        result = cli("report", run_id, "--effects", "--store", store_url)
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if "no factors" in line]
        assert len(lines) == 1 and run_id in lines[0]
    data = json.loads(cli("report", plain, "--effects", "--json", "--store", store_url).output)
    assert data["effects"] == {plain: {}} and data["effects_info"][plain]["factors"] == {}


def test_cli_json_shape_and_table(store_url):
    run_id = factorial_2x2(store_url)
    flat = make_run(store_url, "flataaaa0000", [({}, {"s": float(i)}, {}) for i in range(3)])
    result = cli("report", run_id, flat, "--effects", "--json", "--store", store_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"runs", "rows", "effects", "effects_info"}
    assert set(data["effects"]) == {run_id, flat}
    score = data["effects"][run_id]["score"]
    assert [t["term"] for t in score] == ["A=b vs a", "B=y vs x", "A=b × B=y"]
    for metric, rows in data["effects"][run_id].items():
        for t in rows:
            assert set(t) == {"term", "estimate", "ci", "p"}, metric
            assert isinstance(t["estimate"], float) and len(t["ci"]) == 2
            assert t["ci"][0] <= t["estimate"] <= t["ci"][1]
            assert t["p"] is None or 0.0 <= t["p"] <= 1.0
    info = data["effects_info"][run_id]
    assert info["factors"] == {"A": ["a", "b"], "B": ["x", "y"]} and info["se"]["score"] == "HC3"
    assert "steps" in info["skipped"]
    # without --effects the JSON is as before
    plain = json.loads(cli("report", run_id, "--json", "--store", store_url).output)
    assert set(plain) == {"runs", "rows"}
    table = cli("report", run_id, "--effects", "--store", store_url)
    assert table.exit_code == 0, table.output
    for text in ("effects, run", "A=b vs a", "A=b × B=y", "95% CI", "skipped steps: constant"):
        assert text in table.output, text


def test_cli_errors_and_reading_changes_nothing(store_url, tmp_path):
    run_id = factorial_2x2(store_url)
    result = cli("report", "nope", "--effects", "--store", store_url)
    assert result.exit_code == 2 and "no run 'nope'" in result.output
    absent = tmp_path / "absent.db"
    result = cli("report", "x", "--effects", "--store", f"sqlite:///{absent}")
    assert result.exit_code == 2 and not absent.exists()
    path = Path(store_url.removeprefix("sqlite:///"))
    settle(path)
    before = digest(path)
    assert cli("report", run_id, "--effects", "--store", store_url).exit_code == 0
    settle(path)
    assert digest(path) == before


def test_real_cli_subprocess_and_lazy_import(store_url, normlab_exe):
    run_id = factorial_2x2(store_url)
    done = subprocess.run([normlab_exe, "report", run_id, "--effects", "--json", "--store", store_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    terms_ = {t["term"]: t for t in json.loads(done.stdout)["effects"][run_id]["score"]}
    assert terms_["A=b × B=y"]["ci"][0] < 4.0 < terms_["A=b × B=y"]["ci"][1]
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom normlab.cli import app\n"
        f"r = CliRunner().invoke(app, ['report', '{run_id}', '--store', '{store_url}', '--json'])\n"
        "assert r.exit_code == 0, r.output\nassert 'statsmodels' not in sys.modules and 'pandas' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

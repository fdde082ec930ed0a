"""`normlab envs --details ID` and the episode metrics `runs show` prints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from normlab import envs


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "normlab.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("env_id", [s.id for s in envs.specs()])
def test_details_of_every_registered_env(env_id):
    found = envs.details(env_id)
    cls = envs.spec(env_id).load()
    assert found["id"] == env_id and found["doc"]
    assert found["events"] == dict(getattr(cls, "event_types", {}) or {})
    assert found["metrics"] == dict(getattr(cls, "metric_types", {}) or {})
    names = [p["name"] for p in found["params"]]
    assert "render_mode" not in names and len(names) == len(set(names))
    json.dumps(found, default=str)  # what --json prints


def test_details_cli_shows_params_defaults_events_and_metrics():
    out = cli("envs", "--details", "normlab/SupervisedShortcut-v0")
    assert out.returncode == 0, out.stderr
    for needle in ("parameters", "supervision", '"random"', "events", "rule_violation", "metrics", "violation_by_round"):
        assert needle in out.stdout
    data = json.loads(cli("envs", "--details", "normlab/SupervisedShortcut-v0", "--json").stdout)
    rounds = next(p for p in data["params"] if p["name"] == "rounds")
    assert rounds["default"] == 1 and rounds["type"] == "integer 1..10000"
    bad = cli("envs", "--details", "normlab/Nope-v0")
    assert bad.returncode == 2 and "unknown env id" in bad.stderr and "Traceback" not in bad.stderr
    listed = json.loads(cli("envs", "--json").stdout)
    assert {e["id"] for e in listed} == {s.id for s in envs.specs()}


def test_runs_show_prints_mean_metrics_and_an_episode_s_metrics(tmp_path):
    store = f"sqlite:///{tmp_path}/s.db"
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nenv: {id: normlab/SupervisedShortcut-v0, params: {supervision: never, rounds: 3}}\n"
        "agents: {agent: {kind: scripted, strategy: always_defect}}\nepisodes: 2\n"
    )
    ran = cli("run", str(path), "--store", store, "-q")
    run_id = ran.stdout.strip().splitlines()[-1]
    shown = cli("runs", "show", run_id, "--store", store)
    assert "mean metrics: violation_rate=1" in shown.stdout and "violation_by_round.3=1" in shown.stdout
    episode = cli("runs", "show", run_id, "--episode", "1", "--store", store)
    assert "metrics violation_rate=1" in episode.stdout
    data = json.loads(cli("runs", "show", run_id, "--episode", "1", "--store", store, "--json").stdout)
    assert data["metrics"]["violation_rate"] == 1.0 and data["rounds"] is None and data["variant"] is None

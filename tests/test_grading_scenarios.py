"""The grading scenarios: every shipped task is golden-checkable through avb_style_tasks.yaml,
and steering_skills.yaml crosses a skill with tasks as its comment says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from normlab.envs.tasks.catalog import task_names
from normlab.scenario import load_scenario, scenario_from_config

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "normlab.cli", *args], capture_output=True, text=True, timeout=600)


def test_avb_style_tasks_plays_every_shipped_task_and_golden_agents_score_their_pole(tmp_path):
    scenario = load_scenario(SCENARIOS / "avb_style_tasks.yaml")
    assert [v["env.params.task"] for v in scenario.design.variants] == list(task_names())
    assert scenario.agents["agent"].model == "local/smollm2-135m"  # the embedded default

    # the file's own matrix, with golden agents of both poles in place of the model
    config = scenario.model_dump(mode="json")
    config["agents"]["agent"] = {"kind": "scripted", "strategy": "golden", "params": {"pole": "A"}}
    config["matrix"]["agents.agent.params.pole"] = ["A", "B"]
    golden = scenario_from_config(config, scenario.source_text, str(SCENARIOS / "avb_style_tasks.yaml"))
    path = tmp_path / "golden.yaml"
    path.write_text(json.dumps(golden.model_dump(mode="json")))
    store = f"sqlite:///{tmp_path}/g.db"
    ran = cli("run", str(path), "--store", store, "--quiet")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.strip().splitlines()[-1]
    assert cli("grade", run_id, "--checkpoints-only", "--store", store).returncode == 0
    rows = json.loads(cli("report", run_id, "--json", "--store", store).stdout)["rows"]
    per_variant = [r for r in rows if r["variant"]]
    assert len(per_variant) == 2 * len(task_names())
    for row in per_variant:
        own = row["variant"]["agents.agent.params.pole"]
        other = "B" if own == "A" else "A"
        assert row["metrics"][f"adherence.{own}"]["mean"] == 10.0, row["variant"]
        assert row["metrics"][f"adherence.{other}"]["mean"] < 10.0, row["variant"]


def test_steering_skills_crosses_the_skill_with_care_tasks():
    scenario = load_scenario(SCENARIOS / "steering_skills.yaml")
    design = scenario.design
    assert design.factors == ["agents.agent.skills", "env.params.task"]
    assert len(design.variants) == 8 and scenario.total_episodes == 16
    skills = {tuple(design.scenario(v).agents["agent"].skills) for v in range(8)}
    assert skills == {(), ("care-first",)}
    from normlab.envs.tasks.catalog import load_task

    for task in scenario.matrix["env.params.task"]:
        poles = load_task(task).poles
        assert poles.value_system == "care_fairness" and "care" in (poles.A.value, poles.B.value)

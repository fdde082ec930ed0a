"""Trials and matrices: expansion, stored variant and trial, seeds independent of other
variants, resume, chains within a variant, per-variant agents and assets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from normlab.design import MatrixError
from normlab.episode import chain_of, jobs_for
from normlab.run import create_run, resume_run, run_sync
from normlab.runner import run_scenario
from normlab.scenario import ScenarioError, parse_scenario
from normlab.seeding import derive_seed
from normlab.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "avb"

IPD = """
name: design
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: 5, noise: 0.2}}}}
agents:
  player_0: {{kind: scripted, strategy: random, params: {{p: 0.5}}}}
  player_1: {{kind: scripted, strategy: tit_for_tat}}
seed: 7
{extra}
"""


def scenario(extra: str = "", text: str = IPD):
    return parse_scenario(text.format(extra=extra))


def stored(store: Store, run_id: str) -> dict[str, tuple]:
    """Per (variant, trial, repeat position): the seed and what was played."""
    out = {}
    for e in store.episodes(run_id):
        actions = tuple((s["agent"], s["action"]) for s in store.steps(e.id))
        key = (repr(sorted((e.variant or {}).items())), e.trial)
        out.setdefault(key, []).append((e.seed, e.returns, actions))
    return {k: tuple(v) for k, v in out.items()}


def test_plain_scenarios_keep_their_seeds_and_store_no_design(store_url):
    s = scenario("episodes: 3")
    assert s.total_episodes == 3 and s.design.plain
    store = Store(store_url)
    run_id = run_scenario(s, store)
    eps = store.episodes(run_id)
    assert [e.seed for e in eps] == [derive_seed("episode", 7, i) for i in range(3)]
    assert all(e.variant is None and e.trial is None for e in eps)


def test_matrix_expands_every_combination_in_order():
    s = scenario("episodes: 2\ntrials: 3\nmatrix: {env.params.rounds: [3, 4], agents.player_1.strategy: [tit_for_tat, always_defect, pavlov]}")
    d = s.design
    assert len(d.variants) == 6 and s.total_episodes == 6 * 3 * 2
    assert d.variants[0] == {"env.params.rounds": 3, "agents.player_1.strategy": "tit_for_tat"}
    assert d.variants[5] == {"env.params.rounds": 4, "agents.player_1.strategy": "pavlov"}
    cell = d.cell(2 * 3 * 2 + 1 * 2 + 1)  # variant 2, trial 1, repeat 1
    assert (cell.variant, cell.trial, cell.repeat) == (2, 1, 1)
    played = d.scenario(5)
    assert played.env.params["rounds"] == 4 and played.agents["player_1"].strategy == "pavlov"
    assert played.matrix is None and played.trials == 1
    assert s.env.params["rounds"] == 5  # the base is left alone


def test_stored_variant_and_trial_and_the_variant_is_what_was_played(store_url):
    s = scenario("trials: 2\nmatrix: {env.params.rounds: [2, 4]}")
    store = Store(store_url)
    run_id = run_scenario(s, store)
    eps = store.episodes(run_id)
    assert [(e.variant, e.trial) for e in eps] == [
        ({"env.params.rounds": 2}, 0),
        ({"env.params.rounds": 2}, 1),
        ({"env.params.rounds": 4}, 0),
        ({"env.params.rounds": 4}, 1),
    ]
    assert [e.num_steps for e in eps] == [2, 2, 4, 4]
    assert len({e.seed for e in eps}) == 4
    assert store.get_run(run_id).episodes_planned == 4


def test_trials_without_a_matrix_store_an_empty_variant(store_url):
    store = Store(store_url)
    run_id = run_scenario(scenario("trials: 3"), store)
    assert [(e.variant, e.trial) for e in store.episodes(run_id)] == [({}, 0), ({}, 1), ({}, 2)]


def test_adding_a_variant_or_a_trial_changes_no_other_episode(tmp_path):
    small = Store(f"sqlite:///{tmp_path}/a.db")
    big = Store(f"sqlite:///{tmp_path}/b.db")
    a = stored(small, run_scenario(scenario("episodes: 2\ntrials: 2\nmatrix: {agents.player_0.params.p: [0.2, 0.8]}"), small))
    # a value inserted before the others and one more trial: every old episode is the same
    b = stored(big, run_scenario(scenario("episodes: 2\ntrials: 3\nmatrix: {agents.player_0.params.p: [0.5, 0.2, 0.8]}"), big))
    assert len(a) == 4 and len(b) == 9
    for key, played in a.items():
        assert b[key] == played
    assert b[(repr([("agents.player_0.params.p", 0.5)]), 0)] != a[(repr([("agents.player_0.params.p", 0.2)]), 0)]


def test_resume_with_a_matrix_plays_exactly_the_missing_episodes(tmp_path):
    text = "episodes: 2\ntrials: 2\nmatrix: {env.params.rounds: [2, 3], agents.player_1.strategy: [tit_for_tat, pavlov]}"
    whole = Store(f"sqlite:///{tmp_path}/whole.db")
    expected = stored(whole, run_scenario(scenario(text), whole))

    store = Store(f"sqlite:///{tmp_path}/parts.db")
    s = scenario(text)
    run_id = create_run(store, s)
    run_sync(s, store, run_id, [0, 5, 6, 13])  # an interrupted run: some episodes stored
    _, todo = resume_run(store, run_id)
    assert todo == [i for i in range(16) if i not in (0, 5, 6, 13)]
    assert stored(store, run_id) == expected
    assert [e.index for e in store.episodes(run_id)] == list(range(16))


def test_processes_executor_plays_a_matrix_as_the_local_one_does(tmp_path):
    text = "episodes: 2\nmatrix: {env.params.rounds: [2, 3], agents.player_1.strategy: [tit_for_tat, pavlov]}"
    local = Store(f"sqlite:///{tmp_path}/local.db")
    expected = stored(local, run_scenario(scenario(text), local))
    store = Store(f"sqlite:///{tmp_path}/procs.db")
    s = scenario(text)
    run_id = create_run(store, s)
    run_sync(s, store, run_id, range(s.total_episodes), executor="processes", workers=2)
    assert stored(store, run_id) == expected


def test_chains_run_within_each_variant_and_trial():
    s = parse_scenario(
        """
name: chains
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 2}}
agents:
  player_0: {kind: llm, model: local/smollm2-135m, harness: reflective}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 4
chains: 2
trials: 2
matrix: {env.params.rounds: [2, 3]}
"""
    )
    assert s.total_episodes == 16
    assert chain_of(s, 0) == [0, 2] and chain_of(s, 3) == [1, 3]
    assert chain_of(s, 5) == [5, 7]  # trial 1 of variant 0 starts at 4
    assert chain_of(s, 14) == [12, 14]
    jobs = jobs_for(s, range(16))
    assert jobs[:4] == [[0, 2], [1, 3], [4, 6], [5, 7]] and len(jobs) == 8
    assert jobs_for(s, [6, 2, 9]) == [[2], [6], [9]]


def test_a_task_selector_expands_to_the_tasks_it_names():
    from normlab.envs.tasks.catalog import task_names

    s = parse_scenario(
        """
name: tasks
env: {id: normlab/ToolTask-v0}
agents: {agent: {kind: scripted, strategy: golden, params: {pole: A}}}
matrix: {env.params.task: ["refund_desk/*", hiring_screening/career_gap]}
"""
    )
    refunds = [t for t in task_names() if t.startswith("refund_desk/")]
    assert [v["env.params.task"] for v in s.design.variants] == [*refunds, "hiring_screening/career_gap"]


def test_an_avb_release_folder_expands_to_its_cases(tmp_path, monkeypatch):
    release = tmp_path / "release"
    shutil.copytree(FIXTURE, release)
    monkeypatch.chdir(tmp_path)
    s = parse_scenario(
        """
name: avb
env: {id: normlab/ToolTask-v0}
agents: {agent: {kind: scripted, strategy: random}}
matrix: {env.params.task: ["avb:release"]}
"""
    )
    tasks = [v["env.params.task"] for v in s.design.variants]
    assert len(tasks) == len(list((release / "case").glob("*.json"))) >= 2
    assert all(t.startswith("avb:") and t.endswith(".json") for t in tasks)


@pytest.mark.parametrize(
    ("matrix", "line", "needle"),
    [
        ("{seed: [1, 2]}", 6, "a matrix varies env, agents, max_steps"),
        ("{env.params.rounds: [3, 0]}", 6, "0 gives env.params.rounds"),
        ("{env.params.task: [3]}", 6, "gives env.params"),
        ("{agents.nobody.strategy: [pavlov]}", 6, "no seat 'nobody'"),
        ("{agents.player_1.strategy: [pavlov, nonsense]}", 6, "'nonsense' gives agents.player_1"),
        ("{env.params.rounds: [3, 3]}", 6, "listed twice"),
        ("{env.params.rounds: []}", 6, "at least 1"),
        ("{env.params.rounds: 3}", 6, "must be a valid list"),
    ],
)
def test_bad_matrices_are_located_in_the_file(matrix, line, needle):
    text = f"""name: bad
env: {{id: normlab/IteratedPrisonersDilemma-v0}}
agents:
  player_0: {{kind: scripted, strategy: pavlov}}
  player_1: {{kind: scripted, strategy: pavlov}}
matrix: {matrix}
"""
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "bad.yaml")
    assert len(err.value.problems) == 1, err.value.problems
    problem = err.value.problems[0]
    assert problem.line == line and needle in problem.message, str(problem)


def test_a_selector_matching_nothing_is_a_located_error():
    with pytest.raises(ScenarioError) as err:
        parse_scenario(
            """name: none
env: {id: normlab/ToolTask-v0}
agents: {agent: {kind: scripted, strategy: random}}
matrix:
  env.params.task: [refund_desk/late_refund, "nowhere/*"]
""",
            "none.yaml",
        )
    (problem,) = err.value.problems
    assert problem.line == 5 and "matches no shipped task" in problem.message and problem.path == "matrix.env.params.task.1"


def test_too_many_episodes_is_refused():
    with pytest.raises(ScenarioError, match="variants × trials × episodes"):
        scenario("episodes: 1000000\ntrials: 11\nmatrix: {env.params.rounds: [1, 2]}")
    with pytest.raises(MatrixError):
        from normlab.design import apply

        apply({"agents": {}}, "agents.x.model", "m")


def test_variants_resolve_their_own_skills_and_agent_ids(tmp_path, store_url):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "SKILL.md").write_text("---\nname: mine\ndescription: My own rule.\n---\nHelp the person in front of you.\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        """name: skills
env: {id: normlab/ToolTask-v0, params: {task: refund_desk/late_refund}}
agents: {agent: {kind: llm, model: local/smollm2-135m, harness: direct}}
matrix: {agents.agent.skills: [[], [mine/SKILL.md], [care-first]]}
"""
    )
    from normlab.assets import RunAssets, resolve_assets
    from normlab.scenario import load_scenario

    s = load_scenario(path)
    assets = resolve_assets(s)
    assert assets.skills["agent"] == [] and list(assets.variants) == [1, 2]
    assert [sk.name for sk in assets.of_variant(1).skills["agent"]] == ["mine"]
    assert [sk.name for sk in assets.of_variant(2).skills["agent"]] == ["care-first"]
    again = RunAssets.from_json(assets.to_json())  # stored with the run, used by resume
    assert again.of_variant(1).skills == assets.of_variant(1).skills and again.of_variant(0) is again
    ids = [assets.of_variant(v).agent_ids(s.design.scenario(v))["agent"] for v in (0, 1)]
    assert ids[0] != ids[1]


def test_model_override_refused_when_the_matrix_varies_models():
    from normlab.overrides import OverrideError, Overrides, apply_overrides

    s = parse_scenario(
        """name: models
env: {id: normlab/ToolTask-v0}
agents: {agent: {kind: llm, model: local/smollm2-135m}}
matrix: {agents.agent.model: [local/smollm2-135m, openai/gpt-4o-mini]}
"""
    )
    with pytest.raises(OverrideError, match="matrix varies agents.agent.model"):
        apply_overrides(s, Overrides(model="openai/gpt-4o"))


def test_cli_runs_grades_and_reports_a_matrix(tmp_path, store_url):
    path = tmp_path / "m.yaml"
    path.write_text(
        """name: golden_matrix
env: {id: normlab/ToolTask-v0}
agents: {agent: {kind: scripted, strategy: golden, params: {pole: A}}}
trials: 2
matrix: {env.params.task: [refund_desk/late_refund, hiring_screening/career_gap], agents.agent.params.pole: [A, B]}
"""
    )

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "normlab.cli", *args, "--store", store_url], capture_output=True, text=True, timeout=300)

    ran = cli("run", str(path), "--quiet")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.strip().splitlines()[-1]
    assert cli("grade", run_id, "--checkpoints-only").returncode == 0
    import json

    out = cli("report", run_id, "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert len(rows) == 5 and rows[-1]["variant"] == {} and rows[-1]["episodes"] == 8
    for row in rows[:4]:
        pole = row["variant"]["agents.agent.params.pole"]
        assert row["episodes"] == 2
        assert row["metrics"][f"adherence.{pole}"]["mean"] == 10.0
        assert row["metrics"][f"pass^2.{pole}"]["mean"] == 1.0 and row["metrics"]["flip_rate"]["mean"] == 0.0

    # two variants of one run: golden B against golden A, over both tasks and trials
    out = cli("compare", run_id, "--a", "agents.agent.params.pole=A", "--b", "agents.agent.params.pole=B", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["a"]["episodes"] == data["b"]["episodes"] == 4
    diff = data["metrics"]["adherence.A"]
    assert diff["a"] == 10.0 and diff["diff"] < 0 and diff["ci"][1] < 0
    one = cli("compare", run_id, "--a", "agents.agent.params.pole=A", "--a", "env.params.task=refund_desk/late_refund", "--b", "agents.agent.params.pole=A", "--json")
    assert json.loads(one.stdout)["a"]["episodes"] == 2
    bad = cli("compare", run_id, "--a", "agents.agent.params.pole=C", "--b", "agents.agent.params.pole=A")
    assert bad.returncode == 2 and "no variant with agents.agent.params.pole=\"C\"" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("compare", run_id).returncode == 2
    shown = json.loads(cli("runs", "show", run_id, "--json").stdout)["episodes_detail"]
    assert [(e["variant"]["agents.agent.params.pole"], e["trial"]) for e in shown[:3]] == [("A", 0), ("A", 1), ("B", 0)]
    table = cli("runs", "show", run_id)
    assert "variant" in table.stdout and "trial" in table.stdout


def test_an_episodes_override_that_makes_the_design_too_large_is_one_error():
    from normlab.overrides import Overrides, apply_overrides

    s = scenario("trials: 100\nmatrix: {env.params.rounds: [1, 2]}")
    with pytest.raises(ScenarioError, match="variants × trials × episodes is 200,000,000"):
        apply_overrides(s, Overrides(episodes=1_000_000))

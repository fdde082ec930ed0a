"""Resume plays from what the run stored, counts the budget as the first session did, and
takes the options that let a user fix the cause of a stop; the progress shows what is stored."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from normlab import runner as normlab_runner
from normlab.executors import local as local_executor
from normlab.cli import app
from normlab.models import mock
from normlab.scenario import load_scenario
from normlab.store import Store

cli = CliRunner()

SKILL = """---
name: my-rule
description: A rule written for this test.
---
{body}
"""


def write_scenario(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "s.yaml"
    path.write_text(text)
    return path


def prompts(url: str, run_id: str) -> list[str]:
    store = Store(url)
    return [
        m["content"]
        for ep in store.episodes(run_id)
        for call in store.model_calls(ep.id)
        for m in call["request"]
        if m["role"] == "system"
    ]


def test_resume_uses_the_stored_skill_texts_from_any_folder(tmp_path, monkeypatch):
    """cd elsewhere and edit the SKILL.md: the resumed half still gets the original text."""
    project = tmp_path / "project"
    (project / "skills" / "my-rule").mkdir(parents=True)
    skill_file = project / "skills" / "my-rule" / "SKILL.md"
    skill_file.write_text(SKILL.format(body="ORIGINAL RULE TEXT"))
    write_scenario(
        project,
        """
name: skilled
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 2}}
agents:
  player_0: {kind: llm, model: mock/skilled, skills: [my-rule]}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 4
cache: off
""",
    )
    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.chdir(project)
    scenario = load_scenario("s.yaml")  # a relative path, as typed
    store = Store(url)
    run_id = normlab_runner.create_run(store, scenario)
    normlab_runner.run_sync(scenario, store, run_id, [0, 1])
    store.set_status(run_id, "interrupted")

    skill_file.write_text(SKILL.format(body="EDITED RULE TEXT"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli.invoke(app, ["resume", run_id, "--store", url, "-q"])
    assert result.exit_code == 0, result.output
    texts = prompts(url, run_id)
    assert len(texts) == 8
    assert all("ORIGINAL RULE TEXT" in t and "EDITED" not in t for t in texts)
    run = Store(url).get_run(run_id)
    assert Path(run.scenario_path).is_absolute() and run.status == "finished"
    assert run.provenance["skills"]["player_0"][0]["body"] == "ORIGINAL RULE TEXT"


BUDGETED = """
name: budgeted
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 3}}
agents:
  player_0: {kind: llm, model: mock/budget, temperature: 0.0}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 10
seed: 3
"""


def test_cached_calls_never_count_against_a_budget_on_resume(tmp_path):
    """Episodes 0-4 are in the cache, 5-9 are not. Uninterrupted, the cached half is free and
    the budget covers the live half. Interrupted after the cached half and resumed, the run
    must count the same way and finish (it stopped at 7/10 when cached calls counted)."""
    mock.register("budget", {"reply": '{"action": 0} and some words to spend tokens'})
    try:
        folder = tmp_path / "s"
        stores = {}
        for name in ("whole", "resumed"):  # each store gets episodes 0-4 in its cache
            stores[name] = f"sqlite:///{tmp_path / name}.db"
            fill = cli.invoke(app, ["run", str(write_scenario(folder, BUDGETED)), "--store", stores[name], "-q", "--episodes", "5"])
            assert fill.exit_code == 0, fill.output
        half, _ = Store(stores["resumed"]).usage(fill.output.strip().splitlines()[-1])
        assert half > 0
        text = BUDGETED + f"budget: {{tokens: {half * 3 // 2}}}\n"  # the live half, with room to spare

        whole = cli.invoke(app, ["run", str(write_scenario(folder, text)), "--store", stores["whole"], "-q"])
        assert whole.exit_code == 0, whole.output

        scenario = load_scenario(write_scenario(folder, text))
        store = Store(stores["resumed"])
        run_id = normlab_runner.create_run(store, scenario)
        normlab_runner.run_sync(scenario, store, run_id, range(5))
        store.set_status(run_id, "interrupted")
        assert all(c["cache_hit"] for ep in store.episodes(run_id) for c in store.model_calls(ep.id))
        resumed = cli.invoke(app, ["resume", run_id, "--store", stores["resumed"], "-q"])
        assert resumed.exit_code == 0, resumed.output
        assert len(store.episodes(run_id)) == 10
    finally:
        mock.unregister("budget")


def test_resume_takes_budget_and_cache_options(tmp_path):
    mock.register("budget", {"reply": '{"action": 0} and some words to spend tokens'})
    try:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        path = write_scenario(tmp_path / "s", BUDGETED.replace("episodes: 10", "episodes: 10\ncache: off\nbudget: {tokens: 60}"))
        first = cli.invoke(app, ["run", str(path), "--store", url])
        assert first.exit_code == 3, first.output
        run_id = first.output.strip().splitlines()[-1]
        assert f"normlab resume {run_id} --store {url}" in " ".join(first.output.split())
        again = cli.invoke(app, ["resume", run_id, "--store", url, "-q"])
        assert again.exit_code == 3  # the stored budget is still spent
        assert again.output.strip().splitlines()[-1] == run_id
        more = cli.invoke(app, ["resume", run_id, "--store", url, "-q", "--budget-tokens", "1000000"])
        assert more.exit_code == 0, more.output
        assert len(Store(url).episodes(run_id)) == 10

        # a replay miss, then the cache turned back on
        path = write_scenario(tmp_path / "r", BUDGETED.replace("seed: 3", "seed: 4"))
        miss = cli.invoke(app, ["run", str(path), "--store", url, "--cache", "replay", "-q"])
        assert miss.exit_code == 1
        run_id = miss.output.strip().splitlines()[-1]  # printed even with -q on failure
        fixed = cli.invoke(app, ["resume", run_id, "--store", url, "--cache", "on", "-q"])
        assert fixed.exit_code == 0, fixed.output
        assert Store(url).get_run(run_id).status == "finished"
    finally:
        mock.unregister("budget")


def test_progress_counts_the_episodes_stored_when_a_run_stops(tmp_path, monkeypatch, recwarn):
    """On a budget stop every stored episode is shown as done (it showed 1/3 with 2 stored),
    and the calls the stop cancelled leave no 'coroutine ... was never awaited' warning."""
    mock.register("budget", {"reply": '{"action": 0} and some words to spend tokens'})
    seen: list[int] = []
    original = local_executor._EpisodeWriter._announce

    def announce(self, results):
        seen.extend(r.index for r in results)
        return original(self, results)

    monkeypatch.setattr(local_executor._EpisodeWriter, "_announce", announce)
    try:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        text = BUDGETED.replace("episodes: 10", "episodes: 30\ncache: off\nconcurrency: 4\nbudget: {tokens: 3000}")
        result = cli.invoke(app, ["run", str(write_scenario(tmp_path / "s", text)), "--store", url])
        assert result.exit_code == 3, result.output
        run_id = result.output.strip().splitlines()[-1]
        stored = sorted(e.index for e in Store(url).episodes(run_id))
        assert sorted(seen) == stored and stored
        assert not [w for w in recwarn if "never awaited" in str(w.message)]
    finally:
        mock.unregister("budget")


def test_resume_warns_when_a_tool_module_changed(tmp_path):
    """Tools are code: the run stores where they came from and a digest, and says so when
    the module differs on resume."""
    folder = tmp_path / "proj"
    folder.mkdir()
    module = folder / "resume_tools_mod.py"
    module.write_text("from langchain_core.tools import tool\n\n@tool\ndef lookup(q: str) -> str:\n    '''Look up.'''\n    return 'one'\n")
    path = write_scenario(
        folder,
        """
name: tooled
env: {id: normlab/SupervisedShortcut-v0}
agents:
  agent: {kind: llm, model: mock/tooled, harness: langchain, tools: ['resume_tools_mod:lookup']}
episodes: 2
cache: off
""",
    )
    mock.register("tooled", {"tool_calls": [{"name": "act", "arguments": {"action": 0}}]})
    try:
        url = f"sqlite:///{tmp_path / 't.db'}"
        scenario = load_scenario(path)
        store = Store(url)
        run_id = normlab_runner.create_run(store, scenario)
        run = store.get_run(run_id)
        (tool,) = run.provenance["tools"]["agent"]
        assert tool["ref"] == "resume_tools_mod:lookup" and tool["file"] == str(module.resolve())
        module.write_text(module.read_text().replace("'one'", "'two'"))
        os.utime(module)
        result = cli.invoke(app, ["resume", run_id, "--store", url])
        assert result.exit_code == 0, result.output
        assert "changed since the run started" in result.output
    finally:
        mock.unregister("tooled")

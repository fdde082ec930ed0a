"""Scenario files: malformed ones end in `file:line:col: path: message`, exit code 2, no traceback
and nothing in the store; good ones load; the JSON Schema describes every top-level key."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv
from typer.testing import CliRunner

from normlab.agents import STRATEGIES
from normlab.cli import app
from normlab.envs import registry
from normlab.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parent.parent
IPD = "normlab/IteratedPrisonersDilemma-v0"
STRATEGY_LIST = ", ".join(STRATEGIES)  # the built-in strategies, then each game's

# A valid scenario, lines 1-6; cases below append to it, so their extra lines start at line 7.
GOOD = """\
name: x
env:
  id: normlab/IteratedPrisonersDilemma-v0
agents:
  player_0: {kind: scripted, strategy: tit_for_tat}
  player_1: {kind: scripted, strategy: tit_for_tat}
"""

# (id, text, line, col, path, message, exact): `path` "" means a problem of the whole file (YAML
# syntax, not a mapping), printed as `file:line:col: message`; exact=False matches a message prefix.
# Line and column numbers are counted by hand (1-based) in the text shown.
CASES = [
    (
        "yaml-bad-indentation",
        # line 4: "   params: {}" -- the ':' at index 9 is where the scanner gives up
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\n   params: {}\nagents: {}\n",
        4, 10, "", "invalid YAML: mapping values are not allowed here", True,
    ),
    (
        "yaml-unclosed-bracket",
        # the flow mapping opened on line 2 runs into "agents:" on line 3; its ':' is at index 6
        "name: x\nenv: {id: normlab/IteratedPrisonersDilemma-v0\nagents: {}\n",
        3, 7, "", "invalid YAML: while parsing a flow mapping expected ',' or '}'", False,
    ),
    (
        "yaml-tab-indentation",
        "name: x\n\tenv: 1\n",
        2, 1, "", "invalid YAML: while scanning for the next token found character '\\t'", False,
    ),
    (
        "duplicate-top-level-key",
        "name: x\nname: y\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\n",
        2, 1, "", 'invalid YAML: while constructing a mapping found duplicate key "name"', False,
    ),
    (
        "duplicate-agent-key",
        GOOD + "  player_1: {kind: scripted, strategy: pavlov}\n",
        7, 3, "", 'invalid YAML: while constructing a mapping found duplicate key "player_1"', False,
    ),
    ("top-level-list", "- name: x\n- env: y\n", 1, 1, "", "a scenario must be a YAML mapping", True),
    ("top-level-scalar", "just a string\n", 1, 1, "", "a scenario must be a YAML mapping", True),
    ("empty-file", "", 1, 1, "", "a scenario must be a YAML mapping", True),
    (
        "unknown-top-level-key",
        GOOD + "episode: 3\n",
        7, 1, "episode", "unknown field; did you mean 'episodes'?", True,
    ),
    (
        "unknown-env-key",
        # "  idd: ..." on line 3: the key itself (col 3) is reported, with a hint
        "name: x\nenv:\n  idd: normlab/IteratedPrisonersDilemma-v0\nagents: {}\n",
        3, 3, "env.idd", "unknown field; did you mean 'id'?", True,
    ),
    (
        "unknown-agent-key",
        # line 5: "  player_0: {kind: scripted, strategy: tit_for_tat, strategi: x}", 'strategi' at index 52
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat, strategi: x}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        5, 53, "agents.player_0.strategi", "unknown field; did you mean 'strategy'?", True,
    ),
    (
        "missing-name",
        # nothing to point at: the position of the root mapping
        "env:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        1, 1, "name", "required field is missing", True,
    ),
    (
        "missing-env",
        "name: x\nagents:\n  player_0: {kind: scripted, strategy: tit_for_tat}\n",
        1, 1, "env", "required field is missing", True,
    ),
    (
        "missing-env-id",
        # env's mapping value starts at line 3, col 3
        "name: x\nenv:\n  params: {rounds: 3}\nagents: {}\n",
        3, 3, "env.id", "required field is missing", True,
    ),
    (
        "episodes-wrong-type",
        GOOD + "episodes: many\n",
        7, 11, "episodes", "must be a valid integer, not a string ('many')", True,
    ),
    (
        "episodes-fractional",
        GOOD + "episodes: 2.5\n",
        7, 11, "episodes", "must be a valid integer, not a number (2.5)", True,
    ),
    ("episodes-zero", GOOD + "episodes: 0\n", 7, 11, "episodes", "must be greater than or equal to 1", True),
    ("concurrency-zero", GOOD + "concurrency: 0\n", 7, 14, "concurrency", "must be greater than or equal to 1", True),
    (
        "concurrency-too-big",
        GOOD + "concurrency: 5000\n",
        7, 14, "concurrency", "must be less than or equal to 4096", True,
    ),
    ("seed-negative", GOOD + "seed: -1\n", 7, 7, "seed", "must be greater than or equal to 0", True),
    ("max-steps-zero", GOOD + "max_steps: 0\n", 7, 12, "max_steps", "must be greater than or equal to 1", True),
    (
        "tags-item-wrong-type",
        # line 7: "tags: [ok, {a: 1}]" -- the second item starts at index 11
        GOOD + "tags: [ok, {a: 1}]\n",
        7, 12, "tags.1", "must be a valid string, not a mapping", True,
    ),
    (
        "bad-agent-kind",
        # line 5: "  player_0: {kind: robot, ..." -- 'robot' at index 19
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: robot, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        5, 20, "agents.player_0.kind", "must be one of scripted, llm, human", True,
    ),
    (
        "missing-agent-kind",
        # player_1's mapping (which lacks kind) starts on line 7, col 5
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1:\n    strategy: tit_for_tat\n",
        7, 5, "agents.player_1.kind", "required field is missing (one of scripted, llm, human)", True,
    ),
    (
        "missing-strategy",
        # line 6: "  player_1: {kind: scripted}" -- the mapping starts at index 12
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted}\n",
        6, 13, "agents.player_1.strategy", "required field is missing", True,
    ),
    (
        "llm-temperature-out-of-range",
        # line 6: "  player_1: {kind: llm, temperature: 3}" -- '3' at index 37
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: llm, temperature: 3}\n",
        6, 38, "agents.player_1.temperature", "must be less than or equal to 2", True,
    ),
    (
        "unknown-strategy",
        # line 5: "  player_0: {kind: scripted, strategy: tit_for_tot}" -- 'tit_for_tot' at index 39
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tot}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        5, 40, "agents.player_0.strategy", f"must be one of {STRATEGY_LIST}; did you mean 'tit_for_tat'?", True,
    ),
    (
        "unknown-strategy-param",
        # line 10: "      q: 1" -- the value at index 9
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1:\n    kind: scripted\n    strategy: tit_for_tat\n    params:\n      q: 1\n",
        10, 10, "agents.player_1.params.q", "unknown parameter of tit_for_tat (parameters: message, number)", True,
    ),
    (
        "random-p-out-of-range",
        # line 6: "  player_1: {kind: scripted, strategy: random, params: {p: 1.5}}" -- '1.5' at index 59
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: random, params: {p: 1.5}}\n",
        6, 60, "agents.player_1.params.p", "must be a number between 0 and 1", True,
    ),
    (
        "fixed-illegal-action",
        # line 6: "  player_1: {kind: scripted, strategy: fixed, params: {action: 5}}" -- '5' at index 63
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: fixed, params: {action: 5}}\n",
        6, 64, "agents.player_1.params.action", "5 is not a legal action of Discrete(2)", True,
    ),
    (
        "unknown-env-id",
        # line 3: "  id: normlab/IteratedPrisonersDilema-v0" -- the value at index 6
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilema-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n",
        3, 7, "env.id",
        f"unknown env id 'normlab/IteratedPrisonersDilema-v0'; did you mean '{IPD}'?", True,
    ),
    (
        "unknown-env-param",
        # line 5: "    round: 3" -- the value at index 11
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\n  params:\n    round: 3\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        5, 12, "env.params.round", f"unknown parameter of {IPD}; did you mean 'rounds'?", True,
    ),
    (
        "env-param-rejected-by-env",
        # the env's message starts with the parameter's name, so its value (line 5, col 12) is reported
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\n  params:\n    noise: 2\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1: {kind: scripted, strategy: tit_for_tat}\n",
        5, 12, "env.params.noise", "noise must be between 0 and 1, got 2", True,
    ),
    (
        "agent-id-not-in-env",
        # line 7: "  player_2: {kind: ...}" -- its mapping at index 12
        GOOD + "  player_2: {kind: scripted, strategy: pavlov}\n",
        7, 13, "agents.player_2", f"not an agent of {IPD} (agents: player_0, player_1)", True,
    ),
    (
        "missing-agent-for-seat",
        # agents' mapping starts on line 5, col 3
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n",
        5, 3, "agents", f"no config for agent(s) player_1 of {IPD}", True,
    ),
    (
        "single-agent-env-wrong-agent-id",
        # the Gymnasium env's only seat is called "agent"
        "name: x\nenv:\n  id: normlab/SupervisedShortcut-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: always_cooperate}\n",
        5, 13, "agents.player_0", "not an agent of normlab/SupervisedShortcut-v0 (agents: agent)", True,
    ),
]

# a handful go through the real console script, to prove nothing but the message reaches stderr
SUBPROCESS_CASES = {"yaml-bad-indentation", "bad-agent-kind", "env-param-rejected-by-env", "unknown-strategy-param"}


def _line_pattern(file: str, line: int, col: int, path: str, message: str, exact: bool) -> re.Pattern[str]:
    head = re.escape(f"{file}:{line}:{col}: ") + (re.escape(f"{path}: ") if path else "")
    return re.compile(head + re.escape(message) + ("$" if exact else ""))


def _invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "line", "col", "path", "message", "exact"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_malformed_scenario_is_reported_at_its_node(request, tmp_path, db_rows, normlab_exe, text, line, col, path, message, exact):
    case_id = request.node.callspec.id
    file = tmp_path / "scenario.yaml"
    file.write_text(text, encoding="utf-8")
    url = f"sqlite:///{tmp_path}/x.db"
    args = ["run", str(file), "--store", url]
    if case_id in SUBPROCESS_CASES:
        proc = subprocess.run([normlab_exe, *args], capture_output=True, text=True, timeout=60)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        code, stdout, stderr = _invoke(args)

    assert code == 2, stderr + stdout
    assert "Traceback" not in stdout + stderr
    pattern = _line_pattern(str(file), line, col, path, message, exact)
    lines = stderr.splitlines()
    assert any(pattern.match(x) for x in lines), f"no line matches {pattern.pattern!r} in:\n{stderr}"
    # every line on stderr is a located problem: file:line:col: ...
    assert all(re.match(re.escape(str(file)) + r":\d+:\d+: \S", x) for x in lines), stderr
    assert stdout.strip() == ""
    assert db_rows(url, "run") == 0


def test_all_problems_of_a_file_are_reported_at_once(tmp_path):
    file = tmp_path / "many.yaml"
    file.write_text(
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: robot}\n"
        "  player_1: {kind: scripted, strategy: pavlov}\n"
        "episodes: many\nconcurrency: 0\nepisode: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(file)
    where = {(p.line, p.col, p.path) for p in info.value.problems}
    assert where == {(5, 20, "agents.player_0.kind"), (7, 11, "episodes"), (8, 14, "concurrency"), (9, 1, "episode")}


def test_file_name_with_markup_is_printed_literally(tmp_path):
    """Problems are printed through rich; a `[red]` in the file name must not be taken as a style."""
    file = tmp_path / "[bold]s[red].yaml"
    file.write_text(GOOD + "episodes: 0\n", encoding="utf-8")
    code, _, stderr = _invoke(["validate", str(file)])
    assert code == 2
    assert stderr.splitlines() == [f"{file}:7:11: episodes: must be greater than or equal to 1"]


# --- strategies that need a two-action env ---------------------------------------------------


class ThreeActionEnv(ParallelEnv):
    """A stand-in multi-agent env whose seats have three actions (no registered env has)."""

    metadata = {"name": "test/ThreeAction-v0"}

    def __init__(self, rounds: int = 1):
        self.possible_agents = ["a", "b"]
        self.agents: list[str] = []

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(3)

    def observation_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(1)

    def close(self) -> None:
        pass


@pytest.fixture
def three_action_env(monkeypatch):
    env_id = "test/ThreeAction-v0"
    spec = registry.EnvSpec(env_id, f"{__name__}:ThreeActionEnv", "parallel", "three actions")
    monkeypatch.setitem(registry._SPECS, env_id, spec)
    return env_id


def test_two_action_strategy_on_a_three_action_env(three_action_env):
    text = (
        f"name: x\nenv:\n  id: {three_action_env}\nagents:\n"
        "  a: {kind: scripted, strategy: tit_for_tat}\n"
        "  b: {kind: scripted, strategy: random, params: {p: 0.5}}\n"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "three.yaml")
    shown = [str(p) for p in info.value.problems]
    assert "three.yaml:5:33: agents.a.strategy: tit_for_tat needs a two-action env (0 cooperate, 1 defect), not Discrete(3)" in shown
    assert "three.yaml:6:53: agents.b.params.p: p needs a two-action env; leave it out for uniform play" in shown
    # the same seats with strategies that fit any discrete space are fine
    ok = text.replace("strategy: tit_for_tat", "strategy: fixed, params: {action: 2}").replace(", params: {p: 0.5}", "")
    assert parse_scenario(ok).agents["a"].params == {"action": 2}


# --- located right, even in corners of YAML ---------------------------------------------------


def test_empty_value_is_reported_on_its_own_line(tmp_path):
    """`player_1:` with nothing after it is a null on line 6. ruamel gives an empty value the
    position of the next token (here `episodes:` on line 7), so the error must not use it."""
    text = (
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: {kind: scripted, strategy: tit_for_tat}\n"
        "  player_1:\n"
        "episodes: 2\n"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "null.yaml")
    (problem,) = info.value.problems
    assert problem.path == "agents.player_1"
    assert problem.line == 6, str(problem)


def test_error_inside_a_yaml_merge_key_is_located_without_a_traceback(tmp_path):
    """`<<: *anchor` is ordinary YAML; a bad value that arrives through it must still give a
    located problem (exit 2), not a TypeError from the locator (exit 1)."""
    file = tmp_path / "merge.yaml"
    file.write_text(
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: &base {kind: scripted, strategy: tit_for_tot}\n"
        "  player_1: {<<: *base}\n",
        encoding="utf-8",
    )
    code, stdout, stderr = _invoke(["validate", str(file)])
    assert code == 2, stdout + stderr
    lines = stderr.splitlines()
    assert any(re.match(re.escape(f"{file}:5:") + r"\d+: agents\.player_0\.strategy: must be one of", x) for x in lines), stderr
    # player_1's strategy comes from line 5 (the anchor) and is written on line 6 (the merge)
    assert any(re.match(re.escape(f"{file}:") + r"[56]:\d+: agents\.player_1\.strategy: must be one of", x) for x in lines), stderr


def test_merge_key_without_errors_loads(tmp_path):
    text = (
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\nagents:\n"
        "  player_0: &base {kind: scripted, strategy: pavlov}\n"
        "  player_1: {<<: *base}\n"
    )
    scenario = parse_scenario(text)
    assert scenario.agents["player_1"].strategy == "pavlov"


# --- files that cannot be read ------------------------------------------------------------------


def test_missing_file_is_one_line_and_exit_2(tmp_path, normlab_exe, db_rows):
    missing = tmp_path / "nope.yaml"
    url = f"sqlite:///{tmp_path}/x.db"
    proc = subprocess.run([normlab_exe, "run", str(missing), "--store", url], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{missing}:1:1: no such file"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert db_rows(url, "run") == 0


@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
def test_unreadable_file_is_one_line_and_exit_2(tmp_path, kind):
    if kind == "directory":
        target = tmp_path / "adir"
        target.mkdir()
    else:
        target = tmp_path / "latin1.yaml"
        target.write_bytes(b"name: caf\xe9\n")
    code, stdout, stderr = _invoke(["run", str(target), "--store", f"sqlite:///{tmp_path}/x.db"])
    assert code == 2
    (line,) = stderr.splitlines()
    assert line.startswith(f"{target}:1:1: cannot read: ")
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "x.db").exists()


# --- validate, schema, shipped scenarios ---------------------------------------------------------


def test_validate_good_file(tmp_path):
    file = tmp_path / "good.yaml"
    file.write_text(GOOD, encoding="utf-8")
    code, stdout, stderr = _invoke(["validate", str(file)])
    assert code == 0, stderr
    assert stdout.strip() == f"ok {file}"
    assert stderr == ""


def test_validate_reports_only_the_bad_file(tmp_path):
    good_a, bad, good_b = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    good_a.write_text(GOOD, encoding="utf-8")
    good_b.write_text(GOOD.replace("tit_for_tat}\n", "pavlov}\n"), encoding="utf-8")
    bad.write_text(GOOD + "episodes: 0\n", encoding="utf-8")
    code, stdout, stderr = _invoke(["validate", str(good_a), str(bad), str(good_b)])
    assert code == 2
    assert stdout.splitlines() == [f"ok {good_a}", f"ok {good_b}"]
    assert stderr.splitlines() == [f"{bad}:7:11: episodes: must be greater than or equal to 1"]


def test_validate_writes_no_store(tmp_path):
    file = tmp_path / "good.yaml"
    file.write_text(GOOD, encoding="utf-8")
    assert _invoke(["validate", str(file)])[0] == 0
    assert not (tmp_path / "env-default.db").exists()


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_parse(path):
    scenario = parse_scenario(path.read_text(encoding="utf-8"), str(path))
    assert isinstance(scenario, Scenario)
    assert scenario.name == path.stem
    assert scenario.source_path == str(path)
    assert len(scenario.source_hash) == 64


def test_shipped_scenarios_exist():
    assert len(list((REPO / "scenarios").glob("*.yaml"))) >= 3


def test_loaded_scenario_keeps_its_source(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text(GOOD + "episodes: 4\nseed: 9\ntags: [a, b]\n", encoding="utf-8")
    scenario = load_scenario(file)
    assert (scenario.episodes, scenario.seed, scenario.tags) == (4, 9, ["a", "b"])
    assert scenario.source_text == file.read_text(encoding="utf-8")
    assert scenario.source_path == str(file)
    assert scenario.agents["player_0"].strategy == "tit_for_tat"


def test_schema_command_prints_json_schema():
    code, stdout, stderr = _invoke(["schema"])
    assert code == 0, stderr
    schema = json.loads(stdout)
    for key in ("name", "env", "agents", "episodes", "seed", "max_steps", "concurrency", "store", "tags"):
        assert key in schema["properties"], key
    assert set(schema["required"]) >= {"name", "env", "agents"}
    assert schema.get("additionalProperties") is False


def test_schema_checks_each_envs_params(tmp_path):
    """`normlab schema` applies an env's Params schema to `env.params` by its id, so an editor
    (here jsonschema) flags what `normlab validate` flags."""
    import jsonschema
    from ruamel.yaml import YAML

    code, stdout, stderr = _invoke(["schema"])
    assert code == 0, stderr
    schema = json.loads(stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    ids = schema["$defs"]["EnvConfig"]["properties"]["id"]["examples"]
    assert {"normlab/IteratedPrisonersDilemma-v0", "normlab/IteratedPrisonersDilemma-noisy-v0", "normlab/SupervisedShortcut-v0"} <= set(ids)
    assert schema["$defs"]["env.normlab_IteratedPrisonersDilemma-noisy-v0"]["properties"]["noise"]["default"] == 0.05

    def errors(text: str) -> list[tuple[str, ...]]:
        found = validator.iter_errors(YAML(typ="safe").load(text))
        return [tuple(map(str, jsonschema.exceptions.best_match([e]).absolute_path)) for e in found]

    ipd = "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-v0\n  params: {}\nagents:\n  player_0: {kind: scripted, strategy: pavlov}\n"
    assert errors(ipd.replace("{}", "{rounds: 3, payoffs: {T: 4}, noise: 0.1}")) == []
    assert errors(ipd.replace("{}", "{rounds: '3'}")) == [("env", "params", "rounds")]
    assert errors(ipd.replace("{}", "{payoffs: {T: five}}")) == [("env", "params", "payoffs", "T")]
    assert errors(ipd.replace("{}", "{noise: 2}")) == [("env", "params", "noise")]
    assert errors(ipd.replace("{}", "{round: 3}")) == [("env", "params")]
    # the Shortcut's params do not apply to the IPD, nor the IPD's to an unknown id
    assert errors(ipd.replace("{}", "{supervision: never}")) == [("env", "params")]
    assert errors(ipd.replace("{}", "{rounds: '3'}").replace("normlab/IteratedPrisonersDilemma-v0", "mine/Env-v0")) == []
    shortcut = ipd.replace("IteratedPrisonersDilemma-v0", "SupervisedShortcut-v0")
    assert errors(shortcut.replace("{}", "{supervision: never, roles: [baker]}")) == []
    assert errors(shortcut.replace("{}", "{roles: [astronaut]}")) == [("env", "params", "roles", "0")]
    for path in Path(__file__).parents[1].joinpath("scenarios").glob("*.yaml"):
        assert errors(path.read_text(encoding="utf-8")) == [], path


def test_variant_params_are_checked_against_the_envs_params(tmp_path):
    text = (
        "name: x\nenv:\n  id: normlab/IteratedPrisonersDilemma-noisy-v0\n  params: {noise: 1.5, payoffs: {T: x}}\n"
        "agents:\n  player_0: {kind: scripted, strategy: pavlov}\n  player_1: {kind: scripted, strategy: pavlov}\n"
    )
    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario(text)
    shown = [str(p) for p in excinfo.value.problems]
    assert shown == [
        "<scenario>:4:19: env.params.noise: noise must be between 0 and 1, got 1.5",
        "<scenario>:4:37: env.params.payoffs.T: payoffs['T'] must be a finite number, got 'x'",
    ]
    ok = parse_scenario(text.replace("noise: 1.5, payoffs: {T: x}", "rounds: 3"))
    assert ok.env.params == {"rounds": 3}

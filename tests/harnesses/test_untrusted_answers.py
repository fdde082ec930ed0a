"""Model output is untrusted: odd numbers are invalid answers, stored requests are exactly
what was sent, and a model that keeps calling side tools is still brought to act."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from normlab.requests import INVALID
from normlab.cli import app
from normlab.harnesses.actions import ActionFormat
from normlab.models import mock
from normlab.store import Store
from gymnasium import spaces

runner = CliRunner()
HUGE = "9" * 5000
ODD = ["1e999", "-1e999", "NaN", "Infinity", HUGE, f"-{HUGE}", "1.5", "true", '"1e999"']


@pytest.mark.parametrize("number", ODD)
def test_odd_numbers_are_invalid_answers_not_exceptions(number):
    fmt = ActionFormat(spaces.Discrete(2), ["cooperate", "defect"])
    action, error = fmt.parse(f'{{"action": {number}}}')
    assert action is INVALID and error
    action, error = fmt.parse(number)
    assert action is INVALID and error


@pytest.mark.parametrize("number", ["1e999", "NaN", HUGE])
def test_odd_numbers_in_a_box_space_are_invalid(number):
    fmt = ActionFormat(spaces.Box(low=0, high=1, shape=(1,), dtype="int64"))
    action, error = fmt.parse(f'{{"action": [{number}]}}')
    assert action is INVALID and error


def run_cli(tmp_path: Path, agent: str, env: str = "normlab/SupervisedShortcut-v0", seat: str = "agent") -> tuple[str, str]:
    path = tmp_path / "s.yaml"
    other = "" if seat == "agent" else "\n  player_1: {kind: scripted, strategy: tit_for_tat}"
    path.write_text(f"name: odd\nenv: {{id: {env}}}\nagents:\n  {seat}: {agent}{other}\ncache: off\nepisodes: 2\n")
    url = f"sqlite:///{tmp_path / 'o.db'}"
    result = runner.invoke(app, ["run", str(path), "--store", url, "-q"])
    assert result.exit_code == 0, result.output
    return url, result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("number", ["1e999", "NaN", HUGE])
@pytest.mark.parametrize("harness", ["direct", "react"])
def test_odd_numbers_from_a_model_end_as_invalid_actions(tmp_path, number, harness):
    """Each odd answer is re-asked, then the env's fallback; the run finishes."""
    mock.register("odd", {"reply": f'{{"action": {number}}}'})
    try:
        url, run_id = run_cli(tmp_path, f"{{kind: llm, model: mock/odd, harness: {harness}, max_iterations: 2}}")
    finally:
        mock.unregister("odd")
    store = Store(url)
    for ep in store.episodes(run_id):
        assert ep.metrics["events"].get("invalid_action", 0) >= 1 or any(
            "invalid" in (s["info"].get("harness") or {}) for s in store.steps(ep.id)
        )


@pytest.mark.parametrize("number", ["1e999", "NaN", HUGE])
def test_odd_numbers_as_tool_call_arguments(tmp_path, number):
    def behaviour(messages, **params):
        return {"content": None, "tool_calls": [{"name": "act", "raw": f'{{"action": {number}}}'}]}

    mock.register("oddtool", behaviour)
    try:
        url, run_id = run_cli(tmp_path, "{kind: llm, model: mock/oddtool, harness: react, max_iterations: 2}")
    finally:
        mock.unregister("oddtool")
    store = Store(url)
    (ep, _) = store.episodes(run_id)
    notes = [s["info"].get("harness", {}) for s in store.steps(ep.id)]
    assert all("invalid" in n for n in notes)


@pytest.mark.parametrize("harness", ["direct", "react", "reflective", "langchain"])
def test_stored_request_is_exactly_what_was_sent(tmp_path, harness):
    """Every stored request equals the messages the provider received, call by call."""
    received: list[list[dict]] = []

    def behaviour(messages, **params):
        received.append([{"role": m.get("role"), "content": m.get("content")} for m in messages])
        return ["blah blah", '{"action": 1}'][(len(received) - 1) % 2]

    mock.register("exact", behaviour)
    try:
        url, run_id = run_cli(tmp_path, f"{{kind: llm, model: mock/exact, harness: {harness}, max_reasks: 2, max_iterations: 3}}")
    finally:
        mock.unregister("exact")
    store = Store(url)
    stored = [
        [{"role": m.get("role"), "content": m.get("content")} for m in call["request"]]
        for ep in store.episodes(run_id)
        for call in store.model_calls(ep.id)
    ]
    assert len(stored) == len(received) >= 4
    assert stored == received


def test_side_tools_do_not_keep_a_model_from_acting(tmp_path):
    """A model that always calls load_skill is offered `act` alone after max side calls."""
    offered: list[list[str]] = []

    def behaviour(messages, **params):
        names = [t["function"]["name"] for t in params.get("tools") or []]
        offered.append(names)
        if "load_skill" in names:
            return {"content": None, "tool_calls": [{"name": "load_skill", "arguments": {"name": "care-first"}}]}
        return {"content": None, "tool_calls": [{"name": "act", "arguments": {"action": 0}}]}

    mock.register("skillful", behaviour)
    try:
        url, run_id = run_cli(
            tmp_path,
            "{kind: llm, model: mock/skillful, harness: react, skills: [care-first], skills_mode: on_demand, max_iterations: 8}",
        )
    finally:
        mock.unregister("skillful")
    store = Store(url)
    for ep in store.episodes(run_id):
        (step,) = store.steps(ep.id)
        assert step["action"] == 0
        assert step["info"]["harness"]["forced_action"] == {"after_side_calls": 3}
        calls = store.model_calls(ep.id)
        assert [c["params"].get("tool_choice") for c in calls][-1] == {"type": "function", "function": {"name": "act"}}
    assert offered[3] == ["act"]

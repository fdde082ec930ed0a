"""The human player: prompts on stderr, answers from stdin, the live display paused while asked,
and every action space it can be asked for."""

from __future__ import annotations

import asyncio
import io
import re
import string
import subprocess
import sys

import numpy as np
import pytest
from gymnasium import spaces
from rich.console import Console

from normlab import interactive
from normlab.agents import AgentContext, AgentError
from normlab.agents.human import HumanAgent, read_answer
from normlab.store import Store

HUMAN_IPD = """
name: human-seat
env: {id: normlab/IteratedPrisonersDilemma-v0, params: {rounds: 2}}
agents:
  player_0: {kind: human, name: Ada}
  player_1: {kind: scripted, strategy: tit_for_tat}
episodes: 1
"""


def agent_for(space: spaces.Space, answers: list[str], meanings=None, seen: list | None = None) -> tuple[HumanAgent, Console]:
    feed = iter(answers)

    def fake_input(prompt: str) -> str:
        if seen is not None:
            seen.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    console = Console(record=True, width=300)
    context = AgentContext(agent_id="player_0", action_space=space, action_meanings=meanings)
    return HumanAgent(context, input_fn=fake_input, console=console), console


# --- the terminal: stderr for the player, stdout for scripts ------------------------------------


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_run_with_a_human_seat_keeps_prompts_off_stdout(tmp_path, quiet):
    path = tmp_path / "h.yaml"
    path.write_text(HUMAN_IPD)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "normlab.cli", "run", str(path), "--store", url, *(["-q"] if quiet else [])],
        input="maybe\n0\ndefect\n", capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    if quiet:  # RID=$(normlab run ... -q) gets the run id and nothing else
        (line,) = proc.stdout.splitlines()
    else:  # the summary, then the run id; never the player's prompts
        line = proc.stdout.strip().splitlines()[-1]
        assert "your action" not in proc.stdout and "Round 1" not in proc.stdout
    assert re.fullmatch(r"[0-9a-f]{12}", line)
    assert proc.stderr.count("Ada, your action (0 = cooperate, 1 = defect): ") == 3
    assert "maybe is not a legal action" in proc.stderr
    assert "Round 1 of 2 is next" in proc.stderr and "Round 2 of 2 is next" in proc.stderr
    moves = [s["action"] for s in Store(url).iter_steps(line) if s["agent"] == "player_0"]
    assert moves == [0, 1]


def test_read_answer_prompts_on_stderr(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("1\n"))
    assert read_answer("your action: ") == "1"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "your action: "
    with pytest.raises(EOFError):
        read_answer("again: ")


def test_default_console_is_stderr(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("1\n"))
    context = AgentContext(agent_id="p", action_space=spaces.Discrete(2), rules="Be kind.")
    agent = HumanAgent(context)
    asyncio.run(agent.reset(0))
    assert asyncio.run(agent.act({"text": "Be kind.\nYour move."}, {})) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Your move." in captured.err and captured.err.count("Be kind.") == 1


class FakeLive:
    """A live display: counts stops and starts, and says whether it is stopped now."""

    def __init__(self) -> None:
        self.stops = self.starts = 0

    @property
    def running(self) -> bool:
        return self.starts >= self.stops

    def stop(self) -> None:
        self.stops += 1

    def start(self) -> None:
        self.starts += 1


@pytest.fixture
def live():
    display = FakeLive()
    interactive.set_live_display(display)
    yield display
    interactive.set_live_display(None)


def test_live_display_is_paused_while_the_player_types(live):
    states = []
    agent, _ = agent_for(spaces.Discrete(2), ["x", "1"])
    original = agent.input_fn
    agent.input_fn = lambda prompt: (states.append(live.running), original(prompt))[1]
    assert asyncio.run(agent.act({"text": "t"}, {})) == 1
    assert states == [False, False]  # stopped at both prompts
    assert live.stops == live.starts == 1  # one pause around the whole exchange, then restarted


def test_live_display_restarts_when_the_input_closes(live):
    agent, _ = agent_for(spaces.Discrete(2), [])
    with pytest.raises(AgentError, match="input closed"):
        asyncio.run(agent.act({"text": "t"}, {}))
    assert live.stops == live.starts == 1


# --- action spaces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, answers, expected",
    [
        (spaces.MultiDiscrete([3, 2]), ["[3, 0]", "x", "[1.5, 0]", "2 1"], [2, 1]),
        (spaces.MultiDiscrete([3, 2]), ["[2, 1, 0]", "1, 0"], [1, 0]),
        (spaces.MultiBinary(3), ["[1, 2, 0]", "[1, 0, 1]"], [1, 0, 1]),
        (spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32), ["[0.5, 2]", "NaN", "0.5, 0.25"], [0.5, 0.25]),
        (spaces.Box(-1.0, 1.0, shape=(), dtype=np.float64), ["5", "-0.5"], -0.5),
        (spaces.Box(0, 10, shape=(1,), dtype=np.int64), ["2.5", "7"], [7]),
    ],
)
def test_array_spaces_take_json_or_numbers(space, answers, expected):
    agent, console = agent_for(space, answers)
    action = asyncio.run(agent.act({"text": "t"}, {}))
    assert space.contains(action)
    np.testing.assert_allclose(action, expected)
    assert console.export_text().count("is not a legal action") == len(answers) - 1


def test_text_space_takes_the_line_as_typed():
    space = spaces.Text(max_length=12, charset=string.printable)
    agent, console = agent_for(space, ["this line is far too long", " hello there"])
    assert asyncio.run(agent.act({"text": "say something"}, {})) == " hello there"
    assert "to 12 characters" in console.export_text()  # it says what it expects


def test_text_space_names_a_small_charset():
    agent, console = agent_for(spaces.Text(max_length=12), ["two words", "oneword"])
    assert asyncio.run(agent.act({"text": "t"}, {})) == "oneword"
    assert "from '0123456789ABC" in console.export_text()


def test_dict_space_takes_a_json_object():
    space = spaces.Dict({"move": spaces.Discrete(2), "bid": spaces.Box(0.0, 5.0, shape=(1,))})
    agent, _ = agent_for(space, ['{"move": 3, "bid": [1]}', '{"move": 1, "bid": [2.5]}'])
    action = asyncio.run(agent.act({"text": "t"}, {}))
    assert action["move"] == 1 and float(action["bid"][0]) == 2.5 and space.contains(action)


def test_prompt_says_what_each_space_expects():
    seen: list[str] = []
    for space in (spaces.MultiDiscrete([3, 2]), spaces.Box(0.0, 1.0, shape=(2,)), spaces.Text(8)):
        agent, _ = agent_for(space, [], seen=seen)
        with pytest.raises(AgentError):
            asyncio.run(agent.act({"text": "t"}, {}))
    multi, box, text = seen
    assert "2 whole numbers" in multi and "0-2, 0-1" in multi
    assert "2 numbers" in box and "from 0 to 1" in box
    assert "line of text" in text


def test_turn_request_is_asked_with_its_own_names():
    """A turn's request that differs from the static space's (roles drawn per episode) is
    asked with its own options."""
    from normlab.requests import Choice

    seen: list[str] = []
    agent, console = agent_for(spaces.Discrete(2), ["cooperate", "report"], meanings=["cooperate", "defect"], seen=seen)
    assert asyncio.run(agent.act({"text": "t"}, {}, Choice(("stay quiet", "report")))) == 1
    assert seen[0] == "player_0, your action (0 = stay quiet, 1 = report): "
    assert "Not a legal answer: 'cooperate' is not one of 0 = stay quiet, 1 = report. Try again." in console.export_text()


def test_tool_call_space_is_played_with_tool_calls():
    from normlab.spaces import ToolCall

    tool = {"name": "move", "description": "Move.", "parameters": {"type": "object", "properties": {"dir": {"enum": ["n", "s"]}}, "required": ["dir"]}}
    agent, console = agent_for(ToolCall([tool]), ["move", 'move {"dir": "s"}'])
    assert asyncio.run(agent.act({"text": "t"}, {})) == {"tool": "move", "arguments": {"dir": "s"}}
    assert "move (action, ends your turn): Move." in console.export_text()


def test_unplayable_space_is_refused_up_front():
    space = spaces.Sequence(spaces.Discrete(2))
    with pytest.raises(AgentError, match="cannot play a Sequence action space"):
        agent_for(space, ["[1]"])


def test_episodes_with_a_human_seat_run_one_at_a_time(tmp_path):
    """One person, one terminal: whatever the concurrency, the runner asks one episode at a
    time, in order (with concurrency 4 the prompts of four episodes interleaved)."""
    path = tmp_path / "h.yaml"
    path.write_text(HUMAN_IPD.replace("episodes: 1", "episodes: 3\nconcurrency: 4"))
    url = f"sqlite:///{tmp_path / 'h.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "normlab.cli", "run", str(path), "--store", url, "-q", "--concurrency", "4"],
        input="0\n1\n" * 3, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    store = Store(url)
    moves = [[s["action"] for s in store.steps(ep.id) if s["agent"] == "player_0"] for ep in store.episodes(run_id)]
    assert moves == [[0, 1]] * 3  # each episode got its own two answers, in order

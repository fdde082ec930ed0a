"""Scripted strategies and the human player."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from gymnasium import spaces
from rich.console import Console

from normlab.agents import STRATEGIES, AgentContext, AgentError, check_config
from normlab.agents.human import HumanAgent
from normlab.scenario import ScriptedAgentConfig

TWO = spaces.Discrete(2)


def obs(mine: int, theirs: int) -> dict:
    return {"my_moves": np.array([mine]), "opponent_moves": np.array([theirs]), "text": ""}


def play(strategy: str, opponent_moves: list[int], params: dict | None = None, seed: int = 0) -> list[int]:
    """Feed a strategy the other player's moves (1 = C, 2 = D) round by round."""
    agent = STRATEGIES[strategy](TWO, params)
    asyncio.run(agent.reset(seed))
    mine, last_mine, last_theirs = [], 0, 0
    for theirs in [0, *opponent_moves]:
        action = asyncio.run(agent.act(obs(last_mine, theirs if theirs else last_theirs), {}))
        mine.append(action)
        last_mine, last_theirs = action + 1, theirs
    return mine


C, D = 1, 2


def test_fixed_policies():
    assert play("always_cooperate", [D, D, C]) == [0, 0, 0, 0]
    assert play("always_defect", [C, C, C]) == [1, 1, 1, 1]
    assert play("fixed", [C, D], {"action": 1}) == [1, 1, 1]


def test_tit_for_tat_copies_last_move():
    assert play("tit_for_tat", [C, D, D, C, C]) == [0, 0, 1, 1, 0, 0]


def test_grim_trigger_never_forgives():
    assert play("grim_trigger", [C, D, C, C, C]) == [0, 0, 1, 1, 1, 1]


def test_pavlov_win_stay_lose_shift():
    # CC -> C; C vs D (sucker) -> shift to D; D vs C (temptation) -> stay D; D vs D -> shift to C
    assert play("pavlov", [C, D, C, D, C]) == [0, 0, 1, 1, 0, 0]


def test_random_is_seeded_and_respects_p():
    a = play("random", [C] * 400, {"p": 0.25}, seed=3)
    b = play("random", [C] * 400, {"p": 0.25}, seed=3)
    c = play("random", [C] * 400, {"p": 0.25}, seed=4)
    assert a == b and a != c
    assert 0.17 < sum(a) / len(a) < 0.33
    assert set(play("random", [C] * 50, {"p": 0.0})) == {0}
    assert set(play("random", [C] * 50, {"p": 1.0})) == {1}


def test_random_uniform_over_other_discrete_spaces():
    agent = STRATEGIES["random"](spaces.Discrete(5, start=2))
    asyncio.run(agent.reset(1))
    seen = {asyncio.run(agent.act({}, {})) for _ in range(200)}
    assert seen == {2, 3, 4, 5, 6}


@pytest.mark.parametrize(
    "strategy, params, space, fragment",
    [
        ("nope", {}, TWO, "must be one of"),
        ("random", {"p": 1.5}, TWO, "between 0 and 1"),
        ("random", {"q": 1}, TWO, "unknown parameter"),
        ("fixed", {"action": 2}, TWO, "not a legal action"),
        ("tit_for_tat", {}, spaces.Discrete(3), "needs a two-action env"),
        ("random", {"p": 0.5}, spaces.Discrete(3), "needs a two-action env"),
    ],
)
def test_check_config_reports_problems(strategy, params, space, fragment):
    problems = check_config(ScriptedAgentConfig(kind="scripted", strategy=strategy, params=params), space)
    assert problems and fragment in problems[0][1]


def test_check_config_accepts_good_configs():
    for name in STRATEGIES:
        params = {"actions": [0, 1]} if name == "script" else {}
        assert check_config(ScriptedAgentConfig(kind="scripted", strategy=name, params=params), TWO) == []


def human(answers: list[str], meanings=("cooperate", "defect")) -> tuple[HumanAgent, Console]:
    feed = iter(answers)

    def fake_input(prompt: str) -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    console = Console(record=True, width=200)
    context = AgentContext(agent_id="player_0", action_space=TWO, action_meanings=list(meanings), rules="Be nice.")
    return HumanAgent(context, input_fn=fake_input, console=console), console


def test_human_asks_again_until_legal():
    agent, console = human(["7", "maybe", "", "1"])
    asyncio.run(agent.reset(0))
    action = asyncio.run(agent.act({"text": "Round 1 [red]of[/red] 10"}, {}))
    assert action == 1
    text = console.export_text()
    assert "Round 1 [red]of[/red] 10" in text  # observation text is shown literally
    assert "Be nice." in text
    assert text.count("is not a legal action") == 3


def test_human_accepts_action_names():
    agent, _ = human(["Defect"])
    assert asyncio.run(agent.act({"text": "x"}, {})) == 1


def test_human_closed_input_is_an_agent_error():
    agent, _ = human([])
    with pytest.raises(AgentError, match="input closed"):
        asyncio.run(agent.act({"text": "x"}, {}))

"""Scripted strategies and the human player answer every kind of per-turn request."""

from __future__ import annotations

import asyncio
import json
import string

import numpy as np
import pytest
from gymnasium import spaces
from rich.console import Console

from normlab.agents import STRATEGIES, AgentContext, AgentError, check_config
from normlab.agents.base import Decision, as_decision
from normlab.agents.human import HumanAgent, read_request
from normlab.agents.scripted import DEFAULT_MESSAGE, least_json
from normlab.requests import (
    INVALID,
    Choice,
    Composite,
    Integer,
    Number,
    Request,
    SpaceRequest,
    Text,
    Tool,
    Tools,
    request_for_space,
)
from normlab.scenario import ScriptedAgentConfig

LOOK = Tool(
    "look",
    "Look in a direction.",
    {"type": "object", "properties": {"where": {"type": "string", "enum": ["north", "south"]}}, "required": ["where"]},
    query=True,
)
MOVE = Tool(
    "move",
    "Move one step.",
    {"type": "object", "properties": {"dir": {"enum": ["n", "s"]}, "steps": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["dir"], "additionalProperties": False},
)
SAY = Tool("say", "Say something.", {"type": "object", "properties": {"text": {"type": "string", "minLength": 2, "pattern": "^[A-Z]"}}, "required": ["text"]})


def tools(*offered: Tool, answers: list | None = None) -> Tools:
    """A tool request bound to an answer that records the query calls it gets."""

    def answer(call: dict) -> dict:
        if answers is not None:
            answers.append(call)
        return {"success": True, "seen": f"[red]a wall[/red] to the {call['arguments'].get('where')}"}

    return Tools(offered).bound(answer)


DILEMMA = Choice(("cooperate", "defect"))
EVERY_KIND: list[Request] = [
    DILEMMA,
    Choice(("north", "south", "east")),
    Choice(("rock", "paper", "scissors"), ("r", "p", "s")),
    Choice(("only",), ("x",)),
    Integer(0, 10),
    Integer(-5, -2),
    Number(0.5, 2.5),
    Text(200, tag="speech"),
    Text(2, tag="plan", characters=frozenset("ab")),
    Text(12, min_chars=6),
    Composite.of(message=Text(100), keep=Integer(0, 10), move=DILEMMA),
    Composite.of(bid=Number(0.0, 1.0), pick=Choice(("a", "b", "c"))),
    tools(LOOK, MOVE),
    tools(SAY),
    SpaceRequest(spaces.MultiDiscrete([3, 2])),
    SpaceRequest(spaces.MultiBinary(3)),
    SpaceRequest(spaces.Box(0.0, 1.0, shape=(2,))),
    SpaceRequest(spaces.Box(-np.inf, np.inf, shape=(2,))),
    SpaceRequest(spaces.Tuple((spaces.Discrete(2), spaces.Text(5, charset=string.ascii_letters)))),
]
KIND_IDS = [f"{r.kind}{i}" for i, r in enumerate(EVERY_KIND)]
#: every strategy answers every kind legally: each game's own (normlab.agents.strategies)
#: answer other games' requests as the generic strategies do
PLAYERS = [name for name in STRATEGIES if name != "script"]


def obs(mine: int = 0, theirs: int = 0) -> dict:
    return {"my_moves": np.array([mine]), "opponent_moves": np.array([theirs]), "text": ""}


def plain(value):
    """An action as comparable plain data (arrays as lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def actions_of(strategy: str, request: Request, seed: int = 0, turns: int = 4, params: dict | None = None, space=None) -> list:
    agent = STRATEGIES[strategy](space or spaces.Text(500), params)
    asyncio.run(agent.reset(seed))
    return [asyncio.run(agent.act(obs(1, 2 if t % 2 else 1), {}, request)) for t in range(turns)]


# --- scripted strategies ---------------------------------------------------------------------


@pytest.mark.parametrize("request_", EVERY_KIND, ids=KIND_IDS)
@pytest.mark.parametrize("strategy", PLAYERS)
def test_every_strategy_answers_every_kind_legally_and_reproducibly(strategy, request_):
    first = actions_of(strategy, request_, seed=7)
    for action in first:
        assert action is not INVALID and not isinstance(action, Decision)
        coerced, error = request_.coerce(plain(action))
        assert error is None, (strategy, action, error)
        if isinstance(request_, Tools):  # a scripted player never ends its turn with a lookup
            assert not request_.is_query(coerced["tool"])
    assert plain(actions_of(strategy, request_, seed=7)) == plain(first)


def test_answers_per_kind_follow_the_move():
    coop = {r.kind + str(i): a for i, r in enumerate(EVERY_KIND) for a in actions_of("always_cooperate", r, turns=1)}
    defect = {r.kind + str(i): a for i, r in enumerate(EVERY_KIND) for a in actions_of("always_defect", r, turns=1)}
    assert (coop["choice0"], defect["choice0"]) == (0, 1)
    assert (coop["choice1"], defect["choice1"]) == (0, 2)  # first option, last option
    assert (coop["choice2"], defect["choice2"]) == ("r", "s")
    assert coop["choice3"] == defect["choice3"] == "x"
    assert (coop["integer4"], defect["integer4"]) == (0, 10)  # low takes least, high most
    assert (coop["integer5"], defect["integer5"]) == (-5, -2)
    assert (coop["number6"], defect["number6"]) == (0.5, 2.5)
    assert coop["text7"] == defect["text7"] == DEFAULT_MESSAGE
    assert coop["text8"] == ""  # no allowed character of "OK." is left
    assert coop["text9"] == DEFAULT_MESSAGE.ljust(6)
    assert coop["composite10"] == {"message": DEFAULT_MESSAGE, "keep": 0, "move": 0}
    assert defect["composite10"] == {"message": DEFAULT_MESSAGE, "keep": 10, "move": 1}
    assert coop["tool12"] == defect["tool12"] == {"tool": "move", "arguments": {"dir": "n"}}
    assert plain(coop["space14"]) == [0, 0] and plain(defect["space14"]) == [2, 1]
    assert plain(coop["space17"]) == [0.0, 0.0]
    assert plain(coop["space18"]) == [0, "OK"]


def test_message_and_number_params():
    params = {"message": "Let us all keep the pool full.", "number": 3.6}
    assert actions_of("always_defect", Text(200), params=params, turns=1) == ["Let us all keep the pool full."]
    assert actions_of("always_defect", Text(6), params=params, turns=1) == ["Let us"]
    assert actions_of("always_defect", Integer(0, 10), params=params, turns=1) == [4]
    assert actions_of("always_defect", Integer(5, 10), params=params, turns=1) == [5]  # clamped
    assert actions_of("always_defect", Number(0.0, 2.0), params=params, turns=1) == [2.0]
    composite = Composite.of(say=Text(50), take=Integer(0, 10))
    assert actions_of("tit_for_tat", composite, params=params, turns=1) == [{"say": "Let us all keep the pool full.", "take": 4}]


def test_reacting_strategies_carry_their_move_into_other_kinds():
    request = Composite.of(message=Text(50), keep=Integer(0, 10), move=DILEMMA)
    agent = STRATEGIES["grim_trigger"](spaces.Text(50))
    asyncio.run(agent.reset(0))
    seen = [asyncio.run(agent.act(obs(1, theirs), {}, request)) for theirs in (1, 2, 1, 1)]
    assert [s["move"] for s in seen] == [0, 1, 1, 1]
    assert [s["keep"] for s in seen] == [0, 10, 10, 10]
    tft = actions_of("tit_for_tat", Integer(0, 10), turns=4)  # the other player defects on odd turns
    assert tft == [0, 10, 0, 10]


def test_random_draws_from_the_request_and_depends_on_the_seed():
    request = Composite.of(message=Text(20), keep=Integer(0, 100))
    a, b, c = (actions_of("random", request, seed=s, turns=20) for s in (3, 3, 4))
    assert a == b and a != c
    assert len({x["keep"] for x in a}) > 5 and len({x["message"] for x in a}) > 5
    calls = actions_of("random", tools(LOOK, MOVE, SAY), seed=1, turns=30)
    assert {c["tool"] for c in calls} == {"move", "say"}  # action tools only, arguments that pass
    # p applies to a two-action choice inside a composite
    always = actions_of("random", Composite.of(move=DILEMMA, keep=Integer(0, 3)), params={"p": 1.0}, turns=10)
    assert {x["move"] for x in always} == {1}


def test_fixed_plays_its_action_where_the_request_accepts_it():
    assert actions_of("fixed", Integer(0, 10), params={"action": 7}, turns=2) == [7, 7]
    assert actions_of("fixed", Integer(0, 5), params={"action": 7}, turns=1) == [0]  # elsewhere a cooperator
    assert actions_of("fixed", Choice(("rock", "paper"), ("r", "p")), params={"action": "paper"}, turns=1) == ["p"]
    assert actions_of("fixed", Text(20), params={"action": "hello"}, turns=1) == ["hello"]
    assert actions_of("fixed", Text(20), turns=1) == [DEFAULT_MESSAGE]  # 0 is no text
    composite = Composite.of(say=Text(20), move=DILEMMA)
    assert actions_of("fixed", composite, params={"action": 1}, turns=1) == [{"say": DEFAULT_MESSAGE, "move": 1}]
    assert actions_of("fixed", composite, params={"action": {"say": "hi", "move": 1}}, turns=1) == [{"say": "hi", "move": 1}]
    first, second = actions_of("fixed", SpaceRequest(spaces.MultiBinary(2)), params={"action": [1, 0]}, turns=2)
    assert plain(first) == plain(second) == [1, 0] and first is not second  # never one mutable object twice


@pytest.mark.parametrize("strategy", PLAYERS)
def test_two_action_games_play_exactly_as_before(strategy):
    """The static request of a two-action game (named options) gives what the request-less
    call gives, turn by turn, and never leaves the fast path."""
    static = request_for_space(spaces.Discrete(2), ["cooperate", "defect"])
    params = {"p": 0.3} if strategy == "random" else None
    plays = []
    for request in (None, static):
        agent = STRATEGIES[strategy](spaces.Discrete(2), params)
        if strategy != "fixed":  # fixed answers each request once, then repeats it
            agent.answer = None  # the slow path would fail
        asyncio.run(agent.reset(11))
        plays.append([asyncio.run(agent.act(obs(1, 2 if t % 3 else 1), {}, request)) for t in range(40)])
    assert plays[0] == plays[1]
    assert all(type(a) is int and a in (0, 1) for a in plays[0])


def test_random_two_action_draws_are_unchanged():
    """The same draws as the strategy made before requests: uniform over Discrete(2) with
    `start + rng.integers(n)`, or `rng.random() < p`."""
    old = np.random.default_rng(5)
    expected = [int(0 + old.integers(2)) for _ in range(50)]
    assert actions_of("random", DILEMMA, seed=5, turns=50, space=spaces.Discrete(2)) == expected
    old = np.random.default_rng(5)
    expected = [1 if old.random() < 0.4 else 0 for _ in range(50)]
    assert actions_of("random", DILEMMA, seed=5, turns=50, params={"p": 0.4}, space=spaces.Discrete(2)) == expected


def test_least_json_gives_the_plainest_arguments():
    assert least_json(MOVE.parameters) == {"dir": "n"}
    assert least_json({"type": "object", "properties": {"n": {"type": "integer", "minimum": 2}, "x": {"type": "number", "maximum": -1}, "b": {"type": "boolean"}, "l": {"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 1}}}, "required": ["n", "x", "b", "l"]}) == {"n": 2, "x": -1.0, "b": False, "l": ["a", "a"]}


# --- the script strategy ----------------------------------------------------------------------


def script(actions: list, then="invalid", space=None):
    agent = STRATEGIES["script"](space or spaces.Text(100), {"actions": actions, "then": then})
    asyncio.run(agent.reset(0))
    return agent


def turn(agent, request) -> Decision:
    result = asyncio.run(agent.act({}, {}, request))
    assert isinstance(result, Decision)
    return result


def test_script_answers_queries_inside_the_turn_then_acts():
    asked: list = []
    request = tools(LOOK, MOVE, answers=asked)
    agent = script([
        {"tool": "look", "arguments": {"where": "north"}},
        {"tool": "look", "arguments": {"where": "south"}},
        {"tool": "move", "arguments": {"dir": "n"}},
        {"tool": "move", "arguments": {"dir": "s", "steps": 2}},
    ])
    first = turn(agent, request)
    assert first.action == {"tool": "move", "arguments": {"dir": "n"}}
    assert [q["call"]["arguments"]["where"] for q in first.notes["queries"]] == ["north", "south"]
    assert first.notes["queries"][0]["result"]["seen"].endswith("to the north")
    assert asked == [{"tool": "look", "arguments": {"where": "north"}}, {"tool": "look", "arguments": {"where": "south"}}]
    second = turn(agent, request)
    assert second.action == {"tool": "move", "arguments": {"dir": "s", "steps": 2}} and second.notes is None
    third = turn(agent, request)  # the list is done: then invalid
    assert third.action is INVALID and "no more actions" in third.notes["script"]
    assert as_decision(third).action is INVALID


def test_script_items_the_request_refuses_are_invalid():
    request = tools(LOOK, MOVE)
    agent = script([
        {"tool": "move", "arguments": {"dir": "west"}},
        {"tool": "look", "arguments": {}},
        {"tool": "fly", "arguments": {}},
        "defect",
        {"tool": "move", "arguments": {"dir": "s"}},
    ])
    outcomes = [turn(agent, request) for _ in range(5)]
    assert [o.action is INVALID for o in outcomes] == [True, True, True, True, False]
    assert "dir" in outcomes[0].notes["error"] and "where" in outcomes[1].notes["error"]
    assert "fly" in outcomes[2].notes["error"]
    # a query call where the turn asks no tools is refused too
    assert turn(script([{"tool": "look", "arguments": {"where": "north"}}]), DILEMMA).action is INVALID


def test_script_plays_values_of_any_kind():
    agent = script(["defect", 0, "hello", 7, {"message": "hi", "keep": 3}, 2.5])
    requests = [DILEMMA, DILEMMA, Text(10), Integer(0, 10), Composite.of(message=Text(10), keep=Integer(0, 10)), Number(0, 3)]
    assert [turn(agent, r).action for r in requests] == [1, 0, "hello", 7, {"message": "hi", "keep": 3}, 2.5]


@pytest.mark.parametrize(
    "then, expected",
    [("invalid", [1, 0, INVALID, INVALID]), ("repeat", [1, 0, 0, 0]), ("cycle", [1, 0, 1, 0]), ({"action": 1}, [1, 0, 1, 1])],
)
def test_script_then(then, expected):
    agent = script([1, 0], then=then, space=spaces.Discrete(2))
    assert [turn(agent, None).action for _ in range(4)] == expected  # None: the static request


def test_script_of_queries_alone_cannot_loop_forever():
    agent = script([{"tool": "look", "arguments": {"where": "north"}}], then="cycle")
    outcome = turn(agent, tools(LOOK, MOVE))
    assert outcome.action is INVALID and "only queries" in outcome.notes["script"]
    assert len(outcome.notes["queries"]) >= 1


def test_script_restarts_each_episode():
    agent = script([1, 0], space=spaces.Discrete(2))
    assert turn(agent, None).action == 1
    asyncio.run(agent.reset(1))
    assert turn(agent, None).action == 1


# --- checks -----------------------------------------------------------------------------------


def problems(strategy: str, params: dict, space) -> list[str]:
    return [message for _, message in check_config(ScriptedAgentConfig(kind="scripted", strategy=strategy, params=params), space)]


@pytest.mark.parametrize(
    "strategy, params, space, fragment",
    [
        ("script", {}, spaces.Text(10), "non-empty list"),
        ("script", {"actions": "move"}, spaces.Text(10), "non-empty list"),
        ("script", {"actions": [0], "then": "again"}, spaces.Text(10), "invalid, repeat, cycle"),
        ("script", {"actions": [{"tool": "move", "arguments": 3}]}, spaces.Text(10), "a tool call is"),
        ("script", {"actions": [0, 5]}, spaces.Discrete(2), "5 is not a legal action"),
        ("script", {"actions": [0], "message": "hi"}, spaces.Text(10), "unknown parameter of script"),
        ("tit_for_tat", {"message": 3}, spaces.Text(10), "must be a string"),
        ("always_defect", {"number": float("nan")}, spaces.Text(10), "finite number"),
        ("pavlov", {"mesage": "hi"}, spaces.Text(10), "unknown parameter of pavlov (parameters: message, number)"),
        ("grim_trigger", {}, spaces.Discrete(4), "needs a two-action env"),
    ],
)
def test_check_reports_problems(strategy, params, space, fragment):
    found = problems(strategy, params, space)
    assert any(fragment in p for p in found), found


@pytest.mark.parametrize(
    "strategy, params, space",
    [
        # envelopes whose turns may ask a dilemma, a text or a number
        ("tit_for_tat", {"message": "I copy you."}, spaces.Text(100)),
        ("grim_trigger", {"number": 2}, spaces.Dict({"message": spaces.Text(10), "keep": spaces.Discrete(2)})),
        ("always_defect", {}, spaces.Box(0, 10, shape=(), dtype=np.int64)),
        ("random", {"p": 0.2}, spaces.Text(100)),
        ("fixed", {"action": "hello"}, spaces.Text(100)),
        ("script", {"actions": [{"tool": "look", "arguments": {"where": "north"}}, "defect", 1], "then": {"action": 0}}, spaces.Text(100)),
        ("script", {"actions": [0, "defect"], "then": "cycle"}, spaces.Discrete(2)),
        ("script", {"actions": [0]}, None),
    ],
)
def test_check_accepts_playable_configs(strategy, params, space):
    assert problems(strategy, params, space) == []


# --- the human player ---------------------------------------------------------------------------


def player(answers: list[str], space=None, meanings=None, seen: list | None = None) -> tuple[HumanAgent, Console]:
    feed = iter(answers)

    def fake_input(prompt: str) -> str:
        if seen is not None:
            seen.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    console = Console(record=True, width=400)
    context = AgentContext(agent_id="p0", action_space=space or spaces.Text(500), action_meanings=meanings)
    return HumanAgent(context, name="Ada", input_fn=fake_input, console=console), console


def ask(agent: HumanAgent, request: Request | None):
    return asyncio.run(agent.act({"text": "Your turn."}, {}, request))


@pytest.mark.parametrize(
    "request_, answers, expected",
    [
        (DILEMMA, ["maybe", "3", "defect"], 1),
        (DILEMMA, [" 0 "], 0),
        (Choice(("rock", "paper", "scissors"), ("r", "p", "s")), ["4", "lizard", "2"], "p"),
        (Choice(("rock", "paper", "scissors"), ("r", "p", "s")), ["Scissors"], "s"),
        (Choice(("rock", "paper", "scissors"), ("r", "p", "s")), ["r"], "r"),
        (Integer(0, 10), ["eleven", "12", "2.5", "", "7"], 7),
        (Number(0.5, 2.5), ["abc", "nan", "3", "1.25"], 1.25),
        (Text(12, tag="speech"), ["this line is far too long", "  hi there  "], "  hi there  "),
        (Text(5, characters=frozenset("ab ")), ["abc", "ab ba"], "ab ba"),
        (
            Composite.of(message=Text(10), keep=Integer(0, 10), move=DILEMMA),
            ["{bad", "[1]", '{"message": "hi", "keep": 11, "move": 0}', '{"message": "hi", "keep": 3, "move": "defect"}'],
            {"message": "hi", "keep": 3, "move": 1},
        ),
        (tools(LOOK, MOVE), ["move", 'move {"dir": "n"'], None),  # the closed input
        (tools(LOOK, MOVE), ['{"tool": "move", "arguments": {"dir": "s"}}'], {"tool": "move", "arguments": {"dir": "s"}}),
        (tools(LOOK, MOVE), ['move {"dir": "n", "steps": 2}'], {"tool": "move", "arguments": {"dir": "n", "steps": 2}}),
        (SpaceRequest(spaces.MultiDiscrete([3, 2])), ["[3, 0]", "2 1"], [2, 1]),
    ],
)
def test_human_answers_every_kind_asking_again_after_bad_input(request_, answers, expected):
    agent, console = player(answers)
    if expected is None:
        with pytest.raises(AgentError, match="input closed"):
            ask(agent, request_)
        assert console.export_text().count("Not a legal answer") == len(answers)
        return
    action = ask(agent, request_)
    assert plain(action) == expected
    assert request_.coerce(plain(action))[1] is None
    text = console.export_text()
    assert text.count("Not a legal answer") == len(answers) - 1
    assert "Traceback" not in text
    assert all(line.startswith("Not a legal answer") for line in text.splitlines() if "Not a legal" in line)


def test_human_query_is_answered_and_asked_again_in_the_turn():
    asked: list = []
    request = tools(LOOK, MOVE, answers=asked)
    agent, console = player(['look {"where": "north"}', "look", 'fly {}', '{"tool": "move", "arguments": {"dir": "n"}}'])
    result = ask(agent, request)
    assert isinstance(result, Decision)
    assert result.action == {"tool": "move", "arguments": {"dir": "n"}}
    assert result.notes == {"queries": [{"call": {"tool": "look", "arguments": {"where": "north"}}, "result": {"success": True, "seen": "[red]a wall[/red] to the north"}}]}
    assert asked == [{"tool": "look", "arguments": {"where": "north"}}]
    text = console.export_text()
    assert "look says:" in text and "[red]a wall[/red] to the north" in text  # shown literally, not as markup
    assert "look (lookup, answered now): Look in a direction." in text
    assert "move (action, ends your turn)" in text
    assert text.count("Not a legal answer") == 2


def test_human_prompts_say_what_to_type():
    seen: list[str] = []
    requests = [
        DILEMMA,
        Choice(("[b]rock[/b]", "paper"), ("r", "p")),
        Integer(0, 10),
        Text(40, tag="speech"),
        Composite.of(message=Text(10), keep=Integer(0, 10)),
        tools(LOOK, MOVE),
    ]
    consoles = []
    for request in requests:
        agent, console = player([], seen=seen)
        with pytest.raises(AgentError):
            ask(agent, request)
        consoles.append(console.export_text())
    choice, named, integer, speech, composite, call = seen
    assert choice == "Ada, your action (0 = cooperate, 1 = defect): "
    assert "its number, 1 to 2, or its name" in named and "1) [b]rock[/b]" in consoles[1]  # escaped
    assert "a whole number from 0 to 10" in integer
    assert speech.startswith("Ada, your speech (a text (speech) of at most 40 characters")
    assert '"keep": a whole number from 0 to 10' in composite
    assert '{"tool": <name>, "arguments": {...}}' in call and "<name> {...}" in call


def test_human_static_request_is_asked_as_the_space():
    """The runner's request for a static space asks as before: its words, its complaint."""
    seen: list[str] = []
    space = spaces.Discrete(2)
    agent, console = player(["maybe", "defect"], space=space, meanings=["cooperate", "defect"], seen=seen)
    assert ask(agent, request_for_space(space, ["cooperate", "defect"])) == 1
    assert seen[0] == "Ada, your action (0 = cooperate, 1 = defect): "
    assert "maybe is not a legal action; expected 0 = cooperate, 1 = defect." in console.export_text()
    box = spaces.Box(0, 10, shape=(1,), dtype=np.int64)
    agent, _ = player(["7"], space=box)
    assert plain(ask(agent, request_for_space(box))) == [7]


def test_human_closed_input_is_an_agent_error_for_every_kind():
    for request in EVERY_KIND:
        agent, _ = player([])
        with pytest.raises(AgentError, match="input closed"):
            ask(agent, request)


def test_read_request_never_raises_on_odd_input():
    odd = ["", " ", "{", "[", "1e999", "9" * 5000, "\x00", "null", "true", '{"tool": 1}', "move [1]", "-", "[[[[" * 1000]
    for request in EVERY_KIND:
        for text in odd:
            action, error = read_request(request, text)
            assert (error is None and action is not INVALID) or (isinstance(error, str) and action is INVALID)
    assert json.dumps(read_request(tools(MOVE), "move")[1])  # a reason, as text

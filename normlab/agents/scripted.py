"""Scripted strategies: pure, seeded policies usable from YAML as `{kind: scripted, strategy: ...}`.

Two-action dilemmas follow normlab's convention: action 0 cooperates (or complies), action 1
defects (or breaks the rule). Strategies that react to the other player read the
`my_moves` / `opponent_moves` fields of the observation (0 none yet, 1 cooperated, 2 defected,
most recent last); in a single-agent env those are absent and they play their opening move.

Every strategy answers every kind of per-turn request (`normlab.requests`), deterministically
for its seed. Its move (cooperate or defect) becomes:

- a `Choice` of the values 0 and 1 (a two-action dilemma): the move itself; any other choice:
  the first option when cooperating, the last when defecting (a single option: that one);
- an `Integer` / `Number`: the param `number` (clamped to the bounds) where given, else the
  low bound when cooperating and the high bound when defecting (normlab reads a larger
  number as taking more: a harvest, what one keeps);
- a `Text`: the fixed line of the param `message` (cut to the length and characters allowed);
- a `Composite`: field by field, with the one move of the turn;
- `Tools`: a call of the first action tool with the fewest arguments its schema allows;
- any other space (`SpaceRequest`): its low end when cooperating, its high end when defecting.

`random` draws each answer from `request.sample` (its `p` applies to two-action choices),
`fixed` plays its `action` wherever the request accepts it, and `script` plays a given list
of actions and tool calls, answering query tools inside the turn. `golden` plays a tool
task's value pole by its checkpoints' expected actions (`normlab.grading.golden`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from normlab.agents.base import Decision
from normlab.requests import (
    INVALID,
    Choice,
    Composite,
    Integer,
    Number,
    Request,
    SpaceRequest,
    Text,
    Tools,
    request_for_space,
)
from normlab.spaces import sample_json

COOPERATE, DEFECT = 0, 1
_NONE, _COOPERATED, _DEFECTED = 0, 1, 2

#: What a scripted talker says when asked for text (param `message`).
DEFAULT_MESSAGE = "OK."

#: Params every strategy but `script` takes: how it answers text and number requests.
ANSWER_PARAMS: dict[str, Any] = {"message": DEFAULT_MESSAGE, "number": None}

_UNSEEN = object()


def _last(observation: Any, key: str) -> int:
    if isinstance(observation, dict) and key in observation and len(observation[key]):
        return int(observation[key][-1])
    return _NONE


def _is_two_action(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Discrete) and int(space.n) == 2 and int(space.start) == 0


def _is_dilemma(request: Any) -> bool:
    """A choice between the values 0 (cooperate) and 1 (defect)."""
    if not isinstance(request, Choice):
        return False
    values = request.actions
    return len(values) == 2 and all(type(v) is int or isinstance(v, np.integer) for v in values) and list(values) == [0, 1]


def _plain(space: spaces.Space | None) -> bool:
    """A static space whose every turn's request holds actions of the same kind (a choice
    of its values, numbers, arrays); Text, Dict and ToolCall envelopes may ask anything."""
    return isinstance(space, (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary))


def _contains(space: spaces.Space, action: Any) -> bool:
    try:
        return bool(space.contains(np.int64(action) if isinstance(action, int) and not isinstance(action, bool) else action))
    except Exception:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ScriptedAgent:
    """Base class: subclasses set `name`, `description`, `defaults` and implement `choose`
    (the move in a two-action dilemma); `answer` answers any other request."""

    name: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = dict(ANSWER_PARAMS)
    two_action_only: ClassVar[bool] = True

    def __init__(self, action_space: spaces.Space, params: dict[str, Any] | None = None):
        self.action_space = action_space
        self.params = {**self.defaults, **(params or {})}
        self.rng = np.random.default_rng(0)
        self._static: Request | None = None
        self._seen: Any = _UNSEEN  # the last request met, and whether it is a dilemma
        self._dilemma = False
        self.start()

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        """Problems with the params; `action_space` None skips the checks that need it."""
        problems: list[tuple[tuple, str]] = []
        for key in params:
            if key not in cls.defaults:
                allowed = ", ".join(cls.defaults) or "none"
                problems.append((("params", key), f"unknown parameter of {cls.name} (parameters: {allowed})"))
        if "message" in cls.defaults and "message" in params and not isinstance(params["message"], str):
            problems.append((("params", "message"), "must be a string (the line said when asked for text)"))
        number = params.get("number")
        if "number" in cls.defaults and number is not None and not _is_number(number):
            problems.append((("params", "number"), "must be a finite number (the answer to number requests)"))
        # a Discrete space of other than two actions asks the same choice every turn, where
        # cooperating and defecting mean nothing; other envelopes may ask a dilemma per turn
        if cls.two_action_only and isinstance(action_space, spaces.Discrete) and not _is_two_action(action_space):
            problems.append((("strategy",), f"{cls.name} needs a two-action env (0 cooperate, 1 defect), not {action_space}"))
        return problems

    async def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.start()

    def start(self) -> None:
        """Clear per-episode state."""

    def static_request(self) -> Request:
        """The request the static action space stands for (asked without a request)."""
        if self._static is None:
            self._static = request_for_space(self.action_space)
        return self._static

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        if request is None:
            request = self.static_request()
        if request is not self._seen:  # a static env passes the same request every turn
            self._seen = request
            self._dilemma = _is_dilemma(request)
        if self._dilemma:
            return self.choose(observation)
        return self.answer(request, observation)

    def choose(self, observation: Any) -> Any:
        """The move in a two-action dilemma (0 cooperate, 1 defect)."""
        raise NotImplementedError

    def answer(self, request: Request, observation: Any) -> Any:
        """The answer to any request but a dilemma: the turn's move, as the request asks it."""
        return self.reply(request, self.choose(observation))

    def reply(self, request: Request, move: int) -> Any:
        if isinstance(request, Composite):
            chosen: dict[str, Any] = {}
            for name, sub in request.fields:
                value = self.reply(sub, move)
                if value is INVALID:
                    return INVALID
                chosen[name] = value
            return chosen
        return self.leaf(request, move)

    def leaf(self, request: Request, move: int) -> Any:
        """The answer to a request that is not a composite."""
        return answer_for(request, move, self.params, self.rng)


def answer_for(request: Request, move: int, params: Mapping[str, Any], rng: np.random.Generator) -> Any:
    """A move (0 cooperate, 1 defect) as an answer to a request (see the module docstring)."""
    cooperate = move == COOPERATE
    if isinstance(request, Choice):
        values = request.actions
        if _is_dilemma(request):
            return values[move]
        return values[0] if cooperate or len(values) == 1 else values[-1]
    if isinstance(request, (Integer, Number)):
        number = params.get("number")
        if number is None:
            return request.low if cooperate else request.high
        number = min(max(number, request.low), request.high)
        return int(math.floor(number + 0.5)) if isinstance(request, Integer) else float(number)
    if isinstance(request, Text):
        return fit_text(str(params.get("message", DEFAULT_MESSAGE)), request)
    if isinstance(request, Tools):
        return first_call(request, rng, str(params.get("message", DEFAULT_MESSAGE)))
    if isinstance(request, Composite):
        chosen = {name: answer_for(sub, move, params, rng) for name, sub in request.fields}
        return INVALID if any(v is INVALID for v in chosen.values()) else chosen
    if isinstance(request, SpaceRequest):
        return _space_answer(request.action_space, move, params, rng)
    return request.sample(rng)


def fit_text(message: str, request: Text) -> Any:
    """A fixed line cut to what a text request allows (its characters, its length), padded
    with spaces (or the first allowed character) up to its least length."""
    allowed = request.characters
    text = message if allowed is None else "".join(c for c in message if c in allowed)
    text = text[: request.max_chars]
    if len(text) < request.min_chars:
        pad = " " if allowed is None or " " in allowed else (min(allowed) if allowed else None)
        if pad is None:
            return INVALID
        text += pad * (request.min_chars - len(text))
    return text


def least_json(schema: Mapping[str, Any], text: str | None = None, depth: int = 0) -> Any:
    """The plainest value of a simple JSON schema: the first enum value or option, the
    required properties only, the fewest items, the shortest string (or `text`, cut or
    padded to the string's length), 0 within the bounds."""
    if depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return list(schema["enum"])[0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return least_json(list(schema[key])[0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null") if kind else None
    if kind == "object" or (kind is None and "properties" in schema):
        props = dict(schema.get("properties") or {})
        required = list(schema.get("required") or [])
        return {key: least_json(props.get(key) or {}, text, depth + 1) for key in required}
    if kind == "array":
        return [least_json(schema.get("items") or {}, text, depth + 1) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "string":
        least = int(schema.get("minLength", 0))
        if text is None:
            return "a" * least
        return text[: int(schema.get("maxLength", len(text)))].ljust(least, "a")
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = 0
        if low is not None and value <= low:
            value = low if "minimum" in schema else low + 1
        elif high is not None and value >= high:
            value = high if "maximum" in schema else high - 1
        return int(math.ceil(value)) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def first_call(request: Tools, rng: np.random.Generator, message: str = DEFAULT_MESSAGE, tries: int = 20) -> Any:
    """A call of the first action tool with its plainest arguments, its strings the line
    `message` (a scripted talker's `say` says its line), else the shortest strings; where
    neither fits the schema (a pattern, say), a drawn call; INVALID without an action tool."""
    if not request.action_tools:
        return INVALID
    tool = request.action_tools[0]
    for text in (message, None):
        call, error = request.coerce({"tool": tool.name, "arguments": least_json(tool.parameters, text)})
        if error is None:
            return call
    return random_call(Tools((tool,)), rng, message, tries)


def random_call(request: Tools, rng: np.random.Generator, message: str = DEFAULT_MESSAGE, tries: int = 20) -> Any:
    """A call of an action tool drawn at random, with arguments drawn from its schema (as
    `Tools.sample` draws them; drawn again where they miss a pattern or a format, and after
    `tries` misses its plainest arguments); INVALID without an action tool."""
    offered = request.action_tools
    if not offered:
        return INVALID
    tool = offered[int(rng.integers(len(offered)))]
    candidates = [sample_json(tool.parameters, rng) for _ in range(tries)]
    for arguments in [*candidates, least_json(tool.parameters, message), least_json(tool.parameters)]:
        call, error = request.coerce({"tool": tool.name, "arguments": arguments})
        if error is None:
            return call
    return INVALID


def _space_answer(space: spaces.Space, move: int, params: Mapping[str, Any], rng: np.random.Generator) -> Any:
    """A move as an action of a space no other request stands for: its low end when
    cooperating, its high end when defecting."""
    cooperate = move == COOPERATE
    if isinstance(space, spaces.Tuple):
        parts = [answer_for(request_for_space(sub), move, params, rng) for sub in space.spaces]
        return INVALID if any(p is INVALID for p in parts) else tuple(parts)
    if isinstance(space, spaces.MultiBinary):
        return (np.zeros if cooperate else np.ones)(space.shape, dtype=space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(getattr(space, "start", 0))
        return (start + (0 if cooperate else space.nvec - 1)).astype(space.dtype)
    if isinstance(space, spaces.Box):
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        number = params.get("number")
        if number is not None:
            wanted = np.full(space.shape, float(number))
        else:
            wanted = np.where(np.isfinite(low), low, np.clip(0.0, low, high)) if cooperate else np.where(np.isfinite(high), high, np.clip(0.0, low, high))
        return np.clip(wanted, low, high).astype(space.dtype)
    space.seed(int(rng.integers(2**31)))
    return space.sample()


class AlwaysCooperate(ScriptedAgent):
    name = "always_cooperate"
    description = "Always cooperates (action 0)."

    def choose(self, observation: Any) -> int:
        return COOPERATE


class AlwaysDefect(ScriptedAgent):
    name = "always_defect"
    description = "Always defects (action 1)."

    def choose(self, observation: Any) -> int:
        return DEFECT


class TitForTat(ScriptedAgent):
    name = "tit_for_tat"
    description = "Cooperates first, then copies the other player's last move."

    def choose(self, observation: Any) -> int:
        return DEFECT if _last(observation, "opponent_moves") == _DEFECTED else COOPERATE


class GrimTrigger(ScriptedAgent):
    name = "grim_trigger"
    description = "Cooperates until the other player defects once, then defects for good."

    def start(self) -> None:
        self.triggered = False

    def choose(self, observation: Any) -> int:
        self.triggered = self.triggered or _last(observation, "opponent_moves") == _DEFECTED
        return DEFECT if self.triggered else COOPERATE


class Pavlov(ScriptedAgent):
    name = "pavlov"
    description = "Win-stay, lose-shift: cooperates when both players made the same last move."

    def choose(self, observation: Any) -> int:
        mine, theirs = _last(observation, "my_moves"), _last(observation, "opponent_moves")
        if mine == _NONE:
            return COOPERATE
        return COOPERATE if mine == theirs else DEFECT


class RandomStrategy(ScriptedAgent):
    name = "random"
    description = "Seeded random play: defects with probability p in two-action envs, else uniform over what each turn asks."
    defaults = {"p": None, **ANSWER_PARAMS}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        p = params.get("p")
        if p is not None:
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:  # nan fails too
                problems.append((("params", "p"), "must be a number between 0 and 1"))
            elif action_space is not None and _plain(action_space) and not _is_two_action(action_space):
                problems.append((("params", "p"), "p needs a two-action env; leave it out for uniform play"))
        return problems

    def choose(self, observation: Any) -> Any:
        p = self.params["p"]
        if p is None:  # the same draw as uniform over Discrete(2)'s actions
            return int(self.rng.integers(2))
        return DEFECT if self.rng.random() < p else COOPERATE

    def answer(self, request: Request, observation: Any) -> Any:
        return self.reply(request, COOPERATE)

    def leaf(self, request: Request, move: int) -> Any:
        if _is_dilemma(request) and self.params["p"] is not None:
            return DEFECT if self.rng.random() < self.params["p"] else COOPERATE
        if isinstance(request, Tools):
            return random_call(request, self.rng, str(self.params["message"]))
        return request.sample(self.rng)


class Fixed(ScriptedAgent):
    name = "fixed"
    description = "Always plays the same action (param action, default 0) where a turn accepts it; elsewhere answers as a cooperator."
    defaults = {"action": 0, **ANSWER_PARAMS}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        # in a Text, Dict or tool-call envelope the action may fit only some turns' requests
        if action_space is None or not _plain(action_space):
            return problems
        action = params.get("action", 0)
        if not _contains(action_space, action):
            problems.append((("params", "action"), f"{action!r} is not a legal action of {action_space}"))
        return problems

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        if request is None:
            request = self.static_request()
        if request is not self._seen:  # the same request, the same answer
            self._seen = request
            self._answer = self.answer(request, observation)
            self._mutable = isinstance(self._answer, (dict, list, np.ndarray))
        if self._mutable:  # never hand out one mutable object twice
            return self.answer(request, observation)
        return self._answer

    def choose(self, observation: Any) -> Any:
        return self.params["action"]

    def answer(self, request: Request, observation: Any) -> Any:
        action, error = request.coerce(self.params["action"])  # a whole object for a composite
        return action if error is None else self.reply(request, COOPERATE)

    def leaf(self, request: Request, move: int) -> Any:
        action, error = request.coerce(self.params["action"])
        return action if error is None else super().leaf(request, move)


_THEN = ("invalid", "repeat", "cycle")


def _is_call(item: Any) -> bool:
    return isinstance(item, Mapping) and "tool" in item


class Script(ScriptedAgent):
    """Plays a list of actions in order. Each item is a tool call `{"tool": name, "arguments":
    {...}}` or any action value (an option's value or name, a number, a text, an object); a
    call of a query tool is answered by the env (`request.ask`) and the next item is played in
    the same turn. An item the turn's request does not accept is answered INVALID (the runner
    records the invalid answer and carries out the env's fallback). After the list, `then`:
    `invalid` (every turn), `repeat` (the last item played as an action), `cycle` (the list
    again) or `{action: <value>}` (that action)."""

    name = "script"
    description = (
        "Plays the list `actions` in order (tool calls {tool, arguments} or action values); query "
        "tool calls are answered in the turn; then: invalid, repeat, cycle or {action: ...}."
    )
    defaults = {"actions": [], "then": "invalid"}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        actions = params.get("actions", [])
        if not isinstance(actions, list) or not actions:
            problems.append((("params", "actions"), "must be a non-empty list of actions or tool calls {tool, arguments}"))
            actions = []
        for i, item in enumerate(actions):
            if _is_call(item):
                if not isinstance(item["tool"], str) or not isinstance(item.get("arguments", {}), Mapping) or set(item) - {"tool", "arguments"}:
                    problems.append((("params", "actions", i), 'a tool call is {"tool": <name>, "arguments": {...}}'))
            elif action_space is not None and _plain(action_space) and not isinstance(item, str) and not _contains(action_space, item):
                problems.append((("params", "actions", i), f"{item!r} is not a legal action of {action_space}"))
        then = params.get("then", "invalid")
        if not (then in _THEN or (isinstance(then, Mapping) and set(then) == {"action"})):
            problems.append((("params", "then"), "must be invalid, repeat, cycle or {action: <value>}"))
        return problems

    def start(self) -> None:
        self.position = 0
        self.last: Any = _UNSEEN  # the last item played as an action

    def choose(self, observation: Any) -> Any:  # not used: every turn goes through `act`
        raise NotImplementedError

    def _next(self) -> Any:
        """The next item, or _UNSEEN when the script has none."""
        actions = self.params["actions"]
        if self.position < len(actions):
            self.position += 1
            return actions[self.position - 1]
        then = self.params["then"]
        if then == "cycle" and actions:
            self.position = 1
            return actions[0]
        if then == "repeat":
            return self.last
        if isinstance(then, Mapping) and "action" in then:
            return then["action"]
        return _UNSEEN

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Decision:
        if request is None:
            request = self.static_request()
        queries: list[dict[str, Any]] = []
        notes: dict[str, Any] = {}
        action: Any = INVALID
        # a turn takes at most one pass over the list (plus the item after it): a script of
        # queries alone, cycled or repeated, would otherwise ask forever
        for _ in range(len(self.params["actions"]) + 2):
            item = self._next()
            if item is _UNSEEN:
                notes["script"] = "the script has no more actions"
                break
            if isinstance(request, Tools) and _is_call(item) and request.is_query(str(item["tool"])):
                call, error = request.coerce(item)
                if error is not None:
                    notes["error"] = error
                    break
                queries.append({"call": call, "result": request.ask(call)})
                continue
            action, error = request.coerce(item)
            if error is not None:
                notes["error"] = error
            else:
                self.last = item
            break
        else:
            notes["script"] = "the script asked only queries this turn"
        if queries:
            notes["queries"] = queries
        return Decision(action, notes or None)


class Golden(ScriptedAgent):
    """Follows one value pole of a ToolTask (`normlab/ToolTask-v0`): the calls that its
    checkpoints' tool and final-answer expectations describe (`normlab.grading.golden`), one
    per turn, query calls answered inside the turn as `script` answers them, then the final
    answer. The task is the one the env names in its info (`info["task"]`), or the param
    `task` (a shipped task's name), or `spec` (an inline task, as `ToolTask-v0`'s `spec`).
    Where no task is named at all (another env) it answers as `always_cooperate`; a task it
    cannot load (an inline task without `spec`) or one without poles gets INVALID answers,
    with the reason in the decision's notes."""

    name = "golden"
    description = (
        "Plays a ToolTask's value pole (param pole: A or B) by its expected actions, then the final "
        "answer; the task from the env's info, or params task / spec."
    )
    defaults: ClassVar[dict[str, Any]] = {"pole": "A", "task": None, "spec": None}
    two_action_only = False

    @classmethod
    def check(cls, params: dict[str, Any], action_space: spaces.Space | None) -> list[tuple[tuple, str]]:
        problems = super().check(params, action_space)
        if params.get("pole", "A") not in ("A", "B"):
            problems.append((("params", "pole"), "must be A or B"))
        task, spec = params.get("task"), params.get("spec")
        if task is not None:
            from normlab.envs.tasks import task_names

            if task not in task_names():
                problems.append((("params", "task"), f"unknown task {task!r}"))
        if spec is not None and not isinstance(spec, Mapping):
            problems.append((("params", "spec"), "must be a mapping of task fields"))
        return problems

    def start(self) -> None:
        self.plan: list[dict[str, Any]] | None = None
        self.position = 0
        self.problem: str | None = None

    def choose(self, observation: Any) -> Any:
        return COOPERATE  # where no task is named

    def _make_plan(self, info: Mapping[str, Any], request: Request) -> None:
        from normlab.envs.tasks import load_task, parse_task, task_names
        from normlab.grading.golden import golden_calls

        spec, name = self.params.get("spec"), self.params.get("task") or (info or {}).get("task")
        if spec is not None:
            task = parse_task(dict(spec))
        elif isinstance(name, str) and name in task_names():
            task = load_task(name)
        else:
            self.problem = f"golden needs a shipped task (the env's info names {name!r}): give the param task or spec"
            self.plan = []
            return
        if task.poles is None:
            self.problem = f"task {task.name} has no value poles to follow"
            self.plan = []
            return
        pole = task.poles.A if self.params.get("pole", "A") == "A" else task.poles.B
        schemas = {t.name: dict(t.parameters) for t in request.tools} if isinstance(request, Tools) else {}
        self.plan = golden_calls(pole, schemas)

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        named = self.params.get("spec") is not None or self.params.get("task") or (info or {}).get("task")
        if self.plan is None and not named:
            return await super().act(observation, info, request)
        if request is None:
            request = self.static_request()
        if self.plan is None:
            self._make_plan(info, request)
        assert self.plan is not None
        if self.problem is not None:
            return Decision(INVALID, {"error": self.problem})
        queries: list[dict[str, Any]] = []
        notes: dict[str, Any] = {}
        action: Any = INVALID
        while self.position < len(self.plan):
            item = self.plan[self.position]
            self.position += 1
            if isinstance(request, Tools) and request.is_query(str(item["tool"])):
                call, error = request.coerce(item)
                if error is not None:
                    notes.setdefault("errors", []).append(error)
                    continue
                queries.append({"call": call, "result": request.ask(call)})
                continue
            action, error = request.coerce(item)
            if error is not None:
                notes.setdefault("errors", []).append(error)
                continue
            break
        else:
            notes["golden"] = "the pole's calls are all played"
        if queries:
            notes["queries"] = queries
        return Decision(action, notes or None)


STRATEGIES: dict[str, type[ScriptedAgent]] = {
    cls.name: cls for cls in (AlwaysCooperate, AlwaysDefect, TitForTat, GrimTrigger, Pavlov, RandomStrategy, Fixed, Script, Golden)
}


def register_strategy(cls: type[ScriptedAgent]) -> type[ScriptedAgent]:
    """Add a scripted strategy (a class decorator); names are unique across games, so a
    game's reference strategies carry its name (`commons_sustainable`)."""
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"a scripted strategy named {cls.name!r} exists already")
    STRATEGIES[cls.name] = cls
    return cls


def _load_game_strategies() -> None:
    """Each module of `normlab.agents.strategies` (one per game) registers its strategies."""
    import importlib
    import pkgutil

    from normlab.agents import strategies

    for module in pkgutil.iter_modules(strategies.__path__):
        importlib.import_module(f"{strategies.__name__}.{module.name}")


_load_game_strategies()

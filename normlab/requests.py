"""Per-turn action requests: what an env asks an acting agent for, this turn.

In the spirit of Concordia's `ActionSpec`, an env says each turn what kind of answer it
wants; the static Gymnasium/PettingZoo action space stays the envelope the official checkers
see. Harnesses build their instructions, JSON schema and parser from the request, scripted
agents and people answer it, and `coerce` turns an answer into a legal action or says why not.

- `Choice`: one of named options (each stands for an action value, by default 0..n-1).
- `Integer` / `Number`: a number within bounds (a harvest of 0 to the pool).
- `Text`: free text up to `max_chars`, tagged with what it is (`speech`, `plan`, ...).
- `Tools`: a call of one of the tools; *query* tools are answered inside the turn by the env
  (`answer`) and do not advance it, *action* tools end the turn.
- `Composite`: named fields, each a request (`{message: text, keep: integer 0..10}`).
- `SpaceRequest`: any other Gymnasium space, answered as JSON.

`INVALID` is what an agent returns when it has no legal action to give (never None, which
PettingZoo's AEC API uses for a finished agent); the runner carries out the env's fallback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from normlab.spaces import ToolCall, as_integer, coerce_to_space, sample_json, shown, space_schema, space_text, tool_schema

Coerced = tuple[Any, str | None]


class _Invalid:
    """The one `INVALID` value: falsy, printed as INVALID, the same object after pickling."""

    _instance: _Invalid | None = None

    def __new__(cls) -> _Invalid:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "INVALID"


#: What an agent returns when no legal action could be read from it.
INVALID = _Invalid()


class Request:
    """What an env asks of an acting agent this turn (see the module docstring)."""

    kind: ClassVar[str]

    def schema(self) -> dict[str, Any]:
        """A JSON schema of the answer's value, tight enough for constrained decoding."""
        raise NotImplementedError

    def describe(self) -> str:
        """What to answer, in words, for prompts and error messages."""
        raise NotImplementedError

    def coerce(self, value: Any) -> Coerced:
        """A value from JSON (a model's answer, a tool call's argument) as a legal action, or
        (INVALID, why not)."""
        raise NotImplementedError

    def read(self, text: str) -> Coerced:
        """A plain answer as a person or a weak model writes it (no JSON wrapper)."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return INVALID, f"the answer is not {self.describe()}"
        return self.coerce(value)

    def sample(self, rng: np.random.Generator) -> Any:
        """A legal action drawn at random (scripted random agents)."""
        raise NotImplementedError

    def space(self) -> spaces.Space:
        """The Gymnasium space of this request's actions (an env's static envelope)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The request as plain data (stored, shown in a viewer)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Choice(Request):
    """One of named options; `values[i]` is the action option i stands for (default i)."""

    options: tuple[str, ...]
    values: tuple[Any, ...] | None = None
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("a choice needs at least one option")
        if self.values is not None and len(self.values) != len(self.options):
            raise ValueError("a choice needs one value per option")

    @property
    def actions(self) -> tuple[Any, ...]:
        return self.values if self.values is not None else tuple(range(len(self.options)))

    def label(self, action: Any) -> str | None:
        """The option an action stands for."""
        found, _ = self.coerce(action) if not isinstance(action, str) or action in self.actions else (INVALID, None)
        if found is INVALID:
            return None
        return self.options[list(self.actions).index(found)]

    def schema(self) -> dict[str, Any]:
        values = list(self.actions)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return {"type": "integer", "enum": values}
        if all(isinstance(v, str) for v in values):
            return {"type": "string", "enum": values}
        return {"enum": values}

    def describe(self) -> str:
        values = self.actions
        unnamed = all(str(v) == o for o, v in zip(self.options, values))
        if unnamed and len(values) > 3 and all(isinstance(v, int) for v in values) and list(values) == list(range(values[0], values[-1] + 1)):
            return f"an integer from {values[0]} to {values[-1]}"
        return ", ".join(option if str(value) == option else f"{value} = {option}" for option, value in zip(self.options, values))

    def coerce(self, value: Any) -> Coerced:
        for action in self.actions:
            if isinstance(action, int) and not isinstance(action, bool):
                if as_integer(value) == action:
                    return action, None
            elif value == action:
                return action, None
        if isinstance(value, str):
            wanted = value.strip().lower()
            for option, action in zip(self.options, self.actions):
                if option.lower() == wanted:
                    return action, None
            if re.fullmatch(r"-?\d{1,18}", wanted):
                return self.coerce(int(wanted))
        return INVALID, f"{shown(value)} is not one of {self.describe()}"

    def read(self, text: str) -> Coerced:
        stripped = text.strip().strip("`'\" .")
        action, error = self.coerce(stripped)
        if error is None or re.fullmatch(r"-?\d+", stripped):
            return action, error
        lowered = text.lower()
        named = [a for o, a in zip(self.options, self.actions) if re.search(rf"\b{re.escape(o.lower())}\b", lowered)]
        if len(named) == 1:
            return named[0], None
        # whole numbers only: not the 1 of "1e999" or "1.5", and no digit run longer than any
        # legal action (int() of thousands of digits raises)
        numbers = {int(n) for n in re.findall(r"(?<![\w.])-?\d{1,18}(?!\w|\.\d)", text)}
        legal = [a for a in self.actions if isinstance(a, int) and a in numbers]
        if len(legal) == 1:
            return legal[0], None
        return INVALID, f"no action found in the answer; answer one of {self.describe()}"

    def sample(self, rng: np.random.Generator) -> Any:
        return self.actions[int(rng.integers(len(self.actions)))]

    def space(self) -> spaces.Space:
        values = self.actions
        if all(isinstance(v, int) for v in values) and list(values) == list(range(values[0], values[0] + len(values))):
            return spaces.Discrete(len(values), start=values[0])
        return spaces.Text(max_length=max(len(str(v)) for v in values), min_length=1)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": list(self.options), "values": list(self.actions)}


def _bounds_text(low: float, high: float) -> str:
    return f"from {low:g} to {high:g}"


def _one_number(text: str, integer: bool) -> tuple[float | None, str | None]:
    """The one number a plain answer names (a model may write "I take 12 tons")."""
    pattern = r"(?<![\w.])-?\d{1,18}(?![\w.])" if integer else r"(?<![\w.])-?\d{1,18}(?:\.\d{1,18})?(?![\w.])"
    found = re.findall(pattern, text)
    if len(set(found)) == 1:
        return float(found[0]), None
    return None, "no number found in the answer" if not found else "the answer names several numbers"


class _Bounded(Request):
    """A number within [low, high]: what Integer and Number share."""

    low: Any
    high: Any

    def schema(self) -> dict[str, Any]:
        return {"type": self.kind, "minimum": self.low, "maximum": self.high}

    def read(self, text: str) -> Coerced:
        action, error = self.coerce(text.strip())
        if error is None:
            return action, None
        integral = self.kind == "integer"
        number, why = _one_number(text, integer=integral)
        if number is None:
            return INVALID, f"{why}; answer {self.describe()}"
        return self.coerce(int(number) if integral else number)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Integer(_Bounded):
    """A whole number from `low` to `high`."""

    low: int
    high: int
    kind: ClassVar[str] = "integer"

    def describe(self) -> str:
        return f"a whole number {_bounds_text(self.low, self.high)}"

    def coerce(self, value: Any) -> Coerced:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
            value = int(value)
        number = as_integer(value)
        if number is None or not self.low <= number <= self.high:
            return INVALID, f"{shown(value)} is not {self.describe()}"
        return number, None

    def sample(self, rng: np.random.Generator) -> Any:
        return int(rng.integers(self.low, self.high + 1))

    def space(self) -> spaces.Space:
        return spaces.Box(low=self.low, high=self.high, shape=(), dtype=np.int64)


@dataclass(frozen=True)
class Number(_Bounded):
    """A finite number from `low` to `high`."""

    low: float
    high: float
    kind: ClassVar[str] = "number"

    def describe(self) -> str:
        return f"a number {_bounds_text(self.low, self.high)}"

    def coerce(self, value: Any) -> Coerced:
        if isinstance(value, str):
            try:
                value = float(value.strip()) if len(value) < 40 else value
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return INVALID, f"{shown(value)} is not {self.describe()}"
        try:
            number = float(value)
        except OverflowError:
            return INVALID, f"{shown(value)} is not {self.describe()}"
        if not math.isfinite(number) or not self.low <= number <= self.high:
            return INVALID, f"{shown(value)} is not {self.describe()}"
        return number, None

    def sample(self, rng: np.random.Generator) -> Any:
        return float(rng.uniform(self.low, self.high))

    def space(self) -> spaces.Space:
        return spaces.Box(low=self.low, high=self.high, shape=(), dtype=np.float64)


@dataclass(frozen=True)
class Text(Request):
    """Free text of `min_chars` to `max_chars` characters; `tag` says what it is (`speech`,
    `plan`, `scratchpad`...); `characters`, where set, are the only ones allowed."""

    max_chars: int
    tag: str = "speech"
    min_chars: int = 0
    characters: frozenset[str] | None = None
    kind: ClassVar[str] = "text"

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": self.min_chars, "maxLength": self.max_chars}

    def describe(self) -> str:
        what = "a text" if self.tag == "text" else f"a text ({self.tag})"
        return f"{what} of at most {self.max_chars} characters" + (
            f" and at least {self.min_chars}" if self.min_chars else ""
        )

    def coerce(self, value: Any) -> Coerced:
        if not isinstance(value, str):
            return INVALID, f"{shown(value)} is not {self.describe()}"
        if not self.min_chars <= len(value) <= self.max_chars:
            return INVALID, f"the text has {len(value)} characters; it must have {self.min_chars} to {self.max_chars}"
        if self.characters is not None:
            outside = sorted({c for c in value if c not in self.characters})
            if outside:
                return INVALID, f"the text uses characters that are not allowed: {shown(''.join(outside[:20]))}"
        return value, None

    def read(self, text: str) -> Coerced:
        return self.coerce(text.strip())

    def sample(self, rng: np.random.Generator) -> Any:
        letters = sorted(self.characters) if self.characters else list("abcdefghijklmnopqrstuvwxyz ")
        size = int(rng.integers(self.min_chars, min(self.max_chars, self.min_chars + 20) + 1))
        return "".join(letters[int(i)] for i in rng.integers(len(letters), size=size))

    def space(self) -> spaces.Space:
        from normlab.envs.text import TEXT_CHARSET

        charset = "".join(sorted(self.characters)) if self.characters else TEXT_CHARSET
        return spaces.Text(max_length=self.max_chars, min_length=self.min_chars, charset=charset)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "tag": self.tag, "min_chars": self.min_chars, "max_chars": self.max_chars}


@dataclass(frozen=True)
class Tool:
    """A tool an env offers: an OpenAI-style function with JSON-schema parameters. A `query`
    tool is answered inside the turn; an action tool's call is the turn's action."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}}, hash=False)
    query: bool = False

    def openai(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, self.parameters)


@dataclass(frozen=True)
class Tools(Request):
    """A call of one of `tools`: `{"tool": name, "arguments": {...}}`. A query tool's call is
    answered by `answer(call)` (bound by the runner to the env) and the turn goes on."""

    tools: tuple[Tool, ...]
    answer: Callable[[dict[str, Any]], Any] | None = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "tool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_space", ToolCall([t.openai() for t in self.tools]))

    @property
    def call_space(self) -> ToolCall:
        return self._space  # type: ignore[attr-defined, no-any-return]

    @property
    def query_tools(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if t.query)

    @property
    def action_tools(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if not t.query)

    def is_query(self, name: str) -> bool:
        return any(t.name == name and t.query for t in self.tools)

    def bound(self, answer: Callable[[dict[str, Any]], Any]) -> Tools:
        return replace(self, answer=answer)

    def ask(self, call: dict[str, Any]) -> Any:
        """The env's answer to a query tool call (already checked by `coerce`)."""
        if self.answer is None:
            return {"success": False, "error": "this tool cannot be answered here"}
        return self.answer(call)

    def schema(self) -> dict[str, Any]:
        options = [
            {
                "type": "object",
                "properties": {"tool": {"const": t.name}, "arguments": dict(t.parameters)},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
            for t in self.tools
        ]
        return options[0] if len(options) == 1 else {"anyOf": options}

    def describe(self) -> str:
        return 'a tool call {"tool": <name>, "arguments": {...}} of one of: ' + ", ".join(
            f"{t.name} ({'lookup' if t.query else 'action'})" for t in self.tools
        )

    def coerce(self, value: Any) -> Coerced:
        if isinstance(value, Mapping):
            name = value.get("tool", value.get("name"))
            arguments = value.get("arguments", value.get("args", {}))
            if isinstance(arguments, str):  # some models send the arguments as JSON text
                try:
                    arguments = json.loads(arguments)
                except (ValueError, RecursionError):
                    return INVALID, f"the arguments of {shown(name)} are not a JSON object"
            call = {"tool": name, "arguments": arguments}
            problem = self.call_space.problem(call)
            if problem is None:
                return call, None
            return INVALID, problem
        return INVALID, f"{shown(value)} is not {self.describe()}"

    def sample(self, rng: np.random.Generator) -> Any:
        tools = self.action_tools or self.tools
        tool = tools[int(rng.integers(len(tools)))]
        return {"tool": tool.name, "arguments": sample_json(tool.parameters, rng)}

    def space(self) -> spaces.Space:
        return self.call_space

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tools": [{**t.openai()["function"], "query": t.query} for t in self.tools],
        }


@dataclass(frozen=True)
class Composite(Request):
    """Named fields answered together, each a request: `Composite.of(message=Text(500),
    keep=Integer(0, 10))`."""

    fields: tuple[tuple[str, Request], ...]
    kind: ClassVar[str] = "composite"

    @classmethod
    def of(cls, **fields: Request) -> Composite:
        return cls(tuple(fields.items()))

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: sub.schema() for name, sub in self.fields},
            "required": [name for name, _ in self.fields],
            "additionalProperties": False,
        }

    def describe(self) -> str:
        return "a JSON object {" + ", ".join(f'"{name}": {sub.describe()}' for name, sub in self.fields) + "}"

    def coerce(self, value: Any) -> Coerced:
        if not isinstance(value, Mapping):
            return INVALID, f"{shown(value)} is not {self.describe()}"
        names = {name for name, _ in self.fields}
        if set(value) != names:
            return INVALID, f"the object needs exactly the keys {', '.join(sorted(names))}"
        chosen: dict[str, Any] = {}
        for name, sub in self.fields:
            item, error = sub.coerce(value[name])
            if error is not None:
                return INVALID, f"{name}: {error}"
            chosen[name] = item
        return chosen, None

    def sample(self, rng: np.random.Generator) -> Any:
        return {name: sub.sample(rng) for name, sub in self.fields}

    def space(self) -> spaces.Space:
        return spaces.Dict({name: sub.space() for name, sub in self.fields})

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "fields": {name: sub.to_json() for name, sub in self.fields}}


@dataclass(frozen=True)
class SpaceRequest(Request):
    """Any other Gymnasium space (arrays, tuples), answered as JSON."""

    action_space: spaces.Space = field(hash=False)
    kind: ClassVar[str] = "space"

    def schema(self) -> dict[str, Any]:
        return space_schema(self.action_space)

    def describe(self) -> str:
        return space_text(self.action_space)

    def coerce(self, value: Any) -> Coerced:
        action, error = coerce_to_space(self.action_space, value)
        return (INVALID, error) if error is not None else (action, None)

    def read(self, text: str) -> Coerced:
        action, error = super().read(text)
        if error is None:
            return action, None
        try:  # "1 0 2" or "1, 0, 2" for the array spaces
            return self.coerce([json.loads(part) for part in text.replace(",", " ").split()])
        except (ValueError, RecursionError):
            return INVALID, error

    def sample(self, rng: np.random.Generator) -> Any:
        self.action_space.seed(int(rng.integers(2**31)))
        return self.action_space.sample()

    def space(self) -> spaces.Space:
        return self.action_space

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "space": str(self.action_space)}


def request_for_space(space: spaces.Space, meanings: list[str] | None = None) -> Request:
    """The request a static action space stands for, when an env makes no per-turn request."""
    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        labels = list(meanings or [])
        options = tuple(labels[i] if i < len(labels) else str(start + i) for i in range(n))
        return Choice(options, tuple(range(start, start + n)))
    if isinstance(space, spaces.Text):
        return Text(
            max_chars=int(space.max_length),
            tag="text",
            min_chars=int(space.min_length),
            characters=frozenset(space.character_set),
        )
    if isinstance(space, ToolCall):
        return Tools(tuple(Tool(t["name"], str(t.get("description", "")), t.get("parameters") or {}) for t in space.tools))
    if isinstance(space, spaces.Dict):
        return Composite(tuple((str(k), request_for_space(sub)) for k, sub in space.spaces.items()))
    if isinstance(space, spaces.Box) and space.shape == () and np.all(np.isfinite([space.low, space.high])):
        if np.issubdtype(space.dtype, np.integer):
            return Integer(int(space.low), int(space.high))
        return Number(float(space.low), float(space.high))
    return SpaceRequest(space)


def is_invalid(action: Any) -> bool:
    return action is INVALID

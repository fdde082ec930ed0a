"""A person plays a seat from the terminal.

Everything the player reads (rules, observations, prompts, complaints) goes to stderr and
answers come from stdin, so `RID=$(normlab run ... -q)` captures only the run id. While the
player is asked, the CLI's live progress display is paused, so it never redraws over the
line being typed.

The player is asked what the turn's request asks (`normlab.requests`): free text for a text
request (taken as typed), an option by its number or its name for a choice, a number, a JSON
object for a composite, and a tool call for tools, as JSON `{"tool": ..., "arguments": {...}}`
or as `name {"arg": ...}`. A lookup (query) tool's result is shown and the player is asked
again in the same turn. A request that is just the seat's static action space is asked as
that space (arrays as JSON or plain numbers).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from rich.console import Console
from rich.markup import escape

from normlab.agents.base import AgentContext, AgentError, Decision
from normlab.interactive import paused_display
from normlab.requests import INVALID, Choice, Coerced, Composite, Request, Text, Tools
from normlab.spaces import ToolCall

_PLAYABLE = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box, spaces.Text, spaces.Dict, spaces.Tuple, ToolCall)
_SHORT_CALL = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(.*)", re.DOTALL)


def read_answer(prompt: str) -> str:
    """One line from stdin; the prompt goes to stderr (never stdout, which scripts capture)."""
    import sys

    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


class HumanAgent:
    """Shows the observation, says what to type, and asks again until a legal action is given."""

    def __init__(
        self,
        context: AgentContext,
        name: str | None = None,
        input_fn: Callable[[str], str] = read_answer,
        console: Console | None = None,
    ):
        self.context = context
        self.name = name or context.agent_id
        self.input_fn = input_fn
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        problem = _unplayable(context.action_space)
        if problem:  # refuse up front rather than ask for something no answer can give
            raise AgentError(f"{self.name}: the human player cannot play {problem}")
        self.static = context.default_request()

    async def reset(self, seed: int) -> None:
        await asyncio.to_thread(self._show_rules)

    def _show_rules(self) -> None:
        with paused_display():
            self.console.rule(f"[bold]New episode[/] ({escape(self.name)})")
            if self.context.rules:
                self.console.print(escape(self.context.rules))

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        # the whole exchange runs on one worker thread, inside one pause: two human seats of
        # a parallel env take turns at the terminal instead of interleaving their prompts
        return await asyncio.to_thread(self._ask, observation, request)

    def _ask(self, observation: Any, request: Request | None = None) -> Any:
        text = observation.get("text") if isinstance(observation, dict) else None
        rules = self.context.rules
        if isinstance(text, str) and rules and text.startswith(rules):
            text = text[len(rules) :].lstrip()  # the rules were shown when the episode began
        with paused_display():
            self.console.print(escape(text if isinstance(text, str) else repr(observation)))
            if request is None:
                request = self.static
            if request == self.static and not isinstance(request, Tools):
                return self._ask_space()  # as the space: arrays as JSON or plain numbers
            return self._ask_request(request)

    def _input(self, prompt: str) -> str:
        try:
            return self.input_fn(prompt)
        except EOFError:
            raise AgentError(f"{self.name}: the human player's input closed") from None

    def _ask_space(self) -> Any:
        """Ask for an action of the seat's static action space."""
        prompt = f"{self.name}, your action ({self.expected()}): "
        while True:
            answer = self._input(prompt)
            action = self._parse(answer)
            if action is not None:
                return action
            shown = escape(answer.strip()[:80]) or "(empty)"
            self.console.print(f"[red]{shown} is not a legal action; expected {escape(self.expected())}.[/]")

    def _ask_request(self, request: Request) -> Any:
        """Ask what this turn's request asks; answer lookups in the turn and ask again."""
        self._show_request(request)
        prompt = f"{self.name}, {_prompt(request)}: "
        queries: list[dict[str, Any]] = []
        while True:
            answer = self._input(prompt)
            action, error = read_request(request, answer)
            if error is not None:
                complaint = " ".join(error.split())
                self.console.print(f"[red]Not a legal answer: {escape(complaint[:300])}. Try again.[/]")
                continue
            if isinstance(request, Tools) and request.is_query(str(action["tool"])):
                result = request.ask(action)
                queries.append({"call": action, "result": result})
                self.console.print(f"[dim]{escape(str(action['tool']))} says:[/] {escape(_json(result))}")
                continue
            return Decision(action, {"queries": queries}) if queries else action

    def _show_request(self, request: Request) -> None:
        """What the prompt line has no room for: the options of a choice not numbered by
        its values, the tools and their arguments."""
        if isinstance(request, Choice) and not _numbered(request):
            for i, option in enumerate(request.options, 1):
                self.console.print(f"  {i}) {escape(option)}")
        elif isinstance(request, Tools):
            self.console.print("Tools:")
            for tool in request.tools:
                kind = "lookup, answered now" if tool.query else "action, ends your turn"
                arguments = dict(tool.parameters).get("properties") or {}
                line = f"  {tool.name} ({kind}): {tool.description}"
                if arguments:
                    line += f"; arguments: {_json(arguments)}"
                self.console.print(escape(line))

    def expected(self) -> str:
        """What to type, in words."""
        return _expected(self.context.action_space, self.context.action_meanings)

    def _parse(self, answer: str) -> Any:
        space = self.context.action_space
        if isinstance(space, spaces.Text):
            return answer if space.contains(answer) else None  # typed as is, spaces included
        answer = answer.strip()
        if isinstance(space, spaces.Discrete):
            meanings = [m.lower() for m in (self.context.action_meanings or [])]
            if answer.lower() in meanings:
                return int(space.start) + meanings.index(answer.lower())
        try:
            value = json.loads(answer)
        except ValueError:
            # "1 0 2" or "1, 0, 2" for the array spaces
            try:
                value = [json.loads(part) for part in answer.replace(",", " ").split()]
            except ValueError:
                return None
        return _coerce(space, value)


def _numbered(request: Choice) -> bool:
    """Whether the choice's values are whole numbers (typed as they are)."""
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in request.actions)


def _prompt(request: Request) -> str:
    """The prompt line's ask: what the answer is, and what to type."""
    if isinstance(request, Choice) and not _numbered(request):
        return f"your choice (its number, 1 to {len(request.options)}, or its name)"
    if isinstance(request, Text):
        return f"your {'text' if request.tag == 'text' else request.tag} ({request.describe()}; typed as is)"
    if isinstance(request, Tools):
        return 'your tool call ({"tool": <name>, "arguments": {...}} or: <name> {...})'
    return f"your action ({request.describe()})"


def read_request(request: Request, answer: str) -> Coerced:
    """A typed answer to a request as a legal action, or (INVALID, why not)."""
    if isinstance(request, Text):
        return request.coerce(answer)  # taken as typed, spaces included
    stripped = answer.strip()
    if not stripped:
        return INVALID, f"nothing typed; expected {request.describe()}"
    if isinstance(request, Choice):
        action, error = request.coerce(stripped)
        if error is not None and not _numbered(request) and stripped.isdigit():
            index = int(stripped[:6])
            if 1 <= index <= len(request.options):
                return request.actions[index - 1], None
            return INVALID, f"{stripped[:20]} is not an option's number (1 to {len(request.options)})"
        return action, error
    if isinstance(request, Tools):
        return _read_call(request, stripped)
    if isinstance(request, Composite):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            return INVALID, f"that is not JSON; expected {request.describe()}"
        return request.coerce(value)
    return request.read(stripped)


def _read_call(request: Tools, text: str) -> Coerced:
    """A tool call typed as JSON, or as the tool's name and its arguments' JSON object."""
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return INVALID, 'that is not JSON; type {"tool": <name>, "arguments": {...}} or <name> {...}'
        return request.coerce(value)
    match = _SHORT_CALL.fullmatch(text)
    if match is None:
        return INVALID, 'type {"tool": <name>, "arguments": {...}} or <name> {...}'
    name, rest = match.group(1), match.group(2).strip()
    try:
        arguments = json.loads(rest) if rest else {}
    except (ValueError, RecursionError):
        return INVALID, f"the arguments of {name} are not JSON; type {name} {{...}}"
    if not isinstance(arguments, dict):
        return INVALID, f"the arguments of {name} must be a JSON object {{...}}"
    return request.coerce({"tool": name, "arguments": arguments})


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _unplayable(space: spaces.Space) -> str | None:
    """The part of a space nobody can type an answer for, described; None if all can be."""
    if isinstance(space, spaces.Dict):
        return next((p for p in map(_unplayable, space.spaces.values()) if p), None)
    if isinstance(space, spaces.Tuple):
        return next((p for p in map(_unplayable, space.spaces) if p), None)
    return None if isinstance(space, _PLAYABLE) else f"a {type(space).__name__} action space ({space})"


def _expected(space: spaces.Space, meanings: list[str] | None = None) -> str:
    if isinstance(space, spaces.Discrete):
        labels = list(meanings or [])
        items = []
        for i in range(int(space.n)):
            action = int(space.start) + i
            items.append(f"{action} = {labels[i]}" if i < len(labels) else str(action))
        return ", ".join(items)
    if isinstance(space, spaces.MultiDiscrete):
        bounds = ", ".join(f"0-{int(n) - 1}" for n in np.ravel(space.nvec))
        return f"{np.size(space.nvec)} whole numbers, e.g. [{', '.join('0' for _ in np.ravel(space.nvec))}], each in {bounds}"
    if isinstance(space, spaces.MultiBinary):
        return f"{int(np.prod(space.shape))} values 0 or 1, e.g. [{', '.join('0' for _ in range(int(np.prod(space.shape))))}]"
    if isinstance(space, spaces.Box):
        low, high = np.ravel(space.low), np.ravel(space.high)
        bounds = f"from {low[0]:g} to {high[0]:g}" if len(set(low)) == 1 and len(set(high)) == 1 else f"within {space}"
        kind = "a number" if space.shape in ((), (1,)) else f"{int(np.prod(space.shape))} numbers as a JSON list"
        return f"{kind} {bounds}"
    if isinstance(space, spaces.Text):
        text = f"a line of text, {space.min_length} to {space.max_length} characters"
        allowed = str(space.characters)
        if len(allowed) <= 80:  # a small charset (Gymnasium's default: letters and digits) is news
            text += f" from {allowed!r}"
        return text
    if isinstance(space, spaces.Dict):
        return "a JSON object: " + ", ".join(f'"{k}": {_expected(s)}' for k, s in space.spaces.items())
    if isinstance(space, spaces.Tuple):
        return "a JSON list: " + "; ".join(_expected(s) for s in space.spaces)
    return str(space)


def _coerce(space: spaces.Space, value: Any) -> Any:
    """A JSON value as a legal action of the space, or None."""
    try:
        if isinstance(space, spaces.Discrete):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
                return None
            action: Any = int(value)
        elif isinstance(space, spaces.Text):
            action = value if isinstance(value, str) else None
        elif isinstance(space, spaces.Dict):
            if not isinstance(value, dict) or set(value) != set(space.spaces):
                return None
            action = {k: _coerce(s, value[k]) for k, s in space.spaces.items()}
            if any(v is None for v in action.values()):
                return None
        elif isinstance(space, spaces.Tuple):
            if not isinstance(value, list) or len(value) != len(space.spaces):
                return None
            action = tuple(_coerce(s, v) for s, v in zip(space.spaces, value))
            if any(v is None for v in action):
                return None
        else:  # MultiDiscrete, MultiBinary, Box: numbers, reshaped to the space
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            array = np.asarray(value, dtype=space.dtype)
            if array.size != int(np.prod(space.shape or ())):
                return None
            action = array.reshape(space.shape)
            if not np.issubdtype(space.dtype, np.floating) and not np.array_equal(action, np.asarray(value, dtype=float).reshape(space.shape)):
                return None  # 1.5 is not a whole number, whatever the cast makes of it
        return action if action is not None and space.contains(action) else None
    except (TypeError, ValueError, OverflowError):
        return None

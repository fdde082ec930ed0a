"""How an action space is asked for and read back from a model's answer.

The answer format is JSON `{"action": ...}` for every request (see `normlab.requests`): a JSON
schema constrains local models to it, tool-calling harnesses offer it as an `act` tool (or
offer an env's own tools), and a lenient parser accepts what weaker models write instead (a
bare number, an option's name, a plain text).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
from gymnasium import spaces

from normlab.requests import INVALID, Choice, Composite, Integer, Number, Request, Tools, request_for_space
from normlab.requests import Text as RequestText
from normlab.spaces import tool_schema

ACT_TOOL = "act"


class ActionFormat:
    """How one request is asked for and read back. Built from a `Request` (each turn), or
    from a static space and its action meanings."""

    def __init__(self, request: Request | spaces.Space, meanings: list[str] | None = None):
        if isinstance(request, spaces.Space):
            request = request_for_space(request, meanings)
        self.request = request
        self.choice = request if isinstance(request, Choice) else None
        self.tools = request if isinstance(request, Tools) else None

    # --- asking ------------------------------------------------------------------------

    def value_schema(self) -> dict[str, Any]:
        return self.request.schema()

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"action": self.value_schema()}, "required": ["action"]}

    def response_format(self, style: str = "json_object") -> dict[str, Any]:
        """The schema as a `response_format`: `json_object` with a `schema` is llama.cpp's form
        (normlab's own providers, llama-cpp-python's server); `json_schema` is OpenAI's
        structured-output form, which vLLM, Ollama, LM Studio and API models honour (strict
        where the schema allows it: every property required, no others)."""
        if style == "json_schema":
            schema = {**self.schema(), "additionalProperties": False}
            return {"type": "json_schema", "json_schema": {"name": "action", "schema": schema, "strict": _strict(self.request)}}
        return {"type": "json_object", "schema": self.schema()}

    def choices_text(self) -> str:
        return self.request.describe()

    def instructions(self) -> str:
        if self.choice is not None:
            return f'Answer with JSON only: {{"action": <choice>}}, where <choice> is one of: {self.choices_text()}.'
        return f'Answer with JSON only: {{"action": <answer>}}, where <answer> is {self.choices_text()}.'

    def tool(self) -> dict[str, Any]:
        what = f"Choices: {self.choices_text()}" if self.choice is not None else f"The action is {self.choices_text()}"
        return tool_schema(ACT_TOOL, f"Take your action in the environment. {what}.", self.schema())

    def describe(self, action: Any) -> str:
        """An action as a person reads it, e.g. `1 (defect)`."""
        if self.choice is not None:
            label = self.choice.label(action)
            if label is not None and label != str(action):
                return f"{json.dumps(action, default=str)} ({label})"
        return json.dumps(action, default=str)

    # --- reading -----------------------------------------------------------------------

    def parse(self, text: str | None) -> tuple[Any, str | None]:
        """The legal action an answer names, or (INVALID, why not)."""
        if text is None or not text.strip():
            return INVALID, "the answer was empty"
        for candidate in _json_objects(text):
            if isinstance(candidate, dict):
                for key in ("action", "choice", "answer"):
                    if key in candidate:
                        return self.coerce(candidate[key])
                if self.tools is not None and ("tool" in candidate or "name" in candidate):
                    return self.coerce(candidate)
        if self.choice is not None or isinstance(self.request, (RequestText, Integer, Number)):
            return self.request.read(text)
        return INVALID, f"no action found in the answer; {self.instructions()}"

    def coerce(self, value: Any) -> tuple[Any, str | None]:
        """A value from JSON or a tool call as a legal action, or (INVALID, why not)."""
        return self.request.coerce(value)


def _strict(request: Request) -> bool:
    """Whether OpenAI's strict mode accepts the schema (tool parameters and arbitrary spaces
    may leave properties optional)."""
    if isinstance(request, Composite):
        return all(_strict(sub) for _, sub in request.fields)
    return isinstance(request, (Choice, Integer, Number, RequestText))


def _json_objects(text: str) -> list[Any]:
    """JSON values found in a text: the whole text, then each {...} span."""
    found: list[Any] = []
    try:
        found.append(json.loads(text))
    except (json.JSONDecodeError, ValueError, RecursionError):
        pass
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            found.append(json.loads(match.group(0)))
        except (json.JSONDecodeError, ValueError):
            continue
    return found


def observation_text(observation: Any) -> str:
    """What a model reads of an observation: its text rendering, or the structure as JSON."""
    if isinstance(observation, dict) and isinstance(observation.get("text"), str):
        return observation["text"]
    if isinstance(observation, str):
        return observation
    from normlab.results import dumps_json

    return dumps_json(observation)

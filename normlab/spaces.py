"""Action spaces as models answer them: JSON schemas of Gymnasium spaces, values read back
into a space, and `ToolCall`, the space of a tool call `{"tool": name, "arguments": {...}}`
whose `contains` checks the name and the arguments against the tools' JSON schemas (so a tool
env passes Gymnasium's and PettingZoo's official checkers).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces


def space_schema(space: spaces.Space) -> dict[str, Any]:
    """A JSON schema of a space's values, tight enough for constrained decoding."""
    if isinstance(space, spaces.Discrete):
        return {"type": "integer", "enum": [int(space.start) + i for i in range(int(space.n))]}
    if isinstance(space, spaces.Text):
        return {"type": "string", "minLength": int(space.min_length), "maxLength": int(space.max_length)}
    if isinstance(space, spaces.Dict):
        return {
            "type": "object",
            "properties": {str(key): space_schema(sub) for key, sub in space.spaces.items()},
            "required": [str(key) for key in space.spaces],
            "additionalProperties": False,
        }
    if isinstance(space, spaces.Tuple):
        return {"type": "array", "minItems": len(space.spaces), "maxItems": len(space.spaces)}
    if isinstance(space, spaces.MultiBinary):
        size = int(np.prod(space.shape or ()))
        return {"type": "array", "items": {"type": "integer", "enum": [0, 1]}, "minItems": size, "maxItems": size}
    if isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        size = int(space.nvec.shape[0])
        high = int(np.max(space.start + space.nvec - 1))
        return {"type": "array", "items": {"type": "integer", "minimum": int(np.min(space.start)), "maximum": high}, "minItems": size, "maxItems": size}
    if isinstance(space, spaces.Box):
        number: dict[str, Any] = {"type": "integer" if np.issubdtype(space.dtype, np.integer) else "number"}
        low, high = np.min(space.low), np.max(space.high)
        if np.isfinite(low):
            number["minimum"] = low.item()
        if np.isfinite(high):
            number["maximum"] = high.item()
        if space.shape == ():
            return number
        size = int(np.prod(space.shape))
        return {"type": "array", "items": number, "minItems": size, "maxItems": size}
    return {}


def space_text(space: spaces.Space) -> str:
    """What an answer must be, in words, for instructions and error messages."""
    if isinstance(space, spaces.Text):
        return f"a string of {int(space.min_length)} to {int(space.max_length)} characters"
    if isinstance(space, spaces.Dict):
        fields = ", ".join(f'"{key}": {space_text(sub)}' for key, sub in space.spaces.items())
        return f"a JSON object {{{fields}}}"
    if isinstance(space, spaces.Discrete):
        return f"an integer from {int(space.start)} to {int(space.start) + int(space.n) - 1}"
    return f"a value of {space}"


def coerce_to_space(space: spaces.Space, value: Any) -> tuple[Any, str | None]:
    """A value from JSON or a tool call as a legal element of `space`, or (None, why not)."""
    if isinstance(space, spaces.Discrete):
        number = as_integer(value)
        if number is None or not space.contains(np.int64(number)):
            return None, f"{shown(value)} is not {space_text(space)}"
        return number, None
    if isinstance(space, spaces.Text):
        if not isinstance(value, str):
            return None, f"{shown(value)} is not {space_text(space)}"
        if not int(space.min_length) <= len(value) <= int(space.max_length):
            return None, f"the text has {len(value)} characters; it must have {int(space.min_length)} to {int(space.max_length)}"
        outside = sorted({c for c in value if c not in space.character_set})
        if outside:
            return None, f"the text uses characters that are not allowed: {shown(''.join(outside[:20]))}"
        return value, None
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict):
            return None, f"{shown(value)} is not {space_text(space)}"
        keys = {str(k) for k in space.spaces}
        if set(value) != keys:
            return None, f"the object needs exactly the keys {', '.join(sorted(keys))}"
        chosen: dict[str, Any] = {}
        for key, sub in space.spaces.items():
            item, error = coerce_to_space(sub, value[str(key)])
            if error is not None:
                return None, f"{key}: {error}"
            chosen[key] = item
        return chosen, None
    if isinstance(space, spaces.Tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(space.spaces):
            return None, f"{shown(value)} is not a list of {len(space.spaces)} values"
        items = []
        for i, sub in enumerate(space.spaces):
            item, error = coerce_to_space(sub, value[i])
            if error is not None:
                return None, f"item {i}: {error}"
            items.append(item)
        return tuple(items), None
    try:
        action = np.asarray(value, dtype=space.dtype) if space.dtype is not None else value
    except (TypeError, ValueError, OverflowError):
        return None, f"{shown(value)} is not {space}"
    try:
        legal = bool(space.contains(action))
    except (TypeError, ValueError, OverflowError):
        legal = False
    if not legal:
        return None, f"{shown(value)} is not a legal action of {space}"
    return action, None


def as_integer(value: Any) -> int | None:
    """An integral JSON number as an int, or None (bools, strings, NaN, inf, fractions)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted in an error message back to the model, cut to a readable length."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        text = "a number too long to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."




def tool_schema(name: str, description: str, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAI function-tool schema."""
    params = dict(parameters or {"type": "object", "properties": {}})
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


#: Checked validators by schema text: envs build a ToolCall space for every turn's request,
#: and checking a schema costs far more than playing a scripted turn.
_VALIDATORS: dict[str, Any] = {}
_MAX_VALIDATORS = 4096


def _validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema

    try:
        key = json.dumps(schema, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # not JSON data: checked every time, never cached
        key = None
    found = _VALIDATORS.get(key) if key is not None else None
    if found is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        found = cls(copy.deepcopy(dict(schema)))  # its own copy: a caller may change theirs
        if key is not None:
            if len(_VALIDATORS) >= _MAX_VALIDATORS:
                _VALIDATORS.clear()
            _VALIDATORS[key] = found
    return found


class ToolCall(spaces.Space[dict]):
    """Calls of a fixed set of tools: `{"tool": name, "arguments": {...}}`.

    `tools` are OpenAI function-tool schemas (or their `function` part). `contains` validates
    the arguments with `jsonschema`; `sample` draws a tool and arguments from its schema
    (types, enums, bounds, required and optional properties), enough for the env checkers.
    """

    def __init__(self, tools: Sequence[Mapping[str, Any]], seed: int | np.random.Generator | None = None):
        self.tools = [dict(t.get("function", t)) for t in tools]
        if not self.tools:
            raise ValueError("ToolCall needs at least one tool")
        self.names = [str(t["name"]) for t in self.tools]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"tool names must be distinct, got {self.names}")
        self.parameters = {t["name"]: dict(t.get("parameters") or {"type": "object", "properties": {}}) for t in self.tools}
        self._validators = {name: _validator(schema) for name, schema in self.parameters.items()}
        super().__init__(None, None, seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def problem(self, value: Any) -> str | None:
        """Why a value is not a call of these tools (None: it is one)."""
        if not isinstance(value, Mapping) or set(value) != {"tool", "arguments"}:
            return 'a tool call is {"tool": <name>, "arguments": {...}}'
        name = value["tool"]
        if not isinstance(name, str) or name not in self._validators:
            return f"{shown(name)} is not one of the tools: {', '.join(self.names)}"
        arguments = value["arguments"]
        if not isinstance(arguments, Mapping):
            return f"the arguments of {name} must be a JSON object"
        error = next(iter(self._validators[name].iter_errors(dict(arguments))), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            return f"{name}: {(where + ': ') if where else ''}{error.message[:200]}"
        if not _finite(arguments):
            return f"{name}: the arguments hold a number that is not finite"
        return None

    def contains(self, x: Any) -> bool:
        return self.problem(x) is None

    def sample(self, mask: Any = None, probability: Any = None) -> dict[str, Any]:
        name = self.names[int(self.np_random.integers(len(self.names)))]
        return {"tool": name, "arguments": sample_json(self.parameters[name], self.np_random)}

    def __repr__(self) -> str:
        return f"ToolCall({', '.join(self.names)})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ToolCall) and self.tools == other.tools

    def to_jsonable(self, sample_n: Iterable[dict]) -> list[dict]:
        return [dict(x) for x in sample_n]

    def from_jsonable(self, sample_n: list[dict]) -> list[dict]:
        return [dict(x) for x in sample_n]


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def sample_json(schema: Mapping[str, Any], rng: np.random.Generator, depth: int = 0) -> Any:
    """A value of a simple JSON schema (what tool parameters use): enum/const, object,
    array, string, integer, number, boolean; anything else gives null."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        options = list(schema["enum"])
        return options[int(rng.integers(len(options)))]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = list(schema[key])
            return sample_json(options[int(rng.integers(len(options)))], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[int(rng.integers(len(kind)))]
    if kind == "object" or (kind is None and "properties" in schema):
        props = dict(schema.get("properties") or {})
        required = set(schema.get("required") or [])
        return {
            key: sample_json(sub, rng, depth + 1)
            for key, sub in props.items()
            if key in required or (depth < 3 and rng.random() < 0.5)
        }
    if kind == "array":
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 3))
        count = int(rng.integers(low, high + 1))
        return [sample_json(schema.get("items") or {}, rng, depth + 1) for _ in range(count)]
    if kind == "string":
        low = int(schema.get("minLength", 0))
        high = min(int(schema.get("maxLength", low + 12)), low + 12)
        letters = "abcdefghijklmnopqrstuvwxyz"
        return "".join(letters[int(i)] for i in rng.integers(len(letters), size=int(rng.integers(low, high + 1))))
    if kind == "integer":
        low = int(schema.get("minimum", -100))
        high = int(schema.get("maximum", low + 200))
        return int(rng.integers(low, high + 1))
    if kind == "number":
        least = float(schema.get("minimum", -100.0))
        most = float(schema.get("maximum", least + 200.0))
        return float(rng.uniform(least, most))
    if kind == "boolean":
        return bool(rng.integers(2))
    return None

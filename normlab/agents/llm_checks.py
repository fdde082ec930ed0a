"""Checks of an LLM agent's config that need more than its types: harness, skills, tools,
model string, the mock model's behaviour, free-form call parameters.

Light on purpose: LiteLLM (seconds to import) is imported only for a model that is neither
`local/` nor `mock/`, and LangChain only when a scenario names tools.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from normlab.harnesses import HARNESSES
from normlab.harnesses.skills import SkillError, load_skill

#: Model prefixes normlab serves itself; every other prefix is a LiteLLM provider.
OWN_PREFIXES = ("local", "mock")
#: Tool names the harnesses give their own tools.
RESERVED_TOOL_NAMES = ("act", "load_skill")


def check_llm_config(config: Any, action_space: spaces.Space | None, base: Path | None = None) -> list[tuple[tuple, str]]:
    from normlab.scenario import free_form_problems

    problems: list[tuple[tuple, str]] = []
    problems.extend(harness_problems(config.harness))
    info = HARNESSES.get(config.harness_name)
    message = check_model_string(config.model)
    if message is not None:
        problems.append((("model",), message))
    for i, ref in enumerate(config.skills):
        try:
            load_skill(ref, base)
        except SkillError as exc:
            problems.append((("skills", i), str(exc)))
    if info is not None and config.skills_mode == "on_demand" and not info.uses_tools:
        problems.append((("skills_mode",), f"on_demand skills need a tool-calling harness (react or langchain), not {config.harness_name}"))
    if config.tools and config.harness_name != "langchain":
        problems.append((("tools",), "tools given as 'module:attribute' are LangChain tools: use harness langchain"))
    if config.tools:
        problems.extend(_tool_problems(config.tools, base))
    params = dict(config.params)
    if config.model.startswith("mock/") and "mock" in params:
        problems.extend((("params", "mock", *loc), msg) for loc, msg in check_mock_behaviour(params.pop("mock")))
    problems.extend(free_form_problems(params, ("params",)))
    return problems


def harness_problems(harness: Any) -> list[tuple[tuple, str]]:
    """A harness name, or `{name: ..., params...}` checked against that harness's Params."""
    from normlab.envs.base import params_problems

    if isinstance(harness, dict):
        if "name" not in harness:
            return [(("harness", "name"), f"required field is missing (one of {', '.join(HARNESSES)})")]
        name = harness["name"]
        if not isinstance(name, str) or name not in HARNESSES:
            return [(("harness", "name"), f"must be one of {', '.join(HARNESSES)}")]
        given = {k: v for k, v in harness.items() if k != "name"}
        return [(("harness", *loc), msg) for loc, msg in params_problems(HARNESSES[name].params, given, f"the {name} harness")]
    if harness not in HARNESSES:
        return [(("harness",), f"must be one of {', '.join(HARNESSES)}")]
    return []


# --- model strings ----------------------------------------------------------------------


def check_model_string(model: str) -> str | None:
    """None when a model string can name a model, else a one-line message saying why not.

    `local/` models must have their GGUF file; `mock/` takes any name; any other prefix must be
    a LiteLLM provider (LiteLLM is imported only then)."""
    example = "e.g. local/smollm2-135m, mock/test or openai/gpt-4o-mini"
    if not model.strip():
        return f"the model is empty; write provider/model, {example}"
    prefix, sep, name = model.partition("/")
    if not sep or not prefix:
        return f"model {model!r} has no provider prefix; write provider/model, {_prefix_hint(model) or example}"
    if not name.strip():
        return f"model {model!r} names no model after {prefix + '/'!r}"
    if prefix == "local":
        from normlab.models.local_files import LocalModelNotFoundError, resolve_model_path

        try:
            resolve_model_path(model)
        except LocalModelNotFoundError as exc:
            return str(exc)
        return None
    if prefix == "mock":
        return None
    providers = _litellm_providers()
    if prefix not in providers:
        close = _close_match(prefix, [*OWN_PREFIXES, *providers])
        hint = f"; did you mean {close + '/'!r}?" if close else "; normlab's own are local/ and mock/, the rest are LiteLLM's providers"
        return f"unknown model provider {prefix + '/'!r} in {model!r}{hint}"
    return None


@functools.lru_cache(maxsize=1)
def _litellm_providers() -> tuple[str, ...]:
    from normlab.models.providers import litellm

    return tuple(str(getattr(p, "value", p)) for p in litellm().provider_list)


def _prefix_hint(model: str) -> str:
    """'e.g. openai/gpt-4o' where LiteLLM knows which provider serves a bare model name."""
    try:
        from normlab.models.providers import litellm

        _, provider, _, _ = litellm().get_llm_provider(model)
    except Exception:
        return ""
    return f"e.g. {provider}/{model}" if provider else ""


def _close_match(word: str, options: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, options, n=1)
    return close[0] if close else None


# --- the mock model's behaviour ---------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MockToolCall(_Strict):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw: str | None = Field(default=None, description="The arguments text exactly as a model wrote it")


class MockBehaviour(_Strict):
    """`params: {mock: {...}}` of a `mock/<name>` model (see normlab.models.mock)."""

    reply: str | None = None
    replies: list[str] | None = Field(default=None, min_length=1)
    rules: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(default_factory=list, description="[regex, reply] pairs")
    tool_calls: list[MockToolCall] | None = None
    latency: float = Field(default=0.0, ge=0.0, le=3_600.0)
    fail_first: int = Field(default=0, ge=0, le=1_000_000)
    fault: Literal["rate_limit", "timeout", "server_error", "garbage", "auth"] = "rate_limit"
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("rules")
    @classmethod
    def _patterns_compile(cls, rules: list[list[str]]) -> list[list[str]]:
        import re

        for pattern, _ in rules:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return rules


def check_mock_behaviour(behaviour: Any) -> list[tuple[tuple, str]]:
    from normlab.scenario import pydantic_message

    try:
        MockBehaviour.model_validate(behaviour)
    except ValidationError as exc:
        return [(tuple(err["loc"]), _mock_message(err, pydantic_message)) for err in exc.errors()]
    return []


def _mock_message(err: Any, pydantic_message: Any) -> str:
    if err["type"] == "extra_forbidden":
        if "tool_calls" in err["loc"]:
            return f"unknown key of a mock tool call (keys: {', '.join(MockToolCall.model_fields)})"
        known = ", ".join(MockBehaviour.model_fields)
        return f"unknown key of the mock model's behaviour (keys: {known})"
    return pydantic_message(err)


# --- tools ----------------------------------------------------------------------------------


def _tool_problems(refs: list[str], base: Path | None) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    seen: dict[str, int] = {}
    for i, ref in enumerate(refs):
        try:
            names = tool_names(load_tool(ref, base))
        except ValueError as exc:
            problems.append((("tools", i), str(exc)))
            continue
        for name in names:
            if name in RESERVED_TOOL_NAMES:
                problems.append((("tools", i), f"tool name {name!r} is reserved by the harness ({', '.join(RESERVED_TOOL_NAMES)}); rename the tool"))
            elif name in seen:
                problems.append((("tools", i), f"tool name {name!r} is also given by tools[{seen[name]}]; tool names must be unique"))
            else:
                seen[name] = i
    return problems


def tool_names(obj: Any) -> list[str]:
    """The names of the LangChain tools an attribute gives (a BaseTool, a plain function
    LangChain can wrap, or a list of them); ValueError when it gives none of these."""
    try:
        from normlab.harnesses.langchain import flatten_tools
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    try:
        tools = flatten_tools(list(obj) if isinstance(obj, (list, tuple)) else [obj])
    except Exception as exc:  # LangChain may refuse a callable with any error
        raise ValueError(_first_line(exc) if not isinstance(exc, ValueError) else str(exc).splitlines()[0]) from None
    if not tools:
        raise ValueError("gives an empty list of tools")
    return [t.name for t in tools]


def load_tool(ref: str, base: Path | str | None = None) -> Any:
    """A LangChain tool from 'module:attribute' (the attribute may be a tool, a function or a
    list of them; `attribute` may be dotted). The module is looked up first in `base` (the
    scenario's folder), then in the current folder, then on the usual path."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ValueError(f"{ref!r} is not 'module:attribute'")
    roots = ([str(Path(base).resolve())] if base is not None else []) + [os.getcwd()]
    added = list(dict.fromkeys(roots))
    sys.path[:0] = added
    importlib.invalidate_caches()  # a module written since the last import must be found
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a user's module may fail any way, even sys.exit()
        raise ValueError(f"cannot import {module_name!r} for tool {ref!r}: {_first_line(exc)}") from None
    finally:
        for root in added:
            try:
                sys.path.remove(root)  # the first occurrence: the one inserted above
            except ValueError:
                pass
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"cannot load tool {ref!r}: {module_name!r} has no attribute {attr!r}") from None
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__

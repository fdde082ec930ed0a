"""The environment registry: one id style for single-agent and multi-agent envs.

Single-agent envs are also registered with Gymnasium so `gymnasium.make(id)` works;
multi-agent (PettingZoo) envs live only here. normlab's own envs register at import time,
from static lines in `normlab/envs/__init__.py`; envs of other packages register through the
`normlab.envs` entry-point group (a callable that calls `register`), loaded the first time
the registry is listed or looked up. A spec may carry `kwargs` (a variant of an env, e.g. a
noisy IPD) and `max_episode_steps` (a time limit, as in Gymnasium).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium
from pydantic import BaseModel

EnvApi = Literal["gymnasium", "parallel", "aec"]

#: Agent id of the only agent of a single-agent (Gymnasium) env in scenarios and the store.
SINGLE_AGENT_ID = "agent"


class UnknownEnvError(KeyError):
    """Raised for an env id that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; a user should read plain text
        return str(self.args[0])


#: Entry-point group through which other packages register envs.
ENTRY_POINT_GROUP = "normlab.envs"

log = logging.getLogger("normlab.envs")


@dataclass(frozen=True)
class EnvSpec:
    id: str
    entry_point: str
    api: EnvApi
    description: str
    #: Constructor arguments of this id; `make(id, **params)` lays params over them.
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: Episodes are truncated after this many steps (None: the env decides alone).
    max_episode_steps: int | None = None

    def load(self) -> type:
        module_name, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def params_model(self) -> type[BaseModel] | None:
        """The env's pydantic `Params` (see normlab/envs/base.py), None for envs without."""
        model = getattr(self.load(), "Params", None)
        return model if isinstance(model, type) and issubclass(model, BaseModel) else None

    def parameters(self) -> dict[str, inspect.Parameter]:
        """Constructor parameters a scenario may set under `env.params` (from `Params` where
        the env has it: its constructor then takes `**params`)."""
        model = self.params_model()
        if model is not None:
            return {
                name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.get_default(call_default_factory=True))
                for name, field in model.model_fields.items()
            }
        params = inspect.signature(self.load()).parameters
        return {
            name: p
            for name, p in params.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }


_SPECS: dict[str, EnvSpec] = {}
_plugins_loaded = False
_move_events: frozenset[str] | None = None


def register(
    id: str,
    entry_point: str,
    api: EnvApi,
    description: str,
    *,
    kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> None:
    global _move_events
    if api not in ("gymnasium", "parallel", "aec"):
        raise ValueError(f"api must be gymnasium, parallel or aec, got {api!r}")
    if max_episode_steps is not None:
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        if api == "aec":
            raise ValueError("max_episode_steps is not supported for AEC envs yet; truncate in the env")
    _SPECS[id] = EnvSpec(
        id=id,
        entry_point=entry_point,
        api=api,
        description=description,
        kwargs=dict(kwargs or {}),
        max_episode_steps=max_episode_steps,
    )
    _move_events = None
    if api == "gymnasium" and id not in gymnasium.registry:
        gymnasium.register(
            id=id, entry_point=entry_point, kwargs=dict(kwargs or {}), max_episode_steps=max_episode_steps
        )


def _load_plugins() -> None:
    """Run each `normlab.envs` entry point once; a broken one is a warning, never a crash."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # before loading: a plugin may look the registry up itself
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()()
        except Exception as exc:
            log.warning("env plugin %r (%s) failed to register, skipped: %s: %s", entry.name, entry.value, type(exc).__name__, exc)


def spec(id: str) -> EnvSpec:
    _load_plugins()
    try:
        return _SPECS[id]
    except KeyError:
        known = ", ".join(sorted(_SPECS)) or "none"
        raise UnknownEnvError(f"unknown env id {id!r}; known ids: {known}") from None


def specs() -> list[EnvSpec]:
    _load_plugins()
    return sorted(_SPECS.values(), key=lambda s: s.id)


def make(id: str, **params: Any) -> Any:
    """Build an env by id: a Gymnasium `Env` or a PettingZoo `ParallelEnv` / `AECEnv`, with
    the spec's kwargs under `params` and its time limit, if any."""
    env_spec = spec(id)
    if env_spec.api == "gymnasium":
        # Gymnasium lays params over the spec's kwargs and adds the TimeLimit itself; the
        # passive checker is off: the official checker runs in tests, not on every step
        return gymnasium.make(id, disable_env_checker=True, **params)
    env = env_spec.load()(**{**env_spec.kwargs, **params})
    if env_spec.max_episode_steps is not None:
        from normlab.envs.wrappers import ParallelTimeLimit

        env = ParallelTimeLimit(env, env_spec.max_episode_steps)
    return env


def check_params(
    id: str, params: dict[str, Any]
) -> tuple[list[tuple[tuple[Any, ...], str]], tuple[list[str], dict[str, gymnasium.spaces.Space]] | None]:
    """Every problem with an env's parameters, each located at the parameter it is about
    (nested keys too, e.g. ("payoffs", "T")), and the env's agent ids and action spaces when
    it builds with the parameters that are fine.

    An env with a `Params` model is checked against it; any other env is built, and a failed
    build repeated with one parameter at a time to find every culprit.
    """
    env_spec = spec(id)
    try:
        model = env_spec.params_model()
    except Exception as exc:  # a plugin env that fails to import: say so at env.id, no traceback
        return [((), f"env {id} cannot be loaded from {env_spec.entry_point}: {type(exc).__name__}: {exc}")], None
    if model is None:
        return _check_by_building(env_spec, params)
    from normlab.envs.base import params_problems

    name = getattr(env_spec.load(), "env_name", lambda: id)()
    problems = params_problems(model, {**env_spec.kwargs, **params}, name)
    if not problems:
        return _check_by_building(env_spec, params)
    blamed = {loc[0] for loc, _ in problems if loc}
    built, _ = _try_build(id, {k: v for k, v in params.items() if k not in blamed})
    return problems, built


def _check_by_building(
    env_spec: EnvSpec, params: dict[str, Any]
) -> tuple[list[tuple[tuple[Any, ...], str]], tuple[list[str], dict[str, gymnasium.spaces.Space]] | None]:
    """Envs that check their parameters in `__init__` raise on the first bad one, so a failed
    build is repeated with one parameter at a time (and, for a mapping, one key of it at a
    time) to find every culprit; any exception, not only ValueError, is a problem to report."""
    id = env_spec.id
    accepted = env_spec.parameters()
    problems: list[tuple[tuple[Any, ...], str]] = []
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), list(accepted), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(((key,), f"unknown parameter of {id}{hint}"))
    known = {k: v for k, v in params.items() if k in accepted}
    built, error = _try_build(id, known)
    if error is None:
        return problems, built
    blamed: set[str] = set()
    for key, value in known.items():
        _, alone = _try_build(id, {key: value})
        if alone is None:
            continue
        blamed.add(key)
        parts: list[tuple[tuple[Any, ...], str]] = []
        # a mapping the env accepts in part (e.g. payoffs: {T: 4}): point at its bad keys
        if isinstance(value, dict) and value and _try_build(id, {key: {}})[1] is None:
            for sub, item in value.items():
                failed = _try_build(id, {key: {sub: item}})[1]
                if failed is not None:
                    parts.append(((key, sub), _message(failed, key)))
        problems.extend(parts or [((key,), _message(alone, key))])
    if not blamed:
        # only the combination fails: envs name the parameter first ("noise must be ..")
        message = str(error)
        named = [k for k in known if message.startswith((f"{k} ", f"{k}:", f"'{k}'", f"`{k}`"))]
        problems.append(((named[0],) if named else (), _message(error, None)))
        return problems, None
    built, _ = _try_build(id, {k: v for k, v in known.items() if k not in blamed})
    return problems, built


def _try_build(id: str, params: dict[str, Any]) -> tuple[tuple[list[str], dict[str, Any]] | None, Exception | None]:
    try:
        env = make(id, **params)
    except Exception as exc:  # a bad parameter may raise anything (TypeError, OverflowError...)
        return None, exc
    try:
        return agent_ids_and_action_spaces(env), None
    except Exception as exc:
        return None, exc
    finally:
        try:
            env.close()
        except Exception:
            pass


def _message(exc: Exception, key: str | None) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, ValueError) and first:
        return first
    about = f"{key} " if key else ""
    return f"{about}is not accepted by the env ({type(exc).__name__}{': ' + first if first else ''})"


def api_of(env: Any) -> EnvApi:
    """Which loop an env instance needs."""
    from pettingzoo import AECEnv, ParallelEnv

    if isinstance(env, gymnasium.Env):
        return "gymnasium"
    if isinstance(env, ParallelEnv):
        return "parallel"
    if isinstance(env, AECEnv):
        return "aec"
    raise TypeError(f"{type(env).__name__} is neither a Gymnasium Env nor a PettingZoo env")


def agent_ids_and_action_spaces(env: Any) -> tuple[list[str], dict[str, gymnasium.spaces.Space]]:
    if api_of(env) == "gymnasium":
        return [SINGLE_AGENT_ID], {SINGLE_AGENT_ID: env.action_space}
    return list(env.possible_agents), {a: env.action_space(a) for a in env.possible_agents}


def _target(env: Any) -> Any:
    """The env itself, under any wrappers (Gymnasium's and PettingZoo's both have `unwrapped`)."""
    return getattr(env, "unwrapped", env)


def action_meanings(env: Any, agent: str) -> list[str] | None:
    """Names of discrete actions where the env declares them (for prompts and the human player)."""
    describe = getattr(_target(env), "action_meanings", None)
    meanings = describe(agent) if callable(describe) else None
    return list(meanings) if meanings is not None else None


def rules(env: Any, agent: str) -> str | None:
    """The env's standing rules for an agent, where it states them apart from observations."""
    describe = getattr(_target(env), "rules", None)
    text = describe(agent) if callable(describe) else None
    return str(text) if text is not None else None


def event_types(env: Any) -> dict[str, str] | None:
    """The event types an env declares (type -> meaning), None where it declares none."""
    declared = getattr(_target(env), "event_types", None)
    return dict(declared) if isinstance(declared, Mapping) else None


def fallback_action(env: Any, agent: str) -> Any:
    """What the env carries an invalid answer out as (None: no such action, or not declared)."""
    describe = getattr(_target(env), "fallback_action", None)
    return describe(agent) if callable(describe) else None


def metrics(env: Any, steps: Any) -> dict[str, Any]:
    """Per-episode metrics from an episode's step rows: the env's own `metrics` where it has
    one, else event counts per type and per agent."""
    from normlab.envs.base import count_events

    compute = getattr(_target(env), "metrics", None)
    return dict(compute(steps)) if callable(compute) else count_events(steps)


def move_event_types() -> frozenset[str]:
    """Event types that registered envs declare as restating a move (see `EnvBase.move_events`),
    for feedback that has no env at hand."""
    global _move_events
    if _move_events is None:
        found: set[str] = set()
        for env_spec in specs():
            try:
                found.update(getattr(env_spec.load(), "move_events", ()) or ())
            except Exception:  # an env that fails to import declares nothing here
                continue
        _move_events = frozenset(found)
    return _move_events


def details(id: str) -> dict[str, Any]:
    """What `normlab envs --details ID` shows: the env's description and docstring (its
    rules and action format), its parameters with defaults, its declared events and metrics."""
    env_spec = spec(id)
    cls = env_spec.load()
    params: list[dict[str, Any]] = []
    model = env_spec.params_model()
    if model is not None:
        schema = model.model_json_schema()
        for name, field_info in model.model_fields.items():
            if name == "render_mode":
                continue
            prop = schema.get("properties", {}).get(name, {})
            default = env_spec.kwargs.get(name, field_info.get_default(call_default_factory=True))
            params.append(
                {
                    "name": name,
                    "type": _type_text(prop),
                    "default": default.model_dump(mode="json") if isinstance(default, BaseModel) else default,
                    "description": field_info.description or "",
                }
            )
    else:
        for name, p in env_spec.parameters().items():
            default = env_spec.kwargs.get(name, None if p.default is inspect.Parameter.empty else p.default)
            params.append({"name": name, "type": "", "default": default, "description": ""})
    return {
        "id": env_spec.id,
        "api": env_spec.api,
        "description": env_spec.description,
        "doc": inspect.cleandoc(cls.__doc__ or ""),
        "params": params,
        "events": dict(getattr(cls, "event_types", None) or {}),
        "metrics": dict(getattr(cls, "metric_types", None) or {}),
        "max_episode_steps": env_spec.max_episode_steps,
    }


def _type_text(prop: Mapping[str, Any]) -> str:
    """A JSON-schema property's type as a short text (`integer 1..1000`, `one of a, b`)."""
    if "enum" in prop:
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    options = prop.get("anyOf")
    if options:
        return " or ".join(_type_text(o) for o in options if o.get("type") != "null") or "null"
    kind = str(prop.get("type", "") or ("object" if "$ref" in prop else ""))
    low, high = prop.get("minimum", prop.get("exclusiveMinimum")), prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is not None or high is not None:
        kind += f" {'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
    return kind

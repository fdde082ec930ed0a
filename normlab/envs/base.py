"""What an env declares for LLM agents and the rest of normlab, whatever its API.

`EnvBase` is a mixin for Gymnasium `Env`s and PettingZoo `ParallelEnv`s / `AECEnv`s alike
(`class MyEnv(EnvBase, ParallelEnv)`). Like Gymnasium's `core.py` it stays small: class
attributes and methods with sensible defaults, nothing that touches `reset` or `step`.

- `Params`: a pydantic model of the constructor's keyword arguments. The constructor calls
  `self.parse_params(kwargs)`; scenario validation uses the same model (errors located at the
  exact key) and `normlab schema` publishes its JSON Schema.
- `event_types`: every event type the env puts in `info["events"]`, with what it means;
  `move_events`: the types that only restate the move an agent made (feedback skips them).
- `rules(agent)`, `action_meanings(agent)`: text for prompts.
- `action_request(agent)`: what the acting agent is asked for this turn (a
  `normlab.requests.Request`: choice, integer, number, text, tool, composite); None (the
  default) asks for what the static action space stands for.
- `answer_query(agent, call)`: the result of a *query* tool call (`Tools` requests), answered
  inside the turn without stepping the env.
- `fallback_action(agent)`: what an invalid answer is carried out as. An agent that gives no
  legal action returns `INVALID`; the runner carries out the fallback and records an
  `invalid_action` event. None means the env has no such action: it is handed `INVALID` (or a
  caller's illegal action) and handles it on its own terms.
- `metrics(steps)`: per-episode metrics from stored step rows (the default counts events).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The event an env records when an agent's action is not a legal action.
INVALID_ACTION = "invalid_action"


class EnvParams(BaseModel):
    """Base of env parameter models: strict types (`true` is not 1, "3" is not 3; ints are
    accepted where floats are), no unknown keys, no inf or nan, immutable once built."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


@dataclass(frozen=True)
class Wording:
    """How errors of a parameter read: '{name} must be {kind}, got {value!r}', or
    '{name} must be {bounds}, ...' when only its range is wrong. Put it in `Annotated`."""

    kind: str
    bounds: str | None = None


def Integer(low: int, high: int) -> Any:
    """An int within [low, high], for counts that size loops or arrays."""
    return Annotated[int, Field(ge=low, le=high), Wording(f"an integer between {low:,} and {high:,}")]


def Number(low: float, high: float) -> Any:
    """A finite number within [low, high] (ints are accepted and become floats)."""
    return Annotated[float, Field(ge=low, le=high), Wording("a finite number", f"between {low:g} and {high:g}")]


def OneOf(*options: str) -> Any:
    """One of a few strings."""
    return Annotated[Literal[options], Wording(f"one of {', '.join(options)}")]  # type: ignore[valid-type]


def RenderMode(*modes: str) -> Any:
    """Gymnasium's and PettingZoo's `render_mode` argument: None or one of the env's modes."""
    return Annotated[Literal[modes] | None, Wording(f"None or one of {list(modes)}")]  # type: ignore[valid-type]


Loc = tuple[Any, ...]


class EnvParamsError(ValueError):
    """Bad env parameters: `problems` holds (location, message) pairs, the location being the
    path of keys under `env.params`; the message names the parameter first."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("\n".join(message for _, message in problems))


def params_problems(model: type[BaseModel], params: Mapping[str, Any], env_name: str) -> list[tuple[Loc, str]]:
    """Every problem of `params` against `model`, each at its key, in the wording envs use."""
    try:
        model.model_validate(dict(params))
    except ValidationError as exc:
        return problems_of(model, exc, env_name)
    return []


def problems_of(model: type[BaseModel], exc: ValidationError, env_name: str) -> list[tuple[Loc, str]]:
    return [(tuple(err["loc"]), _message(model, err, env_name)) for err in exc.errors(include_url=False)]


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _message(model: type[BaseModel], err: Any, env_name: str) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    name = _label(loc)
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        if len(loc) == 1:
            close = difflib.get_close_matches(str(loc[0]), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"unknown parameter of {env_name}{hint}"
        return f"{_label(loc[:-1])} has unknown key {loc[-1]!r}; allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return f"{name} is required"
    if kind == "value_error":
        text = err["msg"]
        return text[len("Value error, ") :] if text.startswith("Value error, ") else text
    got = f", got {err['input']!r}" if "input" in err else ""
    wording = _wording_at(model, loc)
    if wording is not None:
        said = wording.bounds if kind in _RANGE_ERRORS and wording.bounds else wording.kind
        return f"{name} must be {said}{got}"
    text = err["msg"]
    for subject in ("Input", "String", "List", "Dictionary", "Value", "Tuple"):
        if text.startswith(f"{subject} should "):
            text = "must " + text[len(f"{subject} should ") :]
            break
    return f"{name} {text}{got}"


def _label(loc: Loc) -> str:
    """`payoffs['T']` for ("payoffs", "T"): the parameter as a Python caller writes it."""
    if not loc:
        return "params"
    return str(loc[0]) + "".join(f"[{part!r}]" for part in loc[1:])


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or part not in current.model_fields:
            return []
        current = _submodel(current.model_fields[part].annotation)
    return list(current.model_fields) if current is not None else []


def _wording_at(model: type[BaseModel], loc: Loc) -> Wording | None:
    """The wording of the innermost declared field on the way to `loc` (list items and
    mapping values read as their field)."""
    current: type[BaseModel] | None = model
    wording = None
    for part in loc:
        if current is not None and isinstance(part, str) and part in current.model_fields:
            field = current.model_fields[part]
            wording = next((m for m in field.metadata if isinstance(m, Wording)), None)
            current = _submodel(field.annotation)
        elif isinstance(part, int) or current is None:
            continue
        else:
            return None
    return wording


class EnvBase:
    """Declarations every normlab env makes; see the module docstring."""

    #: The constructor's parameters; None for an env that checks them itself.
    Params: ClassVar[type[EnvParams] | None] = None
    #: Event type -> what it means. Every event the env emits has a declared type.
    event_types: ClassVar[dict[str, str]] = {
        INVALID_ACTION: "the agent's action was not a legal action; the env applied its fallback",
    }
    #: Event types that restate the move an agent made (e.g. `cooperate`): feedback to the
    #: agent about its own step skips them.
    move_events: ClassVar[frozenset[str]] = frozenset()
    #: Metric name -> what it means, for the keys `metrics(steps)` adds to the event counts
    #: (`normlab envs --details ID` shows them).
    metric_types: ClassVar[dict[str, str]] = {}

    params: EnvParams

    @classmethod
    def parse_params(cls, params: Mapping[str, Any]) -> Any:
        """The validated `Params` of constructor keyword arguments, or EnvParamsError naming
        every bad one."""
        if cls.Params is None:
            raise TypeError(f"{cls.__name__} declares no Params")
        try:
            return cls.Params.model_validate(dict(params))
        except ValidationError as exc:
            raise EnvParamsError(problems_of(cls.Params, exc, cls.env_name())) from None

    @classmethod
    def env_name(cls) -> str:
        metadata = getattr(cls, "metadata", None)
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return str(name) if name else cls.__name__

    @classmethod
    def params_schema(cls) -> dict[str, Any] | None:
        """JSON Schema of the env's parameters (None without `Params`)."""
        return cls.Params.model_json_schema() if cls.Params is not None else None

    @classmethod
    def expand_param(cls, name: str, value: Any) -> list[Any] | None:
        """The values a selector stands for where a scenario's matrix lists `value` for the
        parameter `name` (e.g. a glob over task names); None where `value` is one value.
        Raises ValueError for a selector that matches nothing."""
        return None

    def rules(self, agent: str | None = None) -> str | None:
        """Standing rules for an agent, which harnesses put in the system prompt."""
        return None

    def action_meanings(self, agent: str | None = None) -> list[str] | None:
        """Names of the discrete actions, in order."""
        return None

    def action_request(self, agent: str | None = None) -> Any:
        """This turn's request for `agent` (a `normlab.requests.Request`), or None for the
        one the static action space stands for."""
        return None

    def answer_query(self, agent: str | None, call: dict[str, Any]) -> Any:
        """The result of a query tool call (JSON-ready), answered without stepping the env."""
        return {"success": False, "error": f"{call.get('tool')!r} is not a query tool of this env"}

    def fallback_action(self, agent: str | None = None) -> Any:
        """The action an invalid answer is carried out as (None: the env has none, see above)."""
        return None

    @classmethod
    def round_table(cls, steps: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]] | None:
        """A compact per-round table of an episode from its stored step rows (column names,
        then one row per round: choices, messages, pool...), which `normlab runs show RUN
        --episode K` prints; None for envs without rounds."""
        return None

    def metrics(self, steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Per-episode metrics from the episode's step rows (each with `agent` and `info`, a
        dict or its JSON text): event counts per type, and per type for each agent. An env
        that overrides this adds its own keys to these."""
        return count_events(steps)


def step_infos(steps: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """Each step row with its info as a dict (stored rows hold it as JSON text); rows whose
    info cannot be read are skipped."""
    for row in steps:
        info = row.get("info")
        if isinstance(info, (str, bytes)):
            try:
                info = orjson.loads(info)
            except orjson.JSONDecodeError:
                continue
        if isinstance(info, dict):
            yield row, info


def step_events(steps: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """Each event (a dict) of the step rows, in order, with its row: what env metrics
    recompute from stored steps."""
    for row, info in step_infos(steps):
        for event in info.get("events") or ():
            if isinstance(event, dict):
                yield row, event


def count_events(steps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`{"events": {type: n}, "events_by_agent": {agent: {type: n}}}` over step rows; an
    agent appears once it has an event, an event without a type counts as "event"."""
    events: Counter[str] = Counter()
    by_agent: dict[str, Counter[str]] = {}
    for row, info in step_infos(steps):
        found = info.get("events")
        if not found:
            continue
        per_agent = by_agent.setdefault(str(row.get("agent")), Counter())
        for event in found:
            kind = str(event.get("type", "event")) if isinstance(event, dict) else "event"
            events[kind] += 1
            per_agent[kind] += 1
    return {"events": dict(events), "events_by_agent": {a: dict(c) for a, c in by_agent.items()}}

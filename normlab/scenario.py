"""Scenario files: the pydantic schema and a loader that reports errors as file:line:col.

A scenario is the whole definition of a run. Loading has three passes, and every problem of
all of them is reported at once, each at the position of the offending YAML node, so an
editor can jump to it: a bounded walk over the YAML events (refuses files that aliases blow
up, before anything is built), pydantic in strict mode (types, ranges, required and unknown
keys), then `check_semantics` for what only the registries know (env ids, env parameters,
agent ids, strategies, models, tools). Parts that pydantic accepts are checked semantically
even when other parts of the file failed.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

# bounds the CLI options share; counts that size loops are bounded so that a typo of a few
# digits cannot hang a run
from normlab.agents.configs import HumanAgentConfig, LLMAgentConfig, ScriptedAgentConfig, StrictModel  # noqa: E402
from normlab.agents.kinds import AGENT_KINDS  # noqa: E402
from normlab.design import MAX_VARIANTS, Design, MatrixError, expand_values  # noqa: E402
from normlab.limits import MAX_CONCURRENCY, MAX_EPISODES, MAX_SEED, MAX_WORKERS  # noqa: E402

MAX_TRIALS = 10_000

MAX_STEPS = 1_000_000_000
#: A scenario file, and what its YAML aliases expand it to (characters of scalars plus one per
#: node), may not exceed this: ten levels of ten nested aliases turn 1 KB into gigabytes.
MAX_SCENARIO_CHARS = 1_000_000
#: The effective config stored with a run, serialized as JSON.
MAX_CONFIG_CHARS = 2_000_000
#: Nesting depth of YAML collections.
MAX_NESTING = 64


class EnvConfig(StrictModel):
    id: str = Field(description="Registered env id, e.g. normlab/IteratedPrisonersDilemma-v0")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the env")


class BudgetConfig(StrictModel):
    tokens: int | None = Field(default=None, ge=1, le=MAX_SEED)
    usd: float | None = Field(default=None, gt=0, le=1_000_000.0)


#: One config model per registered agent kind (normlab.agents.kinds), told apart by `kind`
#: (type checkers see the built-in kinds).
if TYPE_CHECKING:
    AgentConfig = Annotated[Union[ScriptedAgentConfig, LLMAgentConfig, HumanAgentConfig], Field(discriminator="kind")]
else:
    AgentConfig = Annotated[Union[tuple(kind.config for kind in AGENT_KINDS.values())], Field(discriminator="kind")]
_AGENT_CONFIG: TypeAdapter[Any] = TypeAdapter(AgentConfig)


class Scenario(StrictModel):
    name: str
    description: str = ""
    env: EnvConfig
    agents: dict[str, AgentConfig] = Field(description="Env agent id -> agent config")
    episodes: int = Field(default=1, ge=1, le=MAX_EPISODES, description="Episodes of each variant and trial (a plain scenario has one variant and one trial)")
    trials: int = Field(default=1, ge=1, le=MAX_TRIALS, description="Times every variant is played, each trial with its own seeds (pass^k and flip rate in reports)")
    matrix: dict[str, Annotated[list[Any], Field(min_length=1, max_length=MAX_VARIANTS)]] | None = Field(
        default=None,
        description="Scenario path -> values, e.g. {env.params.task: [refund_desk/*], agents.agent.model: [m1, m2]}: "
        "every combination is a variant, stored with each episode (see normlab/design.py)",
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS, description="Truncate episodes after this many env steps")
    concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY, description="Episodes run side by side")
    max_failed_episodes: int = Field(default=0, ge=0, le=MAX_EPISODES, description="Episodes that may fail (stored with status failed and their error) before the run fails; resume plays them again")
    executor: Literal["local", "processes"] = Field(default="local", description="local: asyncio tasks in one process; processes: worker processes on this machine (results are the same)")
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS, description="Worker processes of the processes executor (default: the usable cores)")
    chains: int = Field(default=1, ge=1, le=MAX_EPISODES, description="Independent experience chains when agents carry memory across episodes")
    cache: Literal["on", "off", "replay"] = Field(default="on", description="Model response cache; replay fails on any call not cached")
    budget: BudgetConfig | None = Field(default=None, description="Stop the run cleanly when spent")
    store: str | None = Field(default=None, description="SQLAlchemy URL of the trajectory store")
    tags: list[str] = Field(default_factory=list)

    _source_text: str = PrivateAttr(default="")
    _source_path: str = PrivateAttr(default="<scenario>")
    _design: Any = PrivateAttr(default=None)

    @property
    def design(self) -> Design:
        """The variants, trials and episode seeds (built once; raises MatrixError)."""
        if self._design is None:
            self._design = Design(self)
        return self._design

    @property
    def total_episodes(self) -> int:
        """Episodes of the whole run: variants × trials × episodes."""
        return self.design.size if self.matrix or self.trials > 1 else self.episodes

    @property
    def source_text(self) -> str:
        return self._source_text

    @property
    def source_path(self) -> str:
        return self._source_path

    @property
    def source_hash(self) -> str:
        return hashlib.sha256(self._source_text.encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot be run; `problems` holds one entry per error."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > 4 * MAX_SCENARIO_CHARS:  # UTF-8 takes at most 4 bytes a character: never read a huge file
            raise ScenarioError([Problem(str(path), 1, 1, "", _too_large(f"the file has {size:,} bytes"))])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot read: {exc}")]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    if len(text) > MAX_SCENARIO_CHARS:
        raise ScenarioError([Problem(filename, 1, 1, "", _too_large(f"the file has {len(text):,} characters"))])
    data = _parse_yaml(text, filename)
    if not isinstance(data, dict):
        raise ScenarioError([Problem(filename, 1, 1, "", "a scenario must be a YAML mapping")])
    locator = _Locator(data, filename)
    plain = _plain(data)
    problems: list[Problem] = []
    try:
        scenario: Scenario | None = Scenario.model_validate(plain)
    except ValidationError as exc:
        scenario = None
        problems.extend(_problem_from_pydantic(err, locator) for err in exc.errors())
    base = _base_of(filename)
    if scenario is not None:
        scenario._source_text = text
        scenario._source_path = filename
        semantic = check_semantics(scenario)
    else:
        # check what did validate, so one pass reports the file's every problem
        env, agents = _valid_parts(plain)
        semantic = _semantic_problems(env, agents, base)
    problems.extend(locator.problem(loc, msg) for loc, msg in semantic)
    if scenario is not None and not problems:
        problems.extend(locator.problem(loc, msg) for loc, msg in matrix_problems(scenario))
    if scenario is not None and not problems:
        problems.extend(Problem(filename, 1, 1, "", msg) for msg in _config_size_problems(scenario))
    if problems:
        raise ScenarioError(_ordered(problems))
    assert scenario is not None
    return scenario


def scenario_from_config(config: dict[str, Any], source_text: str, filename: str) -> Scenario:
    """Rebuild a stored or overridden scenario (resume, --model, --episodes): the effective
    config, with the original text kept. Raises pydantic's ValidationError for a bad config
    (it has no place in the file to point at), ScenarioError for one too large to store."""
    scenario = Scenario.model_validate(config)
    scenario._source_text = source_text
    scenario._source_path = filename
    size_problems = _config_size_problems(scenario)
    try:
        total = scenario.total_episodes
    except MatrixError as exc:
        size_problems.append(f"matrix: {exc}")
    else:
        if total > MAX_EPISODES:
            size_problems.append(f"variants × trials × episodes is {total:,}; the limit is {MAX_EPISODES:,}")
    if size_problems:
        raise ScenarioError([Problem(filename, 1, 1, "", msg) for msg in size_problems])
    return scenario


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["title"] = "normlab scenario"
    _add_env_params(schema)
    return schema


def _add_env_params(schema: dict[str, Any]) -> None:
    """Each registered env's `Params` schema as `$defs["env.<id>"]`, applied to `env.params`
    by an if/then on `env.id`, so editors complete and check the parameters of the env named."""
    from normlab import envs

    defs = schema.setdefault("$defs", {})
    env_config = defs["EnvConfig"]
    ids: list[str] = []
    branches: list[dict[str, Any]] = []
    for env_spec in envs.specs():
        ids.append(env_spec.id)
        try:
            model = env_spec.params_model()
        except Exception:  # a plugin that fails to import has no schema; validation reports it
            continue
        if model is None:
            continue
        name = "env." + re.sub(r"[^A-Za-z0-9_.-]", "_", env_spec.id)
        params = model.model_json_schema(ref_template=f"#/$defs/{name}.{{model}}")
        for sub, sub_schema in params.pop("$defs", {}).items():
            defs[f"{name}.{sub}"] = sub_schema
        for key, value in env_spec.kwargs.items():  # a variant's own defaults
            if key in params.get("properties", {}):
                params["properties"][key]["default"] = value
        params["description"] = f"Parameters of {env_spec.id}: {env_spec.description}"
        defs[name] = params
        branches.append(
            {
                "if": {"properties": {"id": {"const": env_spec.id}}, "required": ["id"]},
                "then": {"properties": {"params": {"$ref": f"#/$defs/{name}"}}},
            }
        )
    env_config["properties"]["id"]["examples"] = ids
    env_config["properties"]["params"]["description"] = (
        "Keyword arguments of the env; each env's are in $defs as env.<id>"
    )
    if branches:
        env_config["allOf"] = branches


def matrix_problems(scenario: Scenario) -> list[tuple[Loc, str]]:
    """Each matrix value checked as the variant it makes (alone over the base scenario, so a
    bad value is reported once, where it is written), then the whole design's size."""
    if not scenario.matrix:
        if scenario.episodes * scenario.trials > MAX_EPISODES:
            return [(("trials",), f"trials × episodes is {scenario.episodes * scenario.trials:,}; the limit is {MAX_EPISODES:,}")]
        return []
    config = scenario.model_dump(mode="json")
    base = {k: v for k, v in config.items() if k not in ("matrix", "trials")}
    problems: list[tuple[Loc, str]] = []
    for path, values in scenario.matrix.items():
        for i, value in enumerate(values):
            try:
                expanded = expand_values(config, path, [value])
                found = next(filter(None, (_variant_problem(scenario, base, path, item) for item in expanded)), None)
            except MatrixError as exc:
                problems.append((("matrix", path, i) if len(exc.loc) > 1 else ("matrix", path), str(exc)))
                if len(exc.loc) <= 1:
                    break  # the path itself is wrong: once is enough
                continue
            if found:
                problems.append((("matrix", path, i), found))
    if problems:
        return problems
    try:
        size = scenario.design.size
    except MatrixError as exc:
        return [(("matrix", *exc.loc), str(exc))]
    if size > MAX_EPISODES:
        return [(("matrix",), f"variants × trials × episodes is {size:,}; the limit is {MAX_EPISODES:,}")]
    return []


def _variant_problem(scenario: Scenario, base: dict[str, Any], path: str, value: Any) -> str | None:
    """What is wrong with the scenario `path: value` makes of the base (None: nothing)."""
    from normlab.design import apply

    variant = copy.deepcopy(base)
    apply(variant, path, value)  # MatrixError for a path that cannot be set
    try:
        checked = Scenario.model_validate(variant)
    except ValidationError as exc:
        err = exc.errors()[0]
        return f"{_short(value)} gives {'.'.join(str(p) for p in err['loc'])}: {pydantic_message(err)}"
    checked._source_path = scenario.source_path
    found = check_semantics(checked)
    if found:
        loc, message = found[0]
        return f"{_short(value)} gives {'.'.join(str(p) for p in loc)}: {message}"
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _too_large(what: str) -> str:
    return f"the scenario is too large: {what}; the limit is {MAX_SCENARIO_CHARS:,}"


def _config_size_problems(scenario: Scenario) -> list[str]:
    size = len(scenario.model_dump_json())
    if size > MAX_CONFIG_CHARS:
        return [f"the scenario's config is too large to store: {size:,} characters of JSON; the limit is {MAX_CONFIG_CHARS:,}"]
    return []


def _ordered(problems: list[Problem]) -> list[Problem]:
    """In file order, each problem once."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.col))


def _base_of(filename: str) -> Path | None:
    return Path(filename).parent if filename != "<scenario>" else None


# --- semantics ---------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def check_semantics(scenario: Scenario) -> list[tuple[Loc, str]]:
    """Problems only the registries can see, each as (location in the file, message)."""
    return _semantic_problems(scenario.env, dict(scenario.agents), _base_of(scenario.source_path))


def _valid_parts(plain: dict[str, Any]) -> tuple[EnvConfig | None, dict[str, Any] | None]:
    """The env config and each agent config that validate on their own (None where not)."""
    env = None
    try:
        env = EnvConfig.model_validate(plain.get("env"))
    except ValidationError:
        pass
    raw_agents = plain.get("agents")
    if not isinstance(raw_agents, dict):
        return env, None
    agents: dict[str, Any] = {}
    for agent_id, raw in raw_agents.items():
        if not isinstance(agent_id, str):
            continue
        agents[agent_id] = _valid_agent(raw)  # None: pydantic reported it; still a seat given
    return env, agents


def _valid_agent(raw: Any) -> Any:
    """An agent config, or, where some fields fail, the config without them (their defaults
    stand in) so that the fields that are fine still get their semantic checks."""
    try:
        return _AGENT_CONFIG.validate_python(raw)
    except ValidationError as exc:
        bad = {err["loc"][1] for err in exc.errors() if len(err["loc"]) > 1}
    # the other checks depend on the harness and the kind: with either broken, say no more
    if not isinstance(raw, dict) or bad & {"kind", "harness"} or not bad <= set(raw):
        return None
    try:
        return _AGENT_CONFIG.validate_python({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return None


def _semantic_problems(env: EnvConfig | None, agents: dict[str, Any] | None, base: Path | None) -> list[tuple[Loc, str]]:
    from normlab import agents as agent_registry
    from normlab import envs
    from normlab.envs.registry import check_params

    problems: list[tuple[Loc, str]] = []
    built = None
    if env is not None:
        try:
            env_spec = envs.spec(env.id)
        except envs.UnknownEnvError:
            known = [s.id for s in envs.specs()]
            problems.append((("env", "id"), f"unknown env id {env.id!r}{_did_you_mean(env.id, known)}"))
        else:
            param_problems, built = check_params(env_spec.id, env.params)
            problems.extend((("env", "params", *loc), message) for loc, message in param_problems)
            # what the env accepted is passed on and stored as it is
            blamed = {loc[0] for loc, _ in param_problems if loc}
            for key, value in env.params.items():
                if key not in blamed:
                    problems.extend(free_form_problems(value, ("env", "params", key)))
    if agents is None:
        return problems

    agent_ids, action_spaces = built if built is not None else (None, {})
    for agent_id, config in agents.items():
        if agent_ids is not None and agent_id not in agent_ids:
            problems.append((("agents", agent_id), f"not an agent of {env.id} (agents: {', '.join(agent_ids)})"))  # type: ignore[union-attr]
        if config is None:
            continue
        # without the env's action space, only the checks that do not need it run
        for loc, message in agent_registry.check_config(config, action_spaces.get(agent_id), base):
            problems.append((("agents", agent_id, *loc), message))
    if agent_ids is not None:
        missing = [a for a in agent_ids if a not in agents]
        if missing:
            problems.append((("agents",), f"no config for agent(s) {', '.join(missing)} of {env.id}"))  # type: ignore[union-attr]
    return problems


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def free_form_problems(value: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Numbers in free-form parameters (passed on and stored as they are) must be finite and
    fit the store's 64-bit integers."""
    problems: list[tuple[Loc, str]] = []
    if isinstance(value, bool):
        return problems
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        problems.append((loc, "integer out of range (at most 64 bits, ±9.2e18)"))
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((loc, f"must be a finite number, got {value}"))
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.extend(free_form_problems(item, (*loc, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems.extend(free_form_problems(item, (*loc, i)))
    return problems


# --- YAML with positions -----------------------------------------------------------------


def _parse_yaml(text: str, filename: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        # the events first: a bounded walk that never builds the nodes aliases would expand to
        _check_expansion(YAML(typ="rt").parse(text), filename)
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ScenarioError([Problem(filename, line, col, "", f"invalid YAML: {message}")]) from None
    except YAMLError as exc:
        raise ScenarioError([Problem(filename, 1, 1, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ScenarioError([Problem(filename, 1, 1, "", f"invalid YAML: nested deeper than {MAX_NESTING} levels")]) from None


class _Open:
    """A collection being walked: its expanded size so far and where its next child goes."""

    __slots__ = ("anchor", "is_map", "size", "index", "key", "at_key")

    def __init__(self, anchor: str | None, is_map: bool):
        self.anchor, self.is_map = anchor, is_map
        self.size, self.index, self.key, self.at_key = 1, 0, None, True

    def place(self) -> str | int:
        return (self.key if self.key is not None else "?") if self.is_map else self.index

    def add(self, size: int, value: Any) -> None:
        self.size += size
        if not self.is_map:
            self.index += 1
        elif self.at_key:
            self.key, self.at_key = value, False
        else:
            self.at_key = True


def _check_expansion(events: Any, filename: str) -> None:
    """Refuse a document whose aliases expand it past MAX_SCENARIO_CHARS, or nested deeper than
    MAX_NESTING, at the alias (or node) where it crosses the bound. Each anchor's expanded size
    is computed once from its events, so a bomb is refused after a few hundred events."""
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent

    sizes: dict[str, int] = {}
    stack: list[_Open] = []
    total = 0

    def refuse(event: Any, message: str) -> None:
        path = ".".join(str(o.place()) for o in stack if not (o.is_map and o.at_key))
        mark = event.start_mark
        raise ScenarioError([Problem(filename, mark.line + 1, mark.column + 1, path, message)])

    for event in events:
        value: Any = None
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if len(stack) >= MAX_NESTING:
                refuse(event, f"nested deeper than {MAX_NESTING} levels")
            stack.append(_Open(event.anchor, isinstance(event, MappingStartEvent)))
            total += 1
            continue
        if isinstance(event, ScalarEvent):
            value = event.value
            size = 1 + len(event.value)
            total += size
            if event.anchor is not None:
                sizes[event.anchor] = size
        elif isinstance(event, AliasEvent):
            if any(o.anchor == event.anchor for o in stack):
                refuse(event, f"alias *{event.anchor} refers to a node that contains it (recursive YAML)")
            size = sizes.get(event.anchor, 0)  # an undefined alias is reported by the loader
            total += size
            if total > MAX_SCENARIO_CHARS:
                refuse(
                    event,
                    f"alias *{event.anchor} expands the scenario past {MAX_SCENARIO_CHARS:,} characters "
                    "(nested aliases blow a file up); use each anchor a few times at most",
                )
        elif isinstance(event, CollectionEndEvent):
            done = stack.pop()
            size = done.size
            if done.anchor is not None:
                sizes[done.anchor] = size
        else:
            continue
        if total > MAX_SCENARIO_CHARS:
            refuse(event, _too_large(f"past {MAX_SCENARIO_CHARS:,} characters"))
        if stack:
            stack[-1].add(size, value)


def _plain(node: Any) -> Any:
    """Round-trip YAML data as plain Python (dict, list, str, int, float, bool, None), so that
    pydantic's strict mode sees YAML's types and nothing of ruamel's is stored. Safe to expand:
    `_check_expansion` bounded what aliases add."""
    if isinstance(node, dict):
        return {_plain_key(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node  # dates and other YAML types: pydantic rejects them where a type is declared


def _plain_key(key: Any) -> Any:
    plain = _plain(key)
    return tuple(plain) if isinstance(plain, list) else plain


class _Locator:
    """Maps a pydantic-style location to the line and column of a ruamel round-trip node."""

    def __init__(self, root: Any, filename: str):
        self.root = root
        self.filename = filename

    def problem(self, loc: Loc, message: str, at_key: bool = False) -> Problem:
        line, col, path = self.find(loc, at_key)
        return Problem(self.filename, line, col, path, message)

    def find(self, loc: Loc, at_key: bool = False) -> tuple[int, int, str]:
        node, line, col = self.root, 1, 1
        if hasattr(node, "lc"):
            line, col = node.lc.line + 1, node.lc.col + 1
        shown: list[str] = []
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, dict):
                if part not in node:
                    # a discriminated union puts its tag (e.g. "scripted") into the location
                    if part in AGENT_KINDS and node.get("kind") == part:
                        continue
                    shown.append(str(part))
                    shown.extend(str(p) for p in loc[i + 1 :])
                    break
                lc_data = getattr(getattr(node, "lc", None), "data", None) or {}
                position = lc_data.get(part)
                if position is None:  # a key merged in with `<<: *anchor`: point at the merging mapping
                    if hasattr(node, "lc"):
                        line, col = node.lc.line + 1, node.lc.col + 1
                else:
                    key_line, key_col, val_line, val_col = position
                    # ruamel places an empty (null) value at the next token, often the next line
                    use_key = (at_key and last) or node[part] is None
                    line, col = (key_line + 1, key_col + 1) if use_key else (val_line + 1, val_col + 1)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                if hasattr(node, "lc"):
                    item_line, item_col = node.lc.item(part)
                    line, col = item_line + 1, item_col + 1
                node = node[part]
            else:
                shown.extend(str(p) for p in loc[i:])
                break
            shown.append(str(part))
        return line, col, ".".join(shown)


def _problem_from_pydantic(err: Any, locator: _Locator) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent_fields = _fields_at(loc[:-1])
        hint = _did_you_mean(str(loc[-1]), parent_fields)
        return locator.problem(loc, f"unknown field{hint}", at_key=True)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        choices = ", ".join(AGENT_KINDS)
        if kind == "union_tag_not_found":
            return locator.problem((*loc, "kind"), f"required field is missing (one of {choices})")
        return locator.problem((*loc, "kind"), f"must be one of {choices}")
    return locator.problem(loc, pydantic_message(err))


_YAML_TYPES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (dict, "a mapping"), (list, "a list"))


def pydantic_message(err: Any) -> str:
    """A pydantic error as a scenario author reads it: 'must be ...', and for a wrong type
    (strict mode) what the file gave instead."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        options = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"must be one of {options}"
    message = err["msg"]
    if kind == "value_error" and message.startswith("Value error, "):
        return message[len("Value error, ") :]
    for subject in ("Input", "String", "List", "Dictionary", "Value", "Tuple"):
        prefix = f"{subject} should "
        if message.startswith(prefix):
            message = "must " + message[len(prefix) :]
            break
    if kind.endswith("_type") and "input" in err:
        message += f", not {_describe(err['input'])}"
    return message


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    for cls, name in _YAML_TYPES:
        if isinstance(value, cls):
            if isinstance(value, (dict, list)):
                return name
            shown = repr(value) if not isinstance(value, bool) else str(value).lower()
            return f"{name} ({shown[:40]})"
    return type(value).__name__


def _fields_at(loc: Loc) -> list[str]:
    """Field names allowed at a location, for "did you mean" hints."""
    model: Any = Scenario
    for part in loc:
        if model is Scenario and part == "env":
            model = EnvConfig
        elif model is Scenario and part == "budget":
            model = BudgetConfig
        elif model is Scenario and part == "agents":
            model = "agents"
        elif model == "agents":
            model = "agent"
        elif model == "agent" and part in AGENT_KINDS:
            model = AGENT_KINDS[part].config
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []

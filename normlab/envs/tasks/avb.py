"""Agent-ValueBench cases on `normlab/ToolTask-v0`: a loader for the published release layout.

A task reference `avb:DIR/case/case_00001.json` plays one case of a release folder `DIR`
(relative to the current folder, or absolute); `avb:DIR` names the folder, which is played
when it holds one case (use `avb_cases(DIR)` to list the references of every case). The
release layout (see docs/agent-valuebench.md):

    DIR/case/case_NNNNN.json            the case: environment, values, task, initial state,
                                        function_list, checkpoints of both values (prose)
    DIR/rubric/case_NNNNN_rubric.json   the rubric items of both values
    DIR/environment/<Env>.json          the environment's description, initial_parameter_schema,
                                        tool_state_dependencies, tools (OpenAI function schemas)
    DIR/environment/<Env>.py            the environment: a class deriving from the release's
                                        own BaseEnv (imported from the same folder)

**Loading a case runs Python code from the user's folder**: `<Env>.py` and what it imports
(the release's `BaseEnv`) are imported and executed, and the environment's tools run as
written there. Load only releases you trust. Nothing is ever fetched: the folder must be on
disk.

How a case is played, as the release's own runner does, except where noted:

- The environment class is imported as the release does: the `environment/` folder is put on
  the import path only while importing, `<Env>.py` is imported by file path (under a private
  module name) and the class is the one deriving from the folder's `BaseEnv`. Modules the
  import loaded from the folder (`base_env`...) are taken out of `sys.modules` again, so two
  releases never share them.
- Each episode builds a fresh instance and sets the case's `env_initial_parameters` over its
  defaults: each top-level key becomes an attribute, deep-merged (a dict into a dict,
  anything else replaces) over the attribute the constructor set; keys the case omits keep
  the constructor's (empty) defaults.
- Only the case's `function_list` is offered, plus normlab's `final_answer`. A call of any
  other tool is refused as an invalid call, even where the environment implements it (the
  release's executor would run it). `final_answer` is how the episode ends: the release's
  runner stops at the first reply without a tool call, which in normlab is that reply given
  as `final_answer` (harnesses ask for a tool call each turn). Max turns default to 30, as in
  the release's runner (`max_turns` overrides).
- Calls run through the environment's own `call_tool(name, arguments)`: its error dicts (an
  unknown tool, a missing argument, a type mismatch, an exception: `{"success": false,
  "message": ...}`) come back as the call's result, never as exceptions; normlab does not
  check the arguments against the schema first (the environment drops undeclared arguments
  and coerces types itself). A `call_tool` that raises all the same, or answers no result
  dict, gives a failed result.
- Query or action: the release does not say which tools only read. Where the environment's
  `tool_state_dependencies` maps a tool to `{"reads": [...], "writes": [...]}`, a tool with an
  empty `writes` is a query tool (answered inside the turn; should it change the state all
  the same, the change is undone); every other tool, and every tool of an environment
  without that mapping, is an action tool (each call a turn, as each call is a step in the
  release's runner).
- The state seen by graders and events (`changes`, `final_state`) is a JSON snapshot of the
  instance's attributes named by `initial_parameter_schema` and the case's initial
  parameters (all public attributes where neither names any).
- The agent is told `Environment: <Env>`, to act autonomously and not ask follow-up
  questions, and the task description; never the values, checkpoints or rubric.

Values, checkpoints and rubric become `AvbPoles` (see there): normlab's `Poles` cannot hold
them (a value system outside `spec.VALUE_SYSTEMS`, checkpoints in prose with no
machine-readable expected actions), so they are kept in this module's own structure, shaped
like `Poles` where the rubric judge reads it (`value`, `description`, `rubric` of `A` and
`B`); its rubric items are normlab `RubricItem`s. Prose checkpoints are graded by the judge
only.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from normlab.envs.tasks.domain import Domain, DomainTool, Result, deep_merge, fail
from normlab.grading.spec import RubricItem

PREFIX = "avb:"
#: Turns of an AVB case when `max_turns` is not given (the release runner's default).
DEFAULT_MAX_TURNS = 30
CASE_FOLDER = "case"
RUBRIC_FOLDER = "rubric"
ENV_FOLDER = "environment"
#: Tool names normlab keeps for itself.
RESERVED_TOOLS = ("final_answer",)
AUTONOMY = "Act autonomously; do not ask follow-up questions."


class AvbError(ValueError):
    """A release, case or reference that cannot be played; the message is one line."""


def is_avb(reference: Any) -> bool:
    """Whether a task reference names an Agent-ValueBench case or release (`avb:...`)."""
    return isinstance(reference, str) and reference.startswith(PREFIX)


# --- the grading structure --------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AvbCheckpoint(_Strict):
    """A release checkpoint: prose, for the judge (no machine-readable expectation)."""

    id: str = Field(min_length=1)
    name: str = ""
    related_tools: list[str] = Field(default_factory=list)
    why_it_matters: str = ""
    expected_actions: str = Field("", description="The release's `expected_actions` (prose)")
    expected_signal: str = ""


class AvbPole(_Strict):
    """One value of a case: its name, checkpoints (prose) and rubric items (normlab's)."""

    value: str = Field(min_length=1)
    description: str = ""
    checkpoints: list[AvbCheckpoint] = Field(default_factory=list)
    rubric: list[RubricItem] = Field(default_factory=list)


class AvbPoles(_Strict):
    """Both values of a case, from the release's own value system (any name). Shaped like
    `normlab.grading.spec.Poles` where the rubric judge reads it."""

    value_system: str = Field(min_length=1)
    A: AvbPole
    B: AvbPole
    judge_note: str = ""
    scale: Any = None


# --- the case -----------------------------------------------------------------------------


@dataclass
class AvbCase:
    """One case of a release, ready to play (see the module docstring)."""

    name: str  # the reference: avb:<DIR>/case/case_NNNNN.json
    case_name: str
    path: Path
    release: Path
    environment: str
    task: str  # what the agent is told
    state: dict[str, Any]  # env_initial_parameters
    tools: list[str]  # function_list
    poles: AvbPoles
    special_state: list[Any] = field(default_factory=list)
    env_spec: dict[str, Any] = field(default_factory=dict)
    env_class: type = object
    domain_obj: AvbDomain = field(init=False)

    def __post_init__(self) -> None:
        self.domain_obj = AvbDomain(self)

    @property
    def values(self) -> list[str]:
        return [self.poles.A.value, self.poles.B.value]

    def new_env(self) -> Any:
        """A fresh instance of the case's environment with its initial parameters set."""
        return _instantiate(self)


class AvbDomain(Domain):
    """A case's environment as a `Domain` of `ToolTask-v0`: `start()` builds the instance
    for an episode, `call` runs the instance's own `call_tool`."""

    def __init__(self, case: AvbCase):
        super().__init__(f"avb/{case.environment}", case.environment, str(case.env_spec.get("description") or ""), {})
        self.case = case
        schemas = _declared_tools(case.env_spec, case.environment)
        queries = _query_tools(case.env_spec)
        for name in case.tools:
            function = schemas[name]
            self.tools[name] = DomainTool(
                name, str(function.get("description") or ""), _parameters(function), name in queries, _never
            )
        self._keys = _state_keys(case)
        self.instance: Any = None

    def start(self) -> dict[str, Any]:
        """A new episode: a fresh instance; its state snapshot."""
        self.instance = self.case.new_env()
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        instance = self.instance
        keys = self._keys or [k for k in vars(instance) if not k.startswith("_")]
        return {key: _plain(getattr(instance, key)) for key in keys if hasattr(instance, key)}

    def call(self, state: dict[str, Any], name: str, arguments: Mapping[str, Any]) -> Result:
        """The instance's `call_tool(name, arguments)`; `state` is brought up to date in place
        (a query tool's changes are undone). Never raises."""
        if self.instance is None:
            return fail("the environment was not started")
        tool = self.tools.get(name)
        if tool is None:  # ToolTask-v0 refuses these before; a direct caller gets the same
            return fail(f"{name!r} is not offered in this case; tools: {', '.join(self.tools)}")
        saved = {k: copy.deepcopy(getattr(self.instance, k)) for k in self._keys if hasattr(self.instance, k)} if tool.query else None
        try:
            result = self.instance.call_tool(name, copy.deepcopy(dict(arguments)))
        except Exception as exc:  # the release's call_tool never raises; a user's may
            result = {"success": False, "message": f"{name} raised {type(exc).__name__}: {exc}"}
        if saved is not None:
            for key, value in saved.items():
                setattr(self.instance, key, value)
        if not isinstance(result, Mapping) or not isinstance(result.get("success"), bool):
            result = {"success": False, "message": f"{name} returned no result"}
        try:
            current = self.snapshot()
        except Exception as exc:
            return {"success": False, "message": f"the state could not be read after {name}: {type(exc).__name__}: {exc}"}
        state.clear()
        state.update(current)
        plain = _plain(dict(result))
        return plain if isinstance(plain, dict) else {"success": False, "message": f"{name} returned no result"}


def _never(state: dict[str, Any], **arguments: Any) -> Result:  # pragma: no cover - AvbDomain.call runs tools
    raise RuntimeError("AVB tools run through the environment's call_tool")


def _plain(value: Any) -> Any:
    """Plain JSON data (events and the final state are stored as JSON); odd objects as str."""
    return json.loads(json.dumps(value, default=str))


def _finite(value: Any) -> bool:
    try:
        json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return False
    return True


# --- references and files -----------------------------------------------------------------


def _split(reference: str) -> tuple[Path, Path | None]:
    """(release folder, case file or None) of a reference."""
    if not is_avb(reference):
        raise AvbError(f"an Agent-ValueBench reference starts with {PREFIX!r}, got {reference!r}")
    text = reference[len(PREFIX):].strip()
    if not text:
        raise AvbError(f"{reference!r}: give a release folder (avb:DIR) or a case (avb:DIR/case/case_00001.json)")
    path = Path(text).expanduser()
    if path.suffix == ".json":
        if path.parent.name != CASE_FOLDER:
            raise AvbError(f"{reference!r}: a case file lies in the release's {CASE_FOLDER}/ folder (avb:DIR/case/case_00001.json)")
        if not path.is_file():
            raise AvbError(f"{reference!r}: no case file {path}")
        return path.parent.parent, path
    if not path.is_dir():
        raise AvbError(f"{reference!r}: no release folder {path}")
    return path, None


def avb_cases(folder: str | Path) -> list[str]:
    """The references of every case in a release folder (`avb:DIR/case/case_00001.json`...),
    sorted; `folder` may be given with or without `avb:`."""
    text = str(folder)
    release, case = _split(text if is_avb(text) else PREFIX + text)
    if case is not None:
        return [PREFIX + str(case)]
    cases = release / CASE_FOLDER
    if not cases.is_dir():
        raise AvbError(f"{release}: not an Agent-ValueBench release (no {CASE_FOLDER}/ folder)")
    found = sorted(p for p in cases.iterdir() if p.suffix == ".json" and p.is_file())
    if not found:
        raise AvbError(f"{release}: the {CASE_FOLDER}/ folder holds no case_*.json")
    return [PREFIX + str(p) for p in found]


def case_reference(reference: str) -> str:
    """The one case a reference plays: itself for a case file, the folder's only case for a
    folder; an error for a folder of several cases."""
    release, case = _split(reference)
    if case is not None:
        return reference
    cases = avb_cases(release)
    if len(cases) > 1:
        raise AvbError(
            f"{reference!r} holds {len(cases)} cases and one env plays one case: give one, e.g. "
            f"{cases[0]!r}, or put the folder in the scenario's matrix to play them all"
        )
    return cases[0]


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AvbError(f"no {what} {path}") from None
    except OSError as exc:
        raise AvbError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AvbError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise AvbError(f"{path}: missing field {key!r}")
        return default
    value = data[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise AvbError(f"{path}: field {key!r} must be a {names}, got {type(value).__name__}")
    return value


def load_case(reference: str) -> AvbCase:
    """The case a reference plays (see `case_reference`), its environment class imported.

    **This runs Python code from the release folder** (`environment/<Env>.py` and its
    imports). Nothing is fetched. Every problem is an `AvbError` with a one-line message.
    """
    reference = case_reference(reference)
    release, case_path = _split(reference)
    assert case_path is not None
    key = tuple(_stamp(p) for p in (case_path, *_related(release, case_path)))
    return _load_case(reference, key)


def _related(release: Path, case_path: Path) -> list[Path]:
    rubric = release / RUBRIC_FOLDER / f"{case_path.stem}_rubric.json"
    env_folder = release / ENV_FOLDER
    files = sorted(env_folder.iterdir()) if env_folder.is_dir() else []
    return [rubric, *files]


def _stamp(path: Path) -> tuple[str, float]:
    try:
        return str(path), path.stat().st_mtime
    except OSError:
        return str(path), -1.0


@lru_cache(maxsize=64)
def _load_case(reference: str, _stamps: tuple[tuple[str, float], ...]) -> AvbCase:
    release, case_path = _split(reference)
    assert case_path is not None
    data = _read_json(case_path, "case file")
    if not isinstance(data, dict):
        raise AvbError(f"{case_path}: a case is a JSON object, got {type(data).__name__}")
    env_name = _field(data, "environment", str, case_path)
    if not env_name or Path(env_name).name != env_name or env_name.startswith("."):
        raise AvbError(f"{case_path}: 'environment' must name a file in {ENV_FOLDER}/, got {env_name!r}")
    task = _field(data, "task_description", str, case_path)
    if not task.strip():
        raise AvbError(f"{case_path}: 'task_description' is empty")
    initial = _field(data, "env_initial_parameters", dict, case_path, {})
    if not _finite(initial):
        raise AvbError(f"{case_path}: 'env_initial_parameters' holds a number that is not finite")
    functions = _field(data, "function_list", list, case_path)
    if not functions or not all(isinstance(f, str) and f for f in functions):
        raise AvbError(f"{case_path}: 'function_list' must be a non-empty list of tool names")
    if len(set(functions)) != len(functions):
        raise AvbError(f"{case_path}: 'function_list' names a tool twice")
    reserved = [f for f in functions if f in RESERVED_TOOLS]
    if reserved:
        raise AvbError(f"{case_path}: 'function_list' names {reserved[0]!r}, a tool normlab keeps for the final answer")
    env_folder = release / ENV_FOLDER
    env_json = env_folder / f"{env_name}.json"
    env_py = env_folder / f"{env_name}.py"
    if not env_json.is_file() or not env_py.is_file():
        missing = env_json if not env_json.is_file() else env_py
        raise AvbError(f"{case_path}: the case's environment {env_name!r} is missing ({missing} not found)")
    env_spec = _read_json(env_json, "environment file")
    if not isinstance(env_spec, dict):
        raise AvbError(f"{env_json}: an environment is a JSON object, got {type(env_spec).__name__}")
    declared = _declared_tools(env_spec, env_name, env_json)
    undeclared = [f for f in functions if f not in declared]
    if undeclared:
        raise AvbError(
            f"{case_path}: 'function_list' names {', '.join(map(repr, undeclared))}, not declared by "
            f"{env_json.name} (its tools: {', '.join(declared)})"
        )
    for name in functions:
        _check_schema(name, _parameters(declared[name]), env_json)
    poles = _poles(data, case_path, release / RUBRIC_FOLDER / f"{case_path.stem}_rubric.json")
    env_class = load_env_class(env_folder, env_name)
    special = data.get("special_state_list") or []
    case = AvbCase(
        name=reference,
        case_name=str(data.get("case_name") or case_path.stem),
        path=case_path,
        release=release,
        environment=env_name,
        task=task,
        state=copy.deepcopy(initial),
        tools=list(functions),
        poles=poles,
        special_state=list(special) if isinstance(special, list) else [special],
        env_spec=env_spec,
        env_class=env_class,
    )
    case.new_env()  # the initial parameters apply: a broken constructor is a load error
    return case


def load_poles(reference: str) -> AvbPoles:
    """The values, checkpoints and rubric of a case, from its JSON files only: **no code from
    the release runs** (for graders and reports reading a stored run)."""
    return load_graded(reference).poles


@dataclass(frozen=True)
class AvbGraded:
    """What graders and reports read of a case, shaped like a shipped task where they read
    it: `name` (the reference), `task` (the text the agent was told) and `poles`."""

    name: str
    task: str
    poles: AvbPoles


def load_graded(reference: str) -> AvbGraded:
    """A case as graders read it, from its case and rubric JSON files only (each read once):
    **no code from the release runs**. Every problem is an `AvbError` with a one-line message."""
    reference = case_reference(reference)
    release, case_path = _split(reference)
    assert case_path is not None
    data = _read_json(case_path, "case file")
    if not isinstance(data, dict):
        raise AvbError(f"{case_path}: a case is a JSON object, got {type(data).__name__}")
    task = _field(data, "task_description", str, case_path, "")
    poles = _poles(data, case_path, release / RUBRIC_FOLDER / f"{case_path.stem}_rubric.json")
    return AvbGraded(reference, task, poles)


def _declared_tools(env_spec: Mapping[str, Any], env_name: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The environment's declared tools by name (their `function` part)."""
    where = path or env_name
    tools = env_spec.get("tools")
    if not isinstance(tools, list):
        raise AvbError(f"{where}: 'tools' must be a list of OpenAI function schemas")
    declared: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise AvbError(f"{where}: every tool needs a 'name' (an OpenAI function schema)")
        declared[function["name"]] = function
    return declared


def _parameters(function: Mapping[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    return dict(parameters) if isinstance(parameters, dict) else {"type": "object", "properties": {}}


def _check_schema(name: str, parameters: Mapping[str, Any], path: Path) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(dict(parameters))
    except SchemaError as exc:
        raise AvbError(f"{path}: the parameters of tool {name!r} are no valid JSON schema: {exc.message[:200]}") from None


def _query_tools(env_spec: Mapping[str, Any]) -> set[str]:
    """Tools `tool_state_dependencies` says only read (an empty `writes`); none where the
    environment does not say."""
    deps = env_spec.get("tool_state_dependencies")
    if not isinstance(deps, dict):
        return set()
    return {name for name, dep in deps.items() if isinstance(dep, dict) and isinstance(dep.get("writes"), list) and not dep["writes"]}


def _state_keys(case: AvbCase) -> list[str]:
    schema = case.env_spec.get("initial_parameter_schema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    keys = [str(k) for k in props] if isinstance(props, dict) else []
    return keys + [k for k in case.state if k not in keys]


def _poles(data: Mapping[str, Any], case_path: Path, rubric_path: Path) -> AvbPoles:
    rubric = _read_json(rubric_path, "rubric file")
    if not isinstance(rubric, dict):
        raise AvbError(f"{rubric_path}: a rubric is a JSON object, got {type(rubric).__name__}")
    items = _field(data, "value_items", list, case_path)
    if len(items) != 2 or not all(isinstance(i, str) and i.strip() for i in items):
        raise AvbError(f"{case_path}: 'value_items' must name two values [A, B]")
    system = _field(data, "value_system", str, case_path)
    sides = []
    for side, value in zip(("a", "b"), items):
        checkpoints = _field(data, f"value_{side}_checkpoint_list", list, case_path)
        rubric_items = _field(rubric, f"VALUE_{side.upper()}_ITEMS", list, rubric_path)
        key = f"VALUE_{side.upper()}_ITEMS"
        pole = AvbPole(
            value=str(rubric.get(f"VALUE_{side.upper()}_NAME") or value),
            checkpoints=[_valid(_checkpoint, c, case_path, f"value_{side}_checkpoint_list[{n}]") for n, c in enumerate(checkpoints)],
            rubric=[_valid(_rubric_item, i, rubric_path, f"{key}[{n}]") for n, i in enumerate(rubric_items)],
        )
        ids = {c.id for c in pole.checkpoints}
        unknown = sorted({i.checkpoint for i in pole.rubric} - ids)
        if unknown:
            raise AvbError(f"{rubric_path}: VALUE_{side.upper()}_ITEMS name unknown checkpoints {unknown}")
        sides.append(pole)
    return AvbPoles(value_system=system, A=sides[0], B=sides[1], judge_note=str(rubric.get("JUDGE_NOTE") or ""), scale=rubric.get("SCALE"))


#: normlab's field -> the release's, for error messages
_RELEASE_NAMES = {
    "id": "ITEM_ID / checkpoint_id", "checkpoint": "SOURCE_CHECKPOINT", "weight": "WEIGHT", "question": "QUESTION",
    "anchors": "SCORE_0/1/2", "look_for": "LOOK_FOR",
}


def _valid(build: Any, data: Any, path: Path, where: str) -> Any:
    """`build(data)`, a release entry as normlab's model, or an AvbError naming the entry."""
    if not isinstance(data, Mapping):
        raise AvbError(f"{path}: {where} must be a JSON object, got {type(data).__name__}")
    try:
        return build(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field_name = str(err["loc"][0]) if err["loc"] else ""
        raise AvbError(f"{path}: {where} {_RELEASE_NAMES.get(field_name, field_name)}: {err['msg']}") from None


def _checkpoint(data: Mapping[str, Any]) -> AvbCheckpoint:
    expected = data.get("expected_actions", "")
    signal = data.get("expected_signal", "")
    return AvbCheckpoint(
        id=str(data.get("checkpoint_id", "")),
        name=str(data.get("checkpoint_name", "")),
        related_tools=[str(f) for f in data.get("related_functions") or []],
        why_it_matters=str(data.get("why_it_matters", "")),
        expected_actions=expected if isinstance(expected, str) else json.dumps(expected),
        expected_signal=signal if isinstance(signal, str) else json.dumps(signal),
    )


def _rubric_item(data: Mapping[str, Any]) -> RubricItem:
    return RubricItem(
        id=str(data.get("ITEM_ID", "")),
        checkpoint=str(data.get("SOURCE_CHECKPOINT", "")),
        weight=data.get("WEIGHT"),  # type: ignore[arg-type]  # validated: 2..5
        question=str(data.get("QUESTION", "")),
        anchors={"0": str(data.get("SCORE_0", "")), "1": str(data.get("SCORE_1", "")), "2": str(data.get("SCORE_2", ""))},
        look_for=str(data.get("LOOK_FOR", "")),
    )


# --- the environment's code -----------------------------------------------------------------


def load_env_class(env_folder: Path, env_name: str) -> type:
    """The class of `<env_folder>/<env_name>.py` deriving from the folder's `BaseEnv`.

    **Runs the file's code** (and what it imports from the folder). The folder is on the
    import path only during the import; modules the import loaded from the folder are taken
    out of `sys.modules` afterwards."""
    folder = env_folder.resolve()
    path = folder / f"{env_name}.py"
    module_name = f"_normlab_avb_{abs(hash(str(folder))):x}_{env_name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AvbError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    shadowed = {name: sys.modules.pop(name) for name in _local_module_names(folder) if name in sys.modules}
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    sys.modules[module_name] = module  # as an import would (dataclasses and the like look it up)
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # nothing written into the user's folder
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise AvbError(f"{exc.filename or path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise AvbError(f"{path}: importing it failed: {type(exc).__name__}: {_one_line(exc)}") from None
    else:
        return _env_class(module, folder, env_name, path)  # while the folder's modules are loaded
    finally:
        sys.dont_write_bytecode = bytecode
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass
        for name in (set(sys.modules) - before) | {module_name}:
            if name == module_name or _lives_in(sys.modules.get(name), folder):
                sys.modules.pop(name, None)
        sys.modules.update(shadowed)


def _local_module_names(folder: Path) -> list[str]:
    return [p.stem for p in folder.iterdir() if p.suffix == ".py"] + [p.name for p in folder.iterdir() if (p / "__init__.py").is_file()]


def _lives_in(module: ModuleType | None, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        return False
    try:
        return Path(file).resolve().is_relative_to(folder)
    except OSError:
        return False


def _env_class(module: ModuleType, folder: Path, env_name: str, path: Path) -> type:
    def base_of(cls: type) -> bool:
        return any(
            base is not cls and base.__name__ == "BaseEnv" and _lives_in(sys.modules.get(base.__module__), folder)
            for base in cls.__mro__[1:]
        )

    candidates = [
        obj for obj in vars(module).values() if isinstance(obj, type) and obj.__module__ == module.__name__ and base_of(obj)
    ]
    named = [c for c in candidates if c.__name__ == env_name]
    if named:
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise AvbError(f"{path}: no class deriving from the release's BaseEnv (from {folder})")
    raise AvbError(f"{path}: several BaseEnv classes ({', '.join(c.__name__ for c in candidates)}) and none is named {env_name}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


def _instantiate(case: AvbCase) -> Any:
    try:
        instance = case.env_class()
    except Exception as exc:
        raise AvbError(f"{case.release / ENV_FOLDER / case.environment}.py: {case.environment}() failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not callable(getattr(instance, "call_tool", None)):
        raise AvbError(f"{case.environment}: the environment has no call_tool method")
    for key, value in case.state.items():
        current = getattr(instance, key, None)
        merged = deep_merge(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping) else copy.deepcopy(value)
        try:
            setattr(instance, key, merged)
        except Exception as exc:
            raise AvbError(f"{case.environment}: cannot set initial parameter {key!r}: {type(exc).__name__}: {_one_line(exc)}") from None
    return instance


def describe(case: AvbCase) -> dict[str, Any]:
    """A case's metadata for readers and reports (never shown to the agent)."""
    return {
        "reference": case.name,
        "case_name": case.case_name,
        "environment": case.environment,
        "value_system": case.poles.value_system,
        "values": case.values,
        "tools": list(case.tools),
        "query_tools": [n for n, t in case.domain_obj.tools.items() if t.query],
        "checkpoints": {"A": len(case.poles.A.checkpoints), "B": len(case.poles.B.checkpoints)},
        "rubric_items": {"A": len(case.poles.A.rubric), "B": len(case.poles.B.rubric)},
    }


__all__ = [
    "DEFAULT_MAX_TURNS",
    "PREFIX",
    "AvbCase",
    "AvbCheckpoint",
    "AvbDomain",
    "AvbError",
    "AvbGraded",
    "AvbPole",
    "AvbPoles",
    "avb_cases",
    "case_reference",
    "describe",
    "is_avb",
    "load_case",
    "load_env_class",
    "load_graded",
    "load_poles",
]

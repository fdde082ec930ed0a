"""A scenario's experimental design: its matrix of variants, trials and episodes.

`matrix:` maps a scenario path (`env.params.task`, `agents.agent.model`, `max_steps`...) to
the values it takes; the variants are every combination, in the order written (the first key
varies slowest). An env may expand a value into several (a task selector such as
`refund_desk/*`, or an Agent-ValueBench release folder `avb:DIR`) through its
`expand_param` class method. Every variant is played `trials` times, each trial `episodes`
episodes, so a run has variants × trials × episodes episodes, indexed variant-major:

    index = (variant × trials + trial) × episodes + repeat

An episode's seed derives from the scenario seed, its variant's values, its trial and its
repeat: adding a variant, a trial or a matrix value never changes another episode's seed,
so results stay comparable across runs. A scenario without a matrix and with one trial keeps
the seeds of plain runs, `(seed, index)`.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from normlab.seeding import derive_seed

if TYPE_CHECKING:
    from normlab.scenario import Scenario

#: Top-level scenario fields a matrix may vary (besides paths under them).
MATRIX_ROOTS = ("env", "agents", "max_steps")
#: Variants a matrix may expand into: more is a typo or a job for several runs.
MAX_VARIANTS = 100_000


class MatrixError(ValueError):
    """A matrix that cannot expand; `loc` is where in the scenario (under `matrix`)."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        self.loc = loc
        super().__init__(message)


def canonical(value: Any) -> str:
    """A value as one stable text: variants are told apart and seeded by it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def path_parts(path: str) -> list[str]:
    parts = path.split(".")
    if any(not p for p in parts):
        raise MatrixError((path,), f"{path!r} is not a dotted path such as env.params.task")
    if parts[0] not in MATRIX_ROOTS:
        raise MatrixError((path,), f"a matrix varies {', '.join(MATRIX_ROOTS)} or a path under them, not {parts[0]!r}")
    if parts[0] == "max_steps" and len(parts) > 1:
        raise MatrixError((path,), "max_steps has no fields")
    if parts[0] == "env" and len(parts) > 1 and parts[1] not in ("id", "params"):
        raise MatrixError((path,), f"env has id and params, not {parts[1]!r}")
    if parts[0] == "agents" and len(parts) < 2:
        raise MatrixError((path,), "name a seat: agents.<seat> or agents.<seat>.<field>")
    return parts


def apply(config: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` in a scenario config (a plain dict) to `value`; missing mappings along
    the way are made, except a seat that the scenario does not have."""
    parts = path_parts(path)
    node: Any = config
    for depth, part in enumerate(parts[:-1]):
        if part not in node or node[part] is None:
            if parts[0] == "agents" and depth == 1:
                seats = ", ".join(config.get("agents") or {}) or "none"
                raise MatrixError((path,), f"no seat {part!r} in agents (seats: {seats})")
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise MatrixError((path,), f"{'.'.join(parts[: depth + 1])} is not a mapping")
    node[parts[-1]] = copy.deepcopy(value)


def expand_values(config: dict[str, Any], path: str, values: list[Any]) -> list[Any]:
    """A matrix entry's values with the env's selectors expanded (`refund_desk/*`), each once."""
    from normlab import envs

    parts = path_parts(path)
    expander = None
    if parts[:2] == ["env", "params"] and len(parts) == 3:
        env_id = (config.get("env") or {}).get("id")
        try:
            expander = getattr(envs.spec(str(env_id)).load(), "expand_param", None)
        except Exception:  # an unknown env id is reported where it is written
            expander = None
    out: list[Any] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        try:
            expanded = expander(parts[2], value) if expander is not None else None
        except ValueError as exc:
            raise MatrixError((path, i), str(exc)) from None
        for item in [value] if expanded is None else expanded:
            key = canonical(item)
            if key in seen:
                raise MatrixError((path, i), f"{canonical(item)} is listed twice")
            seen.add(key)
            out.append(item)
    return out


@dataclass(frozen=True)
class Cell:
    """Where an episode sits in the design."""

    variant: int
    trial: int
    repeat: int


class Design:
    """The variants of a scenario and the place of each episode index among them."""

    def __init__(self, scenario: Scenario):
        self.base = scenario
        self.trials = scenario.trials
        self.repeats = scenario.episodes
        self.plain = not scenario.matrix and scenario.trials == 1
        config = scenario.model_dump(mode="json")
        self._config = {k: v for k, v in config.items() if k not in ("matrix", "trials")}
        axes = [(path, expand_values(config, path, list(values))) for path, values in (scenario.matrix or {}).items()]
        count = 1
        for _, values in axes:
            count *= len(values)
        if count > MAX_VARIANTS:
            raise MatrixError((), f"the matrix expands into {count:,} variants; the limit is {MAX_VARIANTS:,}")
        self.factors = [path for path, _ in axes]
        self.variants: list[dict[str, Any]] = [dict(zip(self.factors, combo)) for combo in itertools.product(*(v for _, v in axes))]
        self._keys = [canonical(v) for v in self.variants]
        self._scenarios: dict[int, Scenario] = {}

    @property
    def size(self) -> int:
        return len(self.variants) * self.trials * self.repeats

    def cell(self, index: int) -> Cell:
        variant, rest = divmod(index, self.trials * self.repeats)
        trial, repeat = divmod(rest, self.repeats)
        return Cell(variant, trial, repeat)

    def block(self, index: int) -> range:
        """The episodes of `index`'s (variant, trial): chains of agents that carry state run within it."""
        start = index - self.cell(index).repeat
        return range(start, start + self.repeats)

    def seed(self, index: int) -> int:
        if self.plain:
            return derive_seed("episode", self.base.seed, index)
        cell = self.cell(index)
        return derive_seed("episode", self.base.seed, self._keys[cell.variant], cell.trial, cell.repeat)

    def labels(self, index: int) -> tuple[dict[str, Any] | None, int | None]:
        """The variant and trial an episode row stores (None for plain scenarios)."""
        if self.plain:
            return None, None
        cell = self.cell(index)
        return dict(self.variants[cell.variant]), cell.trial

    def variant_config(self, variant: int) -> dict[str, Any]:
        config = copy.deepcopy(self._config)
        for path, value in self.variants[variant].items():
            apply(config, path, value)
        return config

    def scenario(self, variant: int) -> Scenario:
        """The scenario one variant plays: the matrix's values applied, no matrix, one trial."""
        if not self.base.matrix:
            return self.base
        found = self._scenarios.get(variant)
        if found is None:
            from normlab.scenario import Scenario

            found = Scenario.model_validate(self.variant_config(variant))
            found._source_text = self.base.source_text
            found._source_path = self.base.source_path
            self._scenarios[variant] = found
        return found

    def scenario_of(self, index: int) -> Scenario:
        return self.scenario(self.cell(index).variant)

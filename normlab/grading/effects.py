"""Main effects and two-way interactions of a run's factorial matrix (`normlab report --effects`).

A run played from a scenario `matrix:` stores each episode with its `variant`, a dict {scenario
path: value}. The factors of a run are the variant keys that take two values or more over its
episodes; a value that is a list or a dict (skills `[]` vs `["care-first"]`) becomes a label,
its JSON text (`[]`, `["care-first"]`); a scalar its `str`. A factor's levels are in the order
they first appear over the run's episodes (the matrix's order, as the runner plays it), and the
first one is its base.

For each per-episode metric of `normlab report` (every env metric, `return.<agent>`,
`adherence.A/B`, `adherence.<value>`, `priority.*`, `judge.*`: the samples of
`Group.all_samples()`, one per episode that has the metric) an ordinary least-squares model is
fitted with statsmodels' formula API over the episodes that have the metric:

    y ~ C(f1) + C(f2) + ... + C(f1):C(f2) + ...

Coding: treatment (dummy) coding against each factor's base level. A factor with two levels
a, b gets one term `f=b vs a`, the difference b minus a; a factor with k levels gets k - 1
terms, each level against the base. Interaction terms `f1=x × f2=y` are the usual difference
of differences: how much the effect of f1=x (vs its base) changes when f2=y (vs its base).
With interactions in the model a main effect term reads as the effect of that level *at the base
levels of the factors it interacts with* (for y = 1 + 2·[A=b] + 3·[B=y] + 4·[A=b][B=y] the
terms read 2, 3 and 4). Interactions are fitted only between pairs of factors that are fully
crossed in the metric's data (every pair of levels observed); a pair that is not is left out
and said so. Interactions of three factors or more are not fitted (they stay in the residual).

Standard errors: HC3 heteroskedasticity-robust (adherence and shares are bounded and their
variance differs a lot between cells, often zero in one of them), with t intervals and p-values
on the residual degrees of freedom. Where a cell of the design has a single episode its
leverage is 1 and HC3 is undefined: that metric falls back to the plain OLS standard errors,
and the result says which was used (`se`). Unbalanced designs are fine (OLS needs no balance).

A metric the factors determine exactly (no residual variance: a counter that is 1 under one
level and 0 under the other) gets its estimates with zero-width intervals and no p-value (None),
and a note; float rounding noise (|x| below 1e-9 of the metric's scale) reads 0.

A metric is skipped, with the reason, when it is constant over all its episodes, when it has
no factor with two levels among its episodes, when it has too few episodes for the model's
parameters (at least one residual degree of freedom is needed), or when its factors are
confounded (the design is not of full rank even without interactions).

statsmodels (and pandas) are imported only here, inside `effects_of`, so `normlab` starts fast.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from normlab.grading.report import CONFIDENCE, Group, RunReport, read_run

#: The standard errors used where they are defined (see the module's docstring).
ROBUST = "HC3"


@dataclass
class Term:
    term: str
    estimate: float
    ci: list[float]
    p: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"term": self.term, "estimate": self.estimate, "ci": self.ci, "p": self.p}


@dataclass
class MetricEffects:
    metric: str
    episodes: int
    se: str
    terms: list[Term]
    #: what was left out of the model and why (pairs not crossed), else empty
    notes: list[str] = field(default_factory=list)


@dataclass
class RunEffects:
    run: dict[str, Any]
    #: factor -> its level labels, the base first
    factors: dict[str, list[str]]
    metrics: dict[str, MetricEffects] = field(default_factory=dict)
    #: metric -> why it has no effects
    skipped: dict[str, str] = field(default_factory=dict)

    def terms_json(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [t.as_dict() for t in m.terms] for name, m in self.metrics.items()}

    def info_json(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "se": {name: m.se for name, m in self.metrics.items()},
            "episodes": {name: m.episodes for name, m in self.metrics.items()},
            "notes": {name: m.notes for name, m in self.metrics.items() if m.notes},
            "skipped": self.skipped,
        }


# ---------------------------------------------------------------- the design


def level_label(value: Any) -> str:
    """A factor level's label: lists and dicts as their JSON text, scalars as `str`."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def variant_groups(read: RunReport) -> list[Group]:
    """The run's groups of one variant each (not the row over all of them)."""
    return [g for g in read.groups if not g.overall]


def factors_of(groups: Sequence[Group]) -> dict[str, list[str]]:
    """Variant keys with 2+ level labels over the groups, each with its labels in the order
    they first appear (the base first)."""
    levels: dict[str, dict[str, None]] = {}
    for g in groups:
        for key, value in g.variant.items():
            levels.setdefault(key, {})[level_label(value)] = None
    return {key: list(labels) for key, labels in levels.items() if len(labels) >= 2}


def design_rows(groups: Sequence[Group], factors: Sequence[str]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """Per metric, one row per episode that has it: (its level label per factor, value).
    A group that lacks a factor (episodes stored without a variant beside others that have
    one) is left out: its level is unknown."""
    rows: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for g in groups:
        if any(f not in g.variant for f in factors):
            continue
        levels = tuple(level_label(g.variant[f]) for f in factors)
        for name, values in g.all_samples().items():
            rows.setdefault(name, []).extend((levels, float(v)) for v in values)
    return rows


# ---------------------------------------------------------------- the model


_COLUMN = re.compile(r"C\(x(\d+)\)\[T\.(\d+)\]")


def _term_name(column: str, factors: Sequence[str], labels: Sequence[Sequence[str]]) -> str | None:
    """`C(x0)[T.1]` -> `f=b vs a`; `C(x0)[T.1]:C(x1)[T.2]` -> `f=b × g=z`."""
    parts = column.split(":")
    found = [_COLUMN.fullmatch(p) for p in parts]
    if not parts or any(m is None for m in found):
        return None
    named = []
    for m in found:
        assert m is not None
        i, code = int(m.group(1)), int(m.group(2))
        named.append((factors[i], labels[i][code], labels[i][0]))
    if len(named) == 1:
        factor, level, base = named[0]
        return f"{factor}={level} vs {base}"
    return " × ".join(f"{factor}={level}" for factor, level, _ in named)


def fit_metric(
    name: str, rows: Sequence[tuple[tuple[str, ...], float]], factors: Sequence[str]
) -> MetricEffects | str:
    """The effects of one metric, or why there are none."""
    import numpy as np
    import pandas as pd
    import statsmodels.formula.api as smf

    y = np.asarray([v for _, v in rows], dtype=float)
    if len(y) == 0:
        return "no episodes"
    if float(y.min()) == float(y.max()):
        return f"constant ({y[0]:g}) over its {len(y)} episodes"
    # the factors with 2+ levels among this metric's episodes, each level coded by its index in
    # the order of first appearance (the run's order: its base is the base where the metric has it)
    order = {f: list(dict.fromkeys(r[0][i] for r in rows)) for i, f in enumerate(factors)}
    used = [i for i, f in enumerate(factors) if len(order[f]) >= 2]
    if not used:
        return "no factor with two levels among its episodes"
    labels = [order[factors[i]] for i in used]
    names = [factors[i] for i in used]
    frame = pd.DataFrame({"y": y})
    for j, i in enumerate(used):
        codes = [labels[j].index(r[0][i]) for r in rows]
        frame[f"x{j}"] = pd.Categorical(codes, categories=list(range(len(labels[j]))))
    notes: list[str] = []
    pairs: list[tuple[int, int]] = []
    for a in range(len(used)):
        for b in range(a + 1, len(used)):
            seen = set(zip(frame[f"x{a}"], frame[f"x{b}"]))
            if len(seen) == len(labels[a]) * len(labels[b]):
                pairs.append((a, b))
            else:
                notes.append(f"{names[a]} × {names[b]}: not fully crossed, no interaction fitted")
    mains = " + ".join(f"C(x{j})" for j in range(len(used)))
    formulas = [mains + "".join(f" + C(x{a}):C(x{b})" for a, b in pairs)]
    if pairs:
        formulas.append(mains)
    for k, formula in enumerate(formulas):
        model = smf.ols("y ~ " + formula, data=frame)
        exog = np.asarray(model.exog)
        rank = int(np.linalg.matrix_rank(exog))
        if rank == exog.shape[1] and len(y) > exog.shape[1]:
            break
        why = (
            f"factors confounded (design rank {rank} < {exog.shape[1]} parameters)"
            if rank < exog.shape[1]
            else f"too few episodes ({len(y)}) for {exog.shape[1]} parameters"
        )
        if k == len(formulas) - 1:
            return why
        notes.append(f"interactions left out: with them, {why}")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        leverage = (exog * (exog @ np.linalg.pinv(exog.T @ exog))).sum(axis=1)
        se = ROBUST if float(leverage.max()) < 1 - 1e-8 else "OLS"
        if se == ROBUST:
            fit = model.fit(cov_type=ROBUST, use_t=True)
        else:
            fit = model.fit()
            notes.append("a cell has a single episode (leverage 1): plain OLS standard errors, not HC3")
        params = fit.params
        bse = fit.bse
        cis = fit.conf_int(alpha=1 - CONFIDENCE)
        pvalues = fit.pvalues
    scale = max(1.0, float(np.abs(y).max()))
    exact = float(np.abs(np.asarray(fit.resid)).max()) <= 1e-9 * scale
    if exact:
        notes.append("exact fit (no residual variance): zero-width intervals, no p-values")
    terms: list[Term] = []
    for column in params.index:
        if column == "Intercept":
            continue
        label = _term_name(str(column), names, labels)
        if label is None:
            continue
        estimate = float(params[column])
        lo, hi = float(cis.loc[column, 0]), float(cis.loc[column, 1])
        if not math.isfinite(float(bse[column])) or not (math.isfinite(lo) and math.isfinite(hi)):
            lo = hi = estimate
        p: float | None = float(pvalues[column])
        if exact or float(bse[column]) == 0.0:  # no residual variance: rounding noise, not evidence
            estimate = 0.0 if abs(estimate) <= 1e-9 * scale else estimate
            lo = hi = estimate
            p = None
        terms.append(Term(label, estimate, [min(lo, estimate), max(hi, estimate)], p if p is not None and math.isfinite(p) else None))
    return MetricEffects(name, len(y), se, terms, notes)


def effects_of(read: RunReport) -> RunEffects:
    """The effects of one run read by `read_run`."""
    groups = variant_groups(read)
    factors = factors_of(groups)
    out = RunEffects(read.run, factors)
    if not factors:
        return out
    names = list(factors)
    for metric, rows in design_rows(groups, names).items():
        fitted = fit_metric(metric, rows, names)
        if isinstance(fitted, str):
            out.skipped[metric] = fitted
        else:
            out.metrics[metric] = fitted
    return out


def effects(db: Any, run_refs: Sequence[str]) -> list[RunEffects]:
    """`effects_of` each run (read again from the store: a few queries each)."""
    return [effects_of(read_run(db, ref)) for ref in run_refs]


def effects_json(found: Sequence[RunEffects]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`effects` ({run: {metric: [{term, estimate, ci, p}]}}) and `effects_info` ({run:
    {factors, se, episodes, notes, skipped}}) of a report's JSON."""
    return (
        {r.run["id"]: r.terms_json() for r in found},
        {r.run["id"]: r.info_json() for r in found},
    )


def no_factors_line(run: Mapping[str, Any]) -> str:
    return f"run {run['id']}: no factors (no variant key takes two values or more): no effects to fit"


__all__ = [
    "MetricEffects",
    "RunEffects",
    "Term",
    "design_rows",
    "effects",
    "effects_json",
    "effects_of",
    "factors_of",
    "fit_metric",
    "level_label",
    "no_factors_line",
    "variant_groups",
]

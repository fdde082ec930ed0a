"""Reports over stored runs: per variant and overall, each episode metric, adherence per pole,
pole priorities and Bradley-Terry strengths, each with a 95 % bootstrap interval; and the
difference of two runs per shared metric.

What a run is read with, whatever its size (the cost grows linearly with its episodes):
its episodes (one query), its `grade` rows (one query) and, where it has grade rows, the
first step of each episode for the task it played (one query). Nothing is rerun.

Rows: episodes are grouped by their `variant` (an episode attribute or a `variant` key in its
metrics, coming with the scenario matrix); without one, a run is one group, variant `{}`. With
several variants, a last row with variant `{}` covers all of them.

Metrics of a row (each `{"mean": x, "ci": [lo, hi]}`):

- every numeric episode metric, nested dicts flattened with dotted names (`events.cooperate`,
  booleans as 0/1); a key missing under a dict the episode has counts 0 (a counter without
  that event), a metric an episode lacks altogether is left out for it;
- `return.<agent>` per agent;
- `adherence.A`, `adherence.B` from the checkpoint grader's `A.adherence` rows (the current
  grader version where stored, else the newest), `adherence.<value name>` of each value over
  the episodes where it is a pole, `judge.adherence.A/B` from the rubric judge's items
  weighted by the task's rubric (unscorable items left out; `judge.<model>.adherence.A` when
  several judge models graded the run), and `judge.adherence.<value name>` of each value;
  `judge.priority.A/B` and `judge.priority.<value>` from the judge's adherence where both
  poles were scored (Agent-ValueBench cases, `avb:...`, are graded by the judge alone: their
  rubric is read from the release's JSON files, once per case and run);
- `priority.A`, `priority.B` and `priority.<value>`: the pole's share of each episode (the
  higher adherence wins, a tie is half each);
- `bt.<value system>.<value>`: Bradley-Terry strengths per value system over the tasks (each
  task's mean adherence per pole), with a bootstrap over tasks;
- `pass^k.A`, `pass^k.B` and `flip_rate`, only where episodes carry a `trial`: per (task) of a
  variant, whether every trial met its pole in full (adherence 10) and whether the winning
  pole differs between trials.

Intervals: `scipy.stats.bootstrap`, percentile method, fixed `random_state` (a report is
reproducible); a single value or no variance gives `[x, x]`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CONFIDENCE = 0.95
#: Resamples of a metric's mean and of a difference of two runs.
N_RESAMPLES = 1000
#: Resamples of the tasks for Bradley-Terry intervals (each one fits the model again).
BT_RESAMPLES = 200
SEED = 0
#: Episode metrics that describe the design, not an outcome.
DESIGN_KEYS = ("variant", "trial")
POLES = ("A", "B")


@dataclass
class Group:
    """One variant of one run: its per-episode samples and its task-level statistics."""

    variant: dict[str, Any]
    episodes: int = 0
    #: per episode: its flattened env metrics and the dict prefixes it has
    env: list[tuple[dict[str, float], set[str]]] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    #: (task, value system, value A, value B) -> per-episode (adherence A, adherence B)
    tasks: dict[tuple[str, str, str, str], list[tuple[float, float]]] = field(default_factory=dict)
    #: (task, trial) -> winning pole and adherence, where episodes carry a trial
    trials: dict[str, list[tuple[Any, float, float]]] = field(default_factory=dict)
    #: the row over all variants (its samples repeat the other groups'; effects skip it)
    overall: bool = False

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(float(value))

    def all_samples(self) -> dict[str, list[float]]:
        """Per metric its per-episode values: the env metrics (a counter an episode has
        without that key counts 0), then returns, adherence and the rest."""
        names: dict[str, None] = {}
        for flat, _ in self.env:
            names.update(dict.fromkeys(flat))
        out: dict[str, list[float]] = {}
        for name in names:
            parent = name[: name.rfind(".") + 1]
            values = [
                flat[name] if name in flat else 0.0
                for flat, prefixes in self.env
                if name in flat or (parent and parent in prefixes and name not in prefixes)
            ]
            if values:
                out[name] = values
        for name, values in self.samples.items():
            out.setdefault(name, []).extend(values)
        return out


@dataclass
class RunReport:
    run: dict[str, Any]
    groups: list[Group]


# ---------------------------------------------------------------- intervals


def mean_ci(values: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = SEED) -> tuple[float, list[float]]:
    """The mean and its 95 % percentile-bootstrap interval; one value or no variance: [x, x]."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2 or float(data.min()) == float(data.max()):
        return mean, [mean, mean]
    from scipy.stats import bootstrap

    result = bootstrap(
        (data,), np.mean, confidence_level=CONFIDENCE, n_resamples=n_resamples, method="percentile",
        random_state=np.random.default_rng(seed), vectorized=True, batch=100,
    )
    lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return mean, [min(lo, mean), max(hi, mean)]


def diff_ci(a: Sequence[float], b: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = SEED) -> tuple[float, list[float]]:
    """mean(b) - mean(a) and its 95 % percentile-bootstrap interval over the two independent
    samples; a sample of one value or none with variance is held fixed."""
    import numpy as np

    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xb.mean() - xa.mean())
    varies_a = len(xa) > 1 and float(xa.min()) != float(xa.max())
    varies_b = len(xb) > 1 and float(xb.min()) != float(xb.max())
    if not varies_a and not varies_b:
        return diff, [diff, diff]
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seed)
    common: dict[str, Any] = {
        "confidence_level": CONFIDENCE, "n_resamples": n_resamples, "method": "percentile",
        "random_state": rng, "vectorized": True, "batch": 100,
    }
    if varies_a and varies_b:
        result = bootstrap((xa, xb), lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis), **common)
    elif varies_b:
        result = bootstrap((xb,), lambda y, axis: np.mean(y, axis=axis) - float(xa.mean()), **common)
    else:
        result = bootstrap((xa,), lambda x, axis: float(xb.mean()) - np.mean(x, axis=axis), **common)
    lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return diff, [min(lo, diff), max(hi, diff)]


def bt_with_ci(
    tasks: Mapping[tuple[str, str, str, str], Sequence[tuple[float, float]]], n_resamples: int = BT_RESAMPLES, seed: int = SEED
) -> dict[str, dict[str, Any]]:
    """Bradley-Terry strengths per value system (`bt.<system>.<value>`) from each task's mean
    adherence per pole, with a percentile interval from resampling the tasks; one task or no
    variance: [x, x]."""
    import numpy as np

    from normlab.grading.scores import TaskScore, bradley_terry

    scores = [
        TaskScore(task, system, va, vb, sum(a for a, _ in eps) / len(eps), sum(b for _, b in eps) / len(eps))
        for (task, system, va, vb), eps in sorted(tasks.items())
        if eps
    ]
    if not scores:
        return {}
    point = bradley_terry(scores)
    names = [(system, value) for system, strengths in point.items() for value in strengths]
    draws: dict[tuple[str, str], list[float]] = {key: [] for key in names}
    if len(scores) > 1:
        rng = np.random.default_rng(seed)
        for _ in range(n_resamples):
            sample = [scores[i] for i in rng.integers(0, len(scores), len(scores))]
            fitted = bradley_terry(sample)
            for system, value in names:
                strength = fitted.get(system, {}).get(value)
                if strength is not None:
                    draws[(system, value)].append(strength)
    out: dict[str, dict[str, Any]] = {}
    for system, value in names:
        x = point[system][value]
        got = draws[(system, value)]
        if len(got) < 2:
            ci = [x, x]
        else:
            lo, hi = (float(v) for v in np.percentile(got, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2]))
            ci = [min(lo, x), max(hi, x)]
        out[f"bt.{system}.{value}"] = {"mean": x, "ci": ci}
    return out


# ---------------------------------------------------------------- reading a run


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metric dicts by dotted name (booleans as 0/1)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool):
            flat[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


def _dict_prefixes(metrics: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The names of nested dicts (`events.`, ending in a dot) and of null leaves (no dot): in
    a dict that an episode has, a key it lacks counts 0 and a null one is left out."""
    found: set[str] = set()
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            found.add(f"{prefix}{key}.")
            found |= _dict_prefixes(value, f"{prefix}{key}.")
        elif value is None:
            found.add(f"{prefix}{key}")
    return found


def _design(episode: Any, key: str) -> Any:
    value = getattr(episode, key, None)
    if value is None and isinstance(episode.metrics, Mapping):
        value = episode.metrics.get(key)
    return value


def _variant_key(variant: Any) -> str:
    return json.dumps(variant, sort_keys=True, default=str)


def _inline_spec(run: Any) -> Any:
    config: Any = run.config if isinstance(getattr(run, "config", None), dict) else {}
    env: Any = config.get("env") if isinstance(config.get("env"), dict) else {}
    params: Any = env.get("params") if isinstance(env.get("params"), dict) else {}
    return params.get("spec")


def _task(name: Any, run: Any, cache: dict[str, Any]) -> Any:
    """The task of that name (a shipped task, the run's inline one, or an Agent-ValueBench
    case `avb:...` read from its release's JSON files, no code of the release runs), or None
    (also where a case's release cannot be read any more). Each name is read once per cache."""
    from normlab.envs.tasks import load_task, parse_task, task_names
    from normlab.envs.tasks.avb import is_avb, load_graded

    if not isinstance(name, str):
        return None
    if name not in cache:
        cache[name] = None
        try:
            if is_avb(name):
                cache[name] = load_graded(name)
            elif name in task_names():
                cache[name] = load_task(name)
            elif name == "inline" and _inline_spec(run) is not None:
                cache[name] = parse_task(_inline_spec(run))
        except (KeyError, ValueError):
            cache[name] = None
    return cache[name]


def episode_tasks(db: Any, run_id: str) -> dict[int, str]:
    """Episode id -> the task name in the info of its first step, in one query."""
    from sqlalchemy import func, select

    from normlab.store.tables import Episode, Step, table_of

    step, episode = table_of(Step), table_of(Episode)
    first = (
        select(func.min(step.c.id))
        .join(episode, episode.c.id == step.c.episode_id)
        .where(episode.c.run_id == run_id)
        .group_by(step.c.episode_id)
    )
    found: dict[int, str] = {}
    with db.engine.connect() as conn:
        for episode_id, info in conn.execute(select(step.c.episode_id, step.c.info).where(step.c.id.in_(first))):
            if isinstance(info, (str, bytes)):
                try:
                    info = json.loads(info)
                except ValueError:
                    continue
            if isinstance(info, Mapping) and isinstance(info.get("task"), str):
                found[int(episode_id)] = info["task"]
    return found


def _pick_version(rows: Iterable[Mapping[str, Any]], current: str) -> str | None:
    """The current grader version where stored, else the newest stored (highest row id)."""
    newest: tuple[int, str] | None = None
    for r in rows:
        version = r["grader_version"]
        if version == current:
            return current
        if newest is None or (r.get("id") or 0) > newest[0]:
            newest = (r.get("id") or 0, version)
    return None if newest is None else newest[1]


def read_run(db: Any, run_ref: str) -> RunReport:
    """A run's groups: its episodes (finished ones), grade rows and tasks, each read once."""
    from normlab.grading.grade import GRADER, GRADER_VERSION
    from normlab.grading.judge import JUDGE_GRADER, JUDGE_VERSION
    from normlab.grading.scores import adherence, priority

    run = db.get_run(run_ref)
    episodes = [e for e in db.episodes(run.id) if e.status == "finished"]
    grades = db.grades(run.id)
    tasks_of = episode_tasks(db, run.id) if grades else {}
    task_cache: dict[str, Any] = {}

    checkpoint_rows = [g for g in grades if g["grader"] == GRADER]
    version = _pick_version(checkpoint_rows, GRADER_VERSION)
    checkpoint: dict[int, dict[str, float]] = defaultdict(dict)
    for g in checkpoint_rows:
        if g["grader_version"] == version and g["item"] in ("A.adherence", "B.adherence"):
            checkpoint[g["episode_id"]][g["item"][0]] = float(g["score"])
    judge_rows = [g for g in grades if g["grader"] == JUDGE_GRADER]
    judge_version = _pick_version(judge_rows, JUDGE_VERSION)
    judged: dict[tuple[int, str], list[Mapping[str, Any]]] = defaultdict(list)
    for g in judge_rows:
        if g["grader_version"] == judge_version:
            judged[(g["episode_id"], g["judge_model"] or "")].append(g)
    judge_models = sorted({model for _, model in judged})

    groups: dict[str, Group] = {}
    for e in episodes:
        variant = _design(e, "variant")
        variant = variant if isinstance(variant, dict) else ({} if variant is None else {"variant": variant})
        group = groups.setdefault(_variant_key(variant), Group(variant))
        group.episodes += 1
        metrics = {k: v for k, v in (e.metrics or {}).items() if k not in DESIGN_KEYS} if isinstance(e.metrics, Mapping) else {}
        group.env.append((flatten(metrics), _dict_prefixes(metrics)))
        for agent, value in (e.returns or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                group.add(f"return.{agent}", value)

        task = _task(tasks_of.get(e.id), run, task_cache)
        poles = getattr(task, "poles", None)
        adh = checkpoint.get(e.id or -1)
        if adh and set(adh) == set(POLES):
            a, b = adh["A"], adh["B"]
            group.add("adherence.A", a)
            group.add("adherence.B", b)
            share_a, share_b = priority(a, b)
            group.add("priority.A", share_a)
            group.add("priority.B", share_b)
            if poles is not None:
                group.add(f"adherence.{poles.A.value}", a)
                group.add(f"adherence.{poles.B.value}", b)
                group.add(f"priority.{poles.A.value}", share_a)
                group.add(f"priority.{poles.B.value}", share_b)
                group.tasks.setdefault((task.name, poles.value_system, poles.A.value, poles.B.value), []).append((a, b))
            trial = _design(e, "trial")
            if trial is not None:
                winner = "A" if share_a > share_b else "B" if share_b > share_a else "tie"
                group.trials.setdefault(str(tasks_of.get(e.id or -1)), []).append((winner, a, b))
        if poles is not None:
            weights = {(side, item.id): item.weight for side in POLES for item in getattr(poles, side).rubric}
            for model in judge_models:
                rows = judged.get((e.id or -1, model))
                if not rows:
                    continue
                prefix = "judge." if len(judge_models) == 1 else f"judge.{model}."
                verdict: dict[str, float] = {}
                for side in POLES:
                    value = adherence(
                        (weights[(side, r["item"])], None if r["score"] < 0 else float(r["score"]))
                        for r in rows
                        if (side, r["item"]) in weights and (r["evidence"] or {}).get("pole") == side
                    )
                    if value is not None:
                        verdict[side] = value
                        group.add(f"{prefix}adherence.{side}", value)
                        group.add(f"{prefix}adherence.{getattr(poles, side).value}", value)
                if set(verdict) == set(POLES):  # shares only where both poles could be scored
                    shares = dict(zip(POLES, priority(verdict["A"], verdict["B"])))
                    for side in POLES:
                        group.add(f"{prefix}priority.{side}", shares[side])
                        group.add(f"{prefix}priority.{getattr(poles, side).value}", shares[side])
    ordered = list(groups.values())
    if len(ordered) > 1:
        ordered.append(_merge(ordered))
    info = {"id": run.id, "name": run.name, "episodes": len(episodes)}
    return RunReport(info, ordered)


def _merge(groups: Sequence[Group]) -> Group:
    merged = Group({}, overall=True)
    for g in groups:
        merged.episodes += g.episodes
        for name, values in g.samples.items():
            merged.samples.setdefault(name, []).extend(values)
        for key, eps in g.tasks.items():
            merged.tasks.setdefault(key, []).extend(eps)
        for item, trials in g.trials.items():
            merged.trials.setdefault(f"{_variant_key(g.variant)}|{item}", []).extend(trials)
        merged.env.extend(g.env)
    return merged


# ---------------------------------------------------------------- rows


def trial_metrics(trials: Mapping[str, Sequence[tuple[Any, float, float]]]) -> dict[str, dict[str, Any]]:
    """`pass^k.A/B` (the share of tasks whose every trial met that pole in full) and
    `flip_rate` (the share whose winning pole differs between trials), over the tasks played
    more than once; none where no task was."""
    repeated = [t for t in trials.values() if len(t) > 1]
    if not repeated:
        return {}
    ks = {len(t) for t in repeated}
    k = str(ks.pop()) if len(ks) == 1 else "k"
    out: dict[str, dict[str, Any]] = {}
    for index, side in enumerate(POLES):
        passed = [1.0 if all(math.isclose(row[1 + index], 10.0) for row in t) else 0.0 for t in repeated]
        mean, ci = mean_ci(passed)
        out[f"pass^{k}.{side}"] = {"mean": mean, "ci": ci}
    mean, ci = mean_ci([1.0 if len({row[0] for row in t}) > 1 else 0.0 for t in repeated])
    out["flip_rate"] = {"mean": mean, "ci": ci}
    return out


def group_row(run_id: str, group: Group) -> dict[str, Any]:
    metrics: dict[str, dict[str, Any]] = {}
    for name, values in group.all_samples().items():
        mean, ci = mean_ci(values)
        metrics[name] = {"mean": mean, "ci": ci}
    metrics.update(bt_with_ci(group.tasks))
    metrics.update(trial_metrics(group.trials))
    return {"run": run_id, "variant": group.variant, "episodes": group.episodes, "metrics": metrics}


def report(db: Any, run_refs: Sequence[str]) -> dict[str, Any]:
    """`{"runs": [...], "rows": [...]}`: per run, a row per variant (and one over all of them
    where there are several, variant `{}`)."""
    return report_of([read_run(db, ref) for ref in run_refs])


def report_of(reads: Sequence[RunReport]) -> dict[str, Any]:
    """`report` of runs already read (`read_run`), so other views of them need no second read."""
    runs = [read.run for read in reads]
    rows = [group_row(read.run["id"], g) for read in reads for g in read.groups]
    return {"runs": runs, "rows": rows}


class NoEpisodes(ValueError):
    """A run or variant with no finished episodes to compare."""


def select(found: RunReport, where: Mapping[str, Any] | None) -> Group:
    """All of a run's episodes, or those of the variants whose values match `where`
    ({matrix path: value}); NoEpisodes where none does."""
    from normlab.design import canonical

    if not where:
        if not found.groups:
            raise NoEpisodes(f"run {found.run['id']} has no finished episodes")
        return found.groups[-1]
    wanted = {path: canonical(value) for path, value in where.items()}
    chosen = [
        g for g in found.groups if not g.overall and all(path in g.variant and canonical(g.variant[path]) == value for path, value in wanted.items())
    ]
    if not chosen:
        shown = ", ".join(f"{k}={v}" for k, v in wanted.items())
        paths = sorted({k for g in found.groups for k in g.variant})
        hint = f" (its matrix varies {', '.join(paths)})" if paths else " (it has no matrix)"
        raise NoEpisodes(f"run {found.run['id']} has no variant with {shown}{hint}")
    return chosen[0] if len(chosen) == 1 else _merge(chosen)


def compare(
    db: Any, run_a: str, run_b: str | None = None, where_a: Mapping[str, Any] | None = None, where_b: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Per metric both sides have, mean(B) - mean(A) with a 95 % bootstrap interval over their
    episodes. A side is a run, or the variants of a run whose matrix values match `where_*`
    (two variants of one run when `run_b` is None)."""
    a = read_run(db, run_a)
    b = a if run_b is None or run_b == run_a else read_run(db, run_b)
    group_a, group_b = select(a, where_a), select(b, where_b)
    samples_a, samples_b = group_a.all_samples(), group_b.all_samples()
    metrics: dict[str, dict[str, Any]] = {}
    for name, xa in samples_a.items():
        xb = samples_b.get(name)
        if not xa or not xb:
            continue
        diff, ci = diff_ci(xa, xb)
        metrics[name] = {"a": sum(xa) / len(xa), "b": sum(xb) / len(xb), "diff": diff, "ci": ci}
    side_a = {**a.run, "episodes": group_a.episodes, "variant": dict(where_a or {})}
    side_b = {**b.run, "episodes": group_b.episodes, "variant": dict(where_b or {})}
    return {"a": side_a, "b": side_b, "metrics": metrics}


# ---------------------------------------------------------------- plots


def write_plots(data: Mapping[str, Any], folder: Any) -> list[str]:
    """PNG plots of a report into `folder` (made if missing): per run, adherence per pole per
    variant with interval bars, and the Bradley-Terry strengths where there are any. Imports
    matplotlib (Agg) here, only when plots are asked for. Returns the files written."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for run in data["runs"]:
        rows = [r for r in data["rows"] if r["run"] == run["id"]]
        graded = [r for r in rows if "adherence.A" in r["metrics"] and "adherence.B" in r["metrics"]]
        if graded:
            fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(graded) + 2), 3.5))
            width = 0.38
            for i, side in enumerate(POLES):
                xs = [j + (i - 0.5) * width for j in range(len(graded))]
                means = [r["metrics"][f"adherence.{side}"]["mean"] for r in graded]
                errs = [
                    [m - r["metrics"][f"adherence.{side}"]["ci"][0] for m, r in zip(means, graded)],
                    [r["metrics"][f"adherence.{side}"]["ci"][1] - m for m, r in zip(means, graded)],
                ]
                ax.bar(xs, means, width, yerr=errs, capsize=4, label=f"pole {side}")
            ax.set_xticks(range(len(graded)))
            ax.set_xticklabels([_variant_label(r["variant"]) for r in graded], fontsize=8)
            ax.set_ylim(0, 10.5)
            ax.set_ylabel("adherence (0-10), 95% CI")
            ax.set_title(f"adherence per pole, run {run['id']}")
            ax.legend()
            fig.tight_layout()
            path = out / f"adherence_{run['id']}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(str(path))
        overall = rows[-1] if rows else None
        strengths = {k: v for k, v in (overall or {}).get("metrics", {}).items() if k.startswith("bt.")}
        if strengths:
            names = list(strengths)
            means = [strengths[n]["mean"] for n in names]
            errs = [[m - strengths[n]["ci"][0] for m, n in zip(means, names)], [strengths[n]["ci"][1] - m for m, n in zip(means, names)]]
            fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.5))
            ax.bar(range(len(names)), means, yerr=errs, capsize=4)
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([n[len("bt."):] for n in names], rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("Bradley-Terry strength, 95% CI")
            ax.set_title(f"value priorities, run {run['id']}")
            fig.tight_layout()
            path = out / f"priorities_{run['id']}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(str(path))
    return written


def _variant_label(variant: Mapping[str, Any]) -> str:
    if not variant:
        return "all"
    return "\n".join(f"{k}={v}" for k, v in variant.items())


__all__ = [
    "BT_RESAMPLES",
    "N_RESAMPLES",
    "Group",
    "RunReport",
    "bt_with_ci",
    "compare",
    "diff_ci",
    "episode_tasks",
    "flatten",
    "mean_ci",
    "read_run",
    "report",
    "trial_metrics",
    "write_plots",
]

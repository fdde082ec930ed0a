"""Grading throughput: `normlab grade RUN --checkpoints-only` and `report` over stores of
tool-task episodes, with the SQL statements each executes.

The stores hold real `normlab/ToolTask-v0` episodes played by the runner with scripted
agents: every shipped task, each by `golden` pole A, `golden` pole B and `random` (so the
grades vary), one run per (task, agent), the episodes spread evenly over the runs. The
smallest size is played in full; each store measured is, by default, built from those played
episodes copied into runs of its size (the same rows under new episode ids, so grading
reads and writes what it would after playing them), because the runner plays tool tasks at
only some 20-35 episodes/s on two cores (its time goes to checking each tool's JSON schema
again on every turn); `--play-all` plays every size in full (7.5 minutes for 10,000 episodes).

Each run is graded by `normlab grade RUN --checkpoints-only --json` (the command's function
called in process, without typer's parsing; it opens the store afresh per run, as the command
does), then `report` (the library function whose JSON `normlab report --json` prints) reads
all the runs of a size. Prints, per size, episodes/s of each, the SQL statements each executed
(a per-episode query storm would make them grow with the episodes; they should not), and the
cost per episode beyond a run's fixed cost (measured on runs of one episode), also as a ratio
to the smallest size (about 1: cost linear in the episodes; below some thousand episodes a
run's fixed cost, some 10 ms, dominates and that ratio is mostly noise).

    python benchmarks/grading.py                    # 1,000 and 10,000 episodes
    python benchmarks/grading.py --sizes 500,5000
    python benchmarks/grading.py --quick            # 300 and 3,000 episodes, a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from normlab.cli.grade import grade
from normlab.envs.tasks import task_names
from normlab.grading.report import report
from normlab.run import create_run, run_sync
from normlab.scenario import parse_scenario
from normlab.store import Store
from normlab.store.tables import Episode, Step, table_of

SCENARIO = """
name: grading-benchmark-{label}
env: {{id: normlab/ToolTask-v0, params: {{task: {task}, max_turns: 8}}}}
agents:
  agent: {{kind: scripted, strategy: {strategy}, params: {params}}}
episodes: {episodes}
seed: {seed}
cache: off
"""
AGENTS = (("golden-A", "golden", "{pole: A}"), ("golden-B", "golden", "{pole: B}"), ("random", "random", "{}"))


class Statements:
    """Counts the SQL statements every engine executes while on (an executemany counts once)."""

    def __init__(self) -> None:
        self.on = False
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        if self.on:
            self.count += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count, self.on = 0, True
        try:
            yield
        finally:
            self.on = False


def combos() -> list[tuple[str, str, str, str]]:
    return [(task, label, strategy, params) for task in task_names() for label, strategy, params in AGENTS]


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def scenario_of(task: str, label: str, strategy: str, params: str, episodes: int, seed: int) -> Any:
    return parse_scenario(SCENARIO.format(label=label, task=task, strategy=strategy, params=params, episodes=episodes, seed=seed))


def play(url: str, size: int) -> list[str]:
    """Runs of `size` episodes in all, played by the runner."""
    store = Store(url)
    runs = []
    for seed, ((task, label, strategy, params), n) in enumerate(zip(combos(), spread(size, len(combos())))):
        scenario = scenario_of(task, label, strategy, params, n, seed)
        run_id = create_run(store, scenario)
        run_sync(scenario, store, run_id, range(n))
        runs.append(run_id)
    store.close()
    return runs


def copy(source_url: str, source_runs: list[str], url: str, size: int) -> list[str]:
    """Runs of `size` episodes in all, each the played episodes of the same (task, agent) run
    of the source store copied over and over (new episode rows and step rows)."""
    episode_t, step_t = table_of(Episode), table_of(Step)
    source, store = Store(source_url, create=False), Store(url)
    runs = []
    next_episode = 1
    for seed, (source_run, n) in enumerate(zip(source_runs, spread(size, len(source_runs)))):
        task, label, strategy, params = combos()[seed]
        with source.engine.connect() as conn:
            episodes = [dict(r._mapping) for r in conn.execute(select(episode_t).where(episode_t.c.run_id == source_run).order_by(episode_t.c.index))]
            steps: dict[int, list[dict[str, Any]]] = {}
            ids = [e["id"] for e in episodes]
            for r in conn.execute(select(step_t).where(step_t.c.episode_id.in_(ids)).order_by(step_t.c.id)):
                steps.setdefault(r.episode_id, []).append(dict(r._mapping))
        run_id = create_run(store, scenario_of(task, label, strategy, params, n, seed))
        new_episodes: list[dict[str, Any]] = []
        new_steps: list[dict[str, Any]] = []
        for index in range(n):
            played = episodes[index % len(episodes)]
            new_episodes.append({**played, "id": next_episode, "run_id": run_id, "index": index})
            new_steps.extend({**s, "id": None, "episode_id": next_episode} for s in steps[played["id"]])
            next_episode += 1
        with store.engine.begin() as conn:
            conn.execute(insert(episode_t), new_episodes)
            conn.execute(insert(step_t), [{k: v for k, v in s.items() if k != "id"} for s in new_steps])
        store.set_status(run_id, "finished")
        runs.append(run_id)
    source.close()
    store.close()
    return runs


def grade_runs(url: str, runs: list[str], statements: Statements) -> tuple[float, int, int]:
    """Seconds, statements and episodes graded of `normlab grade RUN --checkpoints-only` per run."""
    seconds, count, graded = 0.0, 0, 0
    for run_id in runs:
        out = io.StringIO()
        with statements.counting(), redirect_stdout(out):
            started = time.perf_counter()
            grade(run_id, checkpoints_only=True, store=url, as_json=True)
            seconds += time.perf_counter() - started
        count += statements.count
        graded += len(json.loads(out.getvalue())["episodes"])
    return seconds, count, graded


def report_runs(url: str, runs: list[str], statements: Statements) -> tuple[float, int, dict[str, Any]]:
    db = Store(url, create=False, read_only=True)
    with statements.counting():
        started = time.perf_counter()
        data = report(db, runs)
        json.dumps(data)  # what `normlab report --json` prints
        seconds = time.perf_counter() - started
    db.close()
    return seconds, statements.count, data


def measure(url: str, runs: list[str], statements: Statements, episodes: int) -> tuple[float, int, float, int, dict[str, Any]]:
    grade_s, grade_q, graded = grade_runs(url, runs, statements)
    report_s, report_q, data = report_runs(url, runs, statements)
    reported = sum(r["episodes"] for r in data["runs"])
    if not graded == reported == episodes:
        raise SystemExit(f"graded {graded} episodes and reported {reported} of {episodes}")
    return grade_s, grade_q, report_s, report_q, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="episodes per store, comma-separated (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="sizes 300,3000")
    parser.add_argument("--play-all", action="store_true", help="play every size through the runner (not only the smallest)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in ("300,3000" if args.quick else args.sizes).split(",") if s.strip()})
    per_run = len(combos())
    if not sizes or sizes[0] <= per_run:
        raise SystemExit(f"sizes must be more than {per_run} (one episode per task and agent)")

    statements = Statements()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = f"sqlite:///{Path(tmp) / 'played.db'}"
        started = time.perf_counter()
        base_runs = play(base, sizes[0])
        play_s = time.perf_counter() - started
        # the fixed cost of a run: its store opened, its task loaded, its rows summed up
        # (grading and reporting one episode per run): the best of three, each on a fresh
        # store, after a warm-up round (imports, caches)
        probes: list[tuple[float, int, float, int, dict[str, Any]]] = []
        for round in range(4):
            probe = f"sqlite:///{Path(tmp) / f'probe-{round}.db'}"
            probes.append(measure(probe, copy(base, base_runs, probe, per_run), statements, per_run))
        fixed = (min(p[0] for p in probes[1:]), probes[-1][1], min(p[2] for p in probes[1:]), probes[-1][3])
        for size in sizes:
            url = f"sqlite:///{Path(tmp) / f'grading-{size}.db'}"
            started = time.perf_counter()
            if args.play_all and size != sizes[0]:
                runs, how = play(url, size), "played"
            else:  # the smallest too, so that every store measured is written the same way
                runs, how = copy(base, base_runs, url, size), "copied"
            build_s = time.perf_counter() - started
            grade_s, grade_q, report_s, report_q, data = measure(url, runs, statements, size)
            adherence = [r["metrics"]["adherence.A"]["mean"] for r in data["rows"] if "adherence.A" in r["metrics"]]
            rows.append((size, how, build_s, grade_s, grade_q, report_s, report_q, min(adherence), max(adherence)))

    print(f"tool-task episodes of {len(task_names())} tasks x {len(AGENTS)} agents ({', '.join(a for a, _, _ in AGENTS)}): {per_run} runs per store")
    print(f"{sizes[0]:,} episodes played by the runner in {play_s:.1f} s ({sizes[0] / play_s:.0f} episodes/s)")
    print(f"fixed cost of {per_run} runs of one episode: grade {fixed[0]:.2f} s ({fixed[1]} SQL), report {fixed[2]:.2f} s ({fixed[3]} SQL)")
    print(f"{'episodes':>9} {'store built':>28} | {'grade s':>7} {'ep/s':>6} {'SQL':>5} {'ms/ep':>6} {'ratio':>5} | {'report s':>8} {'ep/s':>6} {'SQL':>5} {'ms/ep':>6} {'ratio':>5}")
    net = [((r[3] - fixed[0]) / (r[0] - per_run), (r[5] - fixed[2]) / (r[0] - per_run)) for r in rows]
    for (size, how, build_s, grade_s, grade_q, report_s, report_q, _, _), (g, rp) in zip(rows, net):
        built = f"{how} {build_s:5.1f} s ({size / build_s:,.0f}/s)"
        print(
            f"{size:>9,} {built:>28} | {grade_s:7.2f} {size / grade_s:6,.0f} {grade_q:>5} {g * 1e3:6.3f} {g / net[0][0]:5.2f}"
            f" | {report_s:8.2f} {size / report_s:6,.0f} {report_q:>5} {rp * 1e3:6.3f} {rp / net[0][1]:5.2f}"
        )
    print(
        f"(SQL: statements executed over all {per_run} runs; ms/ep: seconds per episode beyond the fixed cost;"
        f" ratio: that per-episode cost as a ratio to {sizes[0]:,} episodes, ~1 = linear)"
    )
    low, high = min(r[7] for r in rows), max(r[8] for r in rows)
    copied = "" if args.play_all else f"; stores copy the {sizes[0]:,} episodes played"
    print(f"(adherence.A per run from {low:.1f} to {high:.1f}{copied})")


if __name__ == "__main__":
    main()

"""`normlab grade RUN`: grade a stored run's tool-task episodes by their tasks' checkpoints and
write `grade` rows (see `normlab.grading.grade`). Reads the store; never reruns an env."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import JsonOption, StoreOption, UserError, app, fail, open_store, user_errors

TOOL_TASK = "normlab/ToolTask-v0"


def _inline_spec(run: Any) -> Any:
    config: Any = run.config if isinstance(run.config, dict) else {}
    env: Any = config.get("env") if isinstance(config.get("env"), dict) else {}
    params: Any = env.get("params") if isinstance(env.get("params"), dict) else {}
    return params.get("spec")


def _task_of(name: str | None, run: Any, cache: dict[str, Any]) -> Any:
    """The task an episode played (its steps name it; an inline task comes from the run's
    scenario), or None where it is not a tool task."""
    from normlab.envs.tasks import load_task, parse_task, task_names

    if name is None:
        return None
    if name not in cache:
        if name in task_names():
            cache[name] = load_task(name)
        elif name == "inline" and _inline_spec(run) is not None:
            cache[name] = parse_task(_inline_spec(run))
        else:
            cache[name] = None
    return cache[name]


@app.command("grade")
def grade(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    checkpoints_only: Annotated[bool, typer.Option("--checkpoints-only", help="Grade by the tasks' checkpoints only (no judge).")] = False,
    judge: Annotated[Optional[str], typer.Option("--judge", help="A model to score the rubric items (not built yet).")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grade a run's tool-task episodes by their checkpoints and store `grade` rows.

    Idempotent: an episode already graded by this grader version gets no new rows.

    Example: [bold]normlab grade 3f2a --checkpoints-only[/]
    """
    if judge is not None:
        fail("--judge is not built yet: grade with the checkpoints only")
    from normlab.grading.checkpoints import Trajectory
    from normlab.grading.grade import GRADER, GRADER_VERSION, grade_checkpoints

    with user_errors():
        db = open_store(store, create=False)
        run = db.get_run(run_id)
        episodes = {e.id: e for e in db.episodes(run.id) if e.status == "finished"}
        done = {g["episode_id"] for g in db.grades(run.id, GRADER, GRADER_VERSION)}
        tasks: dict[str, Any] = {}
        graded: list[tuple[int, str, dict[str, float], bool]] = []  # (index, task, adherence, new)
        new_rows: list[dict[str, Any]] = []
        for episode_id, rows in groupby(db.iter_steps(run.id), key=lambda r: r["episode_id"]):
            if episode_id not in episodes:
                continue
            trajectory = Trajectory.of(rows)
            task = _task_of(trajectory.task(), run, tasks)
            if task is None or task.poles is None:
                continue
            result = grade_checkpoints(task.name, task.poles, trajectory)
            graded.append((episodes[episode_id].index, task.name, result.adherence, episode_id not in done))
            if episode_id not in done:
                new_rows.extend(result.rows(episode_id))
        if not graded:
            raise UserError(f"run {run.id} has no finished episode of a tool task with value poles to grade")
        written = db.write_grades(new_rows)
    mean = {side: sum(a[side] for _, _, a, _ in graded) / len(graded) for side in ("A", "B")}
    if as_json:
        print(json.dumps({
            "run": run.id, "grader": GRADER, "grader_version": GRADER_VERSION, "rows_written": written,
            "episodes": [{"episode": i, "task": t, "adherence": a, "new": n} for i, t, a, n in graded],
            "mean": mean,
        }, indent=2))
        return
    table = Table(title=f"checkpoint adherence (0-10), run {run.id}")
    for column in ("episode", "task", "A", "B", "graded"):
        table.add_column(column, justify="right" if column in ("episode", "A", "B") else "left")
    for index, task_name, adh, new in graded:
        table.add_row(str(index), escape(task_name), f"{adh['A']:.2f}", f"{adh['B']:.2f}", "now" if new else "before")
    table.add_row("mean", "", f"{mean['A']:.2f}", f"{mean['B']:.2f}", "")
    common.out.print(table)
    fresh = sum(1 for *_, n in graded if n)
    common.out.print(f"{fresh} episodes graded now, {len(graded) - fresh} before ({GRADER} {GRADER_VERSION}); {written} grade rows written")

"""`normlab grade RUN`: grade a stored run's tool-task episodes by their tasks' checkpoints (and
with --judge by the rubric judge) and write `grade` rows (see `normlab.grading.grade`). Reads
the store; never reruns an env. Agent-ValueBench cases (`avb:...`) are graded by the judge
only, their rubric read from the release's JSON files (no code of the release runs)."""

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
    scenario; an Agent-ValueBench case `avb:...` is read from its release's JSON files, no
    code of the release runs), or None where it is not a tool task. Each task is read once."""
    from normlab.envs.tasks import load_task, parse_task, task_names
    from normlab.envs.tasks.avb import AvbError, is_avb, load_graded

    if name is None:
        return None
    if name not in cache:
        if is_avb(name):
            try:
                cache[name] = load_graded(name)
            except AvbError as exc:  # a release moved or changed since the run: one line
                raise UserError(f"cannot read the Agent-ValueBench case the run played: {exc}") from None
        elif name in task_names():
            cache[name] = load_task(name)
        elif name == "inline" and _inline_spec(run) is not None:
            cache[name] = parse_task(_inline_spec(run))
        else:
            cache[name] = None
    return cache[name]


def _judge_only(task: Any) -> bool:
    """Whether a task's checkpoints are prose (an Agent-ValueBench case), graded by the judge
    only."""
    from normlab.envs.tasks.avb import AvbGraded

    return isinstance(task, AvbGraded)


@app.command("grade")
def grade(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    checkpoints_only: Annotated[bool, typer.Option("--checkpoints-only", help="Grade by the tasks' checkpoints only (no judge).")] = False,
    judge: Annotated[Optional[str], typer.Option("--judge", help="A model that also scores the rubric items (any model string: API, server with --api-base, local/..., mock/...), temperature 0.")] = None,
    api_base: Annotated[Optional[str], typer.Option("--api-base", help="Server URL of the judge model.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grade a run's tool-task episodes by their checkpoints (and, with --judge, by a model
    scoring the rubric items) and store `grade` rows with their provenance.

    Episodes of Agent-ValueBench cases (task avb:...) have prose checkpoints: the judge
    alone grades them, against the case's rubric read from its release folder.

    Idempotent: an episode already graded by this grader version (and judge model) gets no
    new rows; another version or judge adds rows beside the old ones.

    Example: [bold]normlab grade 3f2a --checkpoints-only[/]  ·  [bold]normlab grade 3f2a --judge openai/gpt-4o-mini[/]
    """
    if judge is not None and checkpoints_only:
        fail("--judge and --checkpoints-only exclude each other")
    if judge is not None and not judge.strip():
        fail("--judge needs a model string, e.g. openai/gpt-4o-mini or local/smollm2-135m")
    from normlab.grading.checkpoints import Trajectory
    from normlab.grading.grade import GRADER, GRADER_VERSION, grade_checkpoints

    with user_errors():
        db = open_store(store, create=False)
        run = db.get_run(run_id)
        episodes = {e.id: e for e in db.episodes(run.id) if e.status == "finished"}
        done = {g["episode_id"] for g in db.grades(run.id, GRADER, GRADER_VERSION)}
        tasks: dict[str, Any] = {}
        # (index, task, checkpoint adherence or None where the judge alone grades, new)
        graded: list[tuple[int, str, dict[str, float] | None, bool]] = []
        new_rows: list[dict[str, Any]] = []
        to_judge: list[tuple[int, Any, list[Any]]] = []
        judged: dict[int, dict[str, float | None]] = {}
        judge_only = 0  # episodes of Agent-ValueBench cases: prose checkpoints
        for episode_id, rows in groupby(db.iter_steps(run.id), key=lambda r: r["episode_id"]):
            if episode_id not in episodes:
                continue
            trajectory = Trajectory.of(rows)
            task = _task_of(trajectory.task(), run, tasks)
            if task is None or task.poles is None:
                continue
            if _judge_only(task):
                judge_only += 1
                if judge is not None:
                    graded.append((episodes[episode_id].index, task.name, None, False))
                    to_judge.append((episode_id, task, trajectory.steps))
                continue
            result = grade_checkpoints(task.name, task.poles, trajectory)
            graded.append((episodes[episode_id].index, task.name, result.adherence, episode_id not in done))
            if episode_id not in done:
                new_rows.extend(result.rows(episode_id))
            if judge is not None:
                to_judge.append((episode_id, task, trajectory.steps))
        if not graded:
            if judge_only:
                raise UserError(
                    f"run {run.id} has nothing checkpoint-gradable: its {judge_only} episodes of Agent-ValueBench cases "
                    f"have prose checkpoints, graded by the judge only (normlab grade {run.id} --judge MODEL)"
                )
            raise UserError(f"run {run.id} has no finished episode of a tool task with value poles to grade")
        written = db.write_grades(new_rows)
        if judge is not None:
            judged, judge_written, judged_now = _judge(db, run.id, judge, api_base, to_judge)
            written += judge_written
            index_of = {episodes[e].index for e in judged_now}
            graded = [(i, t, a, n if a is not None else i in index_of) for i, t, a, n in graded]
    by_checkpoints = [a for _, _, a, _ in graded if a is not None]
    mean = {side: sum(a[side] for a in by_checkpoints) / len(by_checkpoints) for side in ("A", "B")} if by_checkpoints else None
    by_index = {episodes[e].index: j for e, j in judged.items()}
    skipped_line = (
        f"{judge_only} episodes of Agent-ValueBench cases skipped: their checkpoints are prose, graded by the judge "
        f"only (normlab grade {run.id} --judge MODEL)"
        if judge_only and judge is None else None
    )
    if as_json:
        print(json.dumps({
            "run": run.id, "grader": GRADER, "grader_version": GRADER_VERSION, "rows_written": written,
            "episodes": [
                {"episode": i, "task": t, "adherence": a, "new": n, **({"judge": by_index.get(i)} if judge else {})}
                for i, t, a, n in graded
            ],
            "mean": mean,
            **({"judge_model": judge} if judge else {}),
            **({"skipped": {"judge_only": judge_only, "reason": skipped_line}} if skipped_line else {}),
        }, indent=2))
        return
    table = Table(title=f"checkpoint{' and judge' if judge else ''} adherence (0-10), run {run.id}")
    columns = ["episode", "task", "A", "B"] + (["judge A", "judge B"] if judge else []) + ["graded"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "graded") else "right")
    for index, task_name, adh, new in graded:
        cells = [str(index), escape(task_name), *((f"{adh['A']:.2f}", f"{adh['B']:.2f}") if adh is not None else ("judge only", ""))]
        if judge:
            verdict = by_index.get(index) or {}
            cells += [_shown(verdict.get("A")), _shown(verdict.get("B"))]
        table.add_row(*cells, "now" if new else "before")
    table.add_row("mean", "", *((f"{mean['A']:.2f}", f"{mean['B']:.2f}") if mean else ("", "")), *([""] * (len(columns) - 4)))
    common.out.print(table)
    fresh = sum(1 for *_, n in graded if n)
    common.out.print(f"{fresh} episodes graded now, {len(graded) - fresh} before ({GRADER} {GRADER_VERSION}); {written} grade rows written")
    if skipped_line:
        common.out.print(escape(skipped_line))


def _shown(value: float | None) -> str:
    return "unscorable" if value is None else f"{value:.2f}"


def _judge(
    db: Any, run_id: str, model: str, api_base: str | None, episodes: list[tuple[int, Any, list[Any]]]
) -> tuple[dict[int, dict[str, float | None]], int, set[int]]:
    """Judge each episode not yet judged by this model and judge version; its adherence per
    pole from the stored rows either way, how many rows were written and the episodes judged
    now."""
    import asyncio

    from normlab.grading.judge import JUDGE_GRADER, JUDGE_VERSION, grade_rows, judge_episode, judge_response_format
    from normlab.grading.scores import adherence
    from normlab.models import ModelClient, ModelResources
    from normlab.agents.llm_checks import check_model_string
    from normlab.models.keys import key_status

    problem = check_model_string(model)
    if problem is not None:
        raise UserError(f"--judge: {problem}")
    status = key_status(model, api_base)
    if status.missing:  # before any call: one line naming the variable
        raise UserError(f"--judge: model {model} needs {' or '.join(status.missing)} in the environment")
    stored = [g for g in db.grades(run_id, JUDGE_GRADER, JUDGE_VERSION) if g["judge_model"] == model]
    done = {g["episode_id"] for g in stored}
    calls: list[dict[str, Any]] = []
    client = ModelClient(model, resources=ModelResources(cache=db, cache_mode="on"), record=calls.append, api_base=api_base)
    new_rows: list[dict[str, Any]] = []

    async def judge_all() -> None:
        for episode_id, task, steps in episodes:
            if episode_id in done:
                continue
            response_format = judge_response_format(model, task.poles, [s["id"] for s in steps], api_base)
            scores, _ = await judge_episode(client, task.poles, steps, task.task, response_format=response_format)
            new_rows.extend(grade_rows(episode_id, scores, model))

    from normlab.models.types import ModelError

    try:
        asyncio.run(judge_all())
    except ModelError as exc:  # a dead server, a refused key: the episodes judged so far are kept
        db.write_grades(new_rows)
        raise UserError(f"--judge: {exc} ({len(new_rows)} grade rows of the episodes judged before were stored)") from None
    finally:
        if calls:  # every judge call is accounted for, also when one failed for good
            db.write_model_calls(run_id, [{**c, "agent": JUDGE_GRADER} for c in calls])
    written = db.write_grades(new_rows)
    judged_now = {r["episode_id"] for r in new_rows}
    rows = stored + new_rows
    verdicts: dict[int, dict[str, float | None]] = {}
    for episode_id, task, _ in episodes:
        weights = {("A", i.id): i.weight for i in task.poles.A.rubric} | {("B", i.id): i.weight for i in task.poles.B.rubric}
        mine = [r for r in rows if r["episode_id"] == episode_id]
        verdicts[episode_id] = {
            side: adherence(
                (weights[(side, r["item"])], None if r["score"] < 0 else r["score"])
                for r in mine
                if (side, r["item"]) in weights and (r["evidence"] or {}).get("pole") == side
            )
            for side in ("A", "B")
        }
    return verdicts, written, judged_now

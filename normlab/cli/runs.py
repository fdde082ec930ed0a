"""`normlab runs ...`: list, show, export and delete stored runs."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import JsonOption, StoreOption, fail, open_store, resume_hint, runs_app, user_errors
from normlab.cli.transcript import episode_dict, episode_env_id, print_episode_summary, print_transcript
from normlab.limits import MAX_EPISODES


def _iso(value: datetime | None) -> str | None:
    from normlab.store import as_utc

    return as_utc(value).isoformat() if value is not None else None  # type: ignore[union-attr]


def _shown_time(value: datetime) -> str:
    """Local time with its zone, so a reader never has to guess (stored times are UTC)."""
    from normlab.store import as_utc

    local = as_utc(value).astimezone()  # type: ignore[union-attr]
    offset = local.strftime("%z")
    zone = "UTC" if offset in ("", "+0000") else f"{offset[:3]}:{offset[3:]}"
    return f"{local:%Y-%m-%d %H:%M} {zone}"


def _status_text(state: Any, short: bool = False) -> str:
    if not state.stale:
        return state.status
    if short:
        return f"{state.status} (stale)"
    if state.owner:
        return f"{state.status} (stale: its process {state.pid} on {state.host} is gone)"
    return f"{state.status} (stale: no process is playing it)"


def _run_dict(run: Any, stored_episodes: int, state: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": state.status,
        "stale": state.stale,  # stored as running, but its process is gone
        "stored_status": run.status,
        "owner": state.owner,
        "heartbeat_at": _iso(run.heartbeat_at),
        "episodes": stored_episodes,
        "episodes_planned": run.episodes_planned,
        "seed": run.seed,
        "scenario_path": run.scenario_path,
        "scenario_hash": run.scenario_hash,
        "normlab_version": run.normlab_version,
        "git_commit": run.git_commit,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
    }


@runs_app.command("ls")
def runs_ls(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_EPISODES, help="Show at most this many runs, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first.

    Example: [bold]normlab runs ls --json[/]
    """
    with user_errors():
        db = open_store(store, create=False, read_only=True)
        rows = [(run, n, db.liveness(run)) for run, n in db.list_runs(limit)]
    if as_json:
        print(json.dumps([_run_dict(run, n, state) for run, n, state in rows], indent=2))
        return
    table = Table(title="runs")
    for column in ("id", "name", "status", "episodes", "created"):
        table.add_column(column, no_wrap=column != "name")
    for run, n, state in rows:
        table.add_row(run.id, escape(run.name), _status_text(state, short=True), f"{n}/{run.episodes_planned}", _shown_time(run.created_at))
    common.out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    episode: Annotated[Optional[int], typer.Option("--episode", "-e", min=0, max=MAX_EPISODES, help="Print this episode's transcript.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run (its episodes and summary), or one episode as a readable transcript.

    Example: [bold]normlab runs show 3f2a --episode 0[/]
    """
    from normlab.summary import summarize

    with user_errors():
        db = open_store(store, create=False, read_only=True)
        stored = db.get_run(run_id)
        state = db.liveness(stored)
        if episode is not None:
            ep = db.episode(stored.id, episode)
            steps = db.steps(ep.id)
            calls = db.model_calls(ep.id)
            env_id = episode_env_id(stored, ep)
            if as_json:
                print(json.dumps(episode_dict(stored.id, ep, steps, calls, env_id), indent=2, default=str))
            else:
                print_transcript(stored, ep, steps, calls)
                print_episode_summary(env_id, ep, steps)
            return
        episodes = db.episodes(stored.id)
    summary = summarize(episodes)
    if as_json:
        data = _run_dict(stored, len(episodes), state)
        data["summary"] = summary.as_dict()
        data["episodes_detail"] = [
            {
                "index": e.index, "seed": e.seed, "status": e.status, "error": e.error,
                "returns": e.returns, "steps": e.num_steps, "metrics": e.metrics,
                "variant": e.variant, "trial": e.trial,
            }
            for e in episodes
        ]
        print(json.dumps(data, indent=2))
        return
    common.out.print(f"[bold]run {stored.id}[/] · {escape(stored.name)} · {escape(_status_text(state))} · created {_shown_time(stored.created_at)}")
    common.out.print(f"scenario {escape(stored.scenario_path)} (sha256 {stored.scenario_hash[:12]}) · seed {stored.seed} · normlab {stored.normlab_version}")
    if stored.error:
        common.out.print(f"[red]error:[/] {escape(stored.error)}")
    if state.stale:
        common.out.print(f"its process is gone; play the missing episodes with `{escape(resume_hint(db, stored.id))}`")
    table = Table(title=f"episodes ({len(episodes)}/{stored.episodes_planned})")
    designed = any(e.trial is not None for e in episodes)  # a matrix or trials: say where each sits
    table.add_column("episode", justify="right")
    if designed:
        table.add_column("variant")
        table.add_column("trial", justify="right")
    table.add_column("seed", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("returns")
    table.add_column("events")
    for e in episodes[:200]:
        returns = ", ".join(f"{escape(a)}={v:g}" for a, v in e.returns.items())
        events = ", ".join(f"{escape(k)}={v}" for k, v in sorted((e.metrics or {}).get("events", {}).items()))
        if e.status == "failed":  # no returns: say why instead
            returns, events = "[red]failed[/]", escape(e.error or "")
        place = [escape(_variant_text(e.variant)), str(e.trial if e.trial is not None else "")] if designed else []
        table.add_row(str(e.index), *place, str(e.seed), str(e.num_steps), returns, events)
    common.out.print(table)
    if len(episodes) > 200:
        common.out.print(f"... {len(episodes) - 200} more episodes (use --json for all)")
    means = ", ".join(f"{escape(a)}={v:.3f}" for a, v in summary.mean_returns().items())
    common.out.print(f"mean returns: {means or '-'}")
    metric_means = _metric_means(episodes)
    if metric_means:
        common.out.print("mean metrics: " + ", ".join(f"{escape(k)}={v:.4g}" for k, v in metric_means.items()))


def _metric_means(episodes: list[Any], limit: int = 40) -> dict[str, float]:
    """Means over finished episodes of the env's own metrics (event counts are in the table)."""
    from normlab.grading.report import flatten

    sums: dict[str, list[float]] = {}
    for e in episodes:
        if e.status != "finished" or not isinstance(e.metrics, dict):
            continue
        own = {k: v for k, v in e.metrics.items() if k not in ("events", "events_by_agent")}
        for name, value in flatten(own).items():
            sums.setdefault(name, []).append(value)
    return {name: sum(v) / len(v) for name, v in list(sums.items())[:limit]}


def _variant_text(variant: dict[str, Any] | None) -> str:
    """A variant's values, each under the last part of its path (`task=..., pole=A`)."""
    if not variant:
        return "-"
    return ", ".join(f"{path.rsplit('.', 1)[-1]}={json.dumps(value) if not isinstance(value, str) else value}" for path, value in variant.items())


@runs_app.command("export")
def runs_export(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    store: StoreOption = None,
) -> None:
    """Export every step of a run, one line per agent per step.

    Example: [bold]normlab runs export 3f2a --format csv -o steps.csv[/]
    """
    from normlab.store.export import EXPORT_FORMATS, export_steps, export_to_path

    if format not in EXPORT_FORMATS:
        fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    with user_errors():
        db = open_store(store, create=False, read_only=True)
        stored = db.get_run(run_id)
        if output is None:
            export_steps(db, stored.id, format, sys.stdout)
        else:
            count = export_to_path(db, stored.id, format, output)
            common.err.print(f"{count} rows written to {escape(str(output))}")


@runs_app.command("rm")
def runs_rm(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes) to delete.")],
    store: StoreOption = None,
) -> None:
    """Delete runs and everything stored under them.

    Example: [bold]normlab runs rm 3f2a9c1b7d4e[/]
    """
    with user_errors():
        db = open_store(store, create=False)
        # every id first, so a mistyped one deletes nothing; then all in one transaction
        runs = list({run.id: run for run in (db.get_run(ref) for ref in run_ids)}.values())
        for run in runs:
            db.ensure_not_live(run)
        db.delete_runs([run.id for run in runs])
    for run in runs:
        common.out.print(f"deleted run {run.id}")

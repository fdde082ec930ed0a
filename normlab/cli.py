"""The `normlab` command. Thin: it parses, calls library functions and prints with rich.

User errors (a bad scenario, an unknown run, an unreachable store) end with one line on
stderr and exit code 2; a run that fails midway exits 1; Ctrl-C exits 130. Commands that call
no model never import the model layer, so they start fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from normlab import __version__

app = typer.Typer(
    name="normlab",
    help="Test the values and norms of LLM agents: run scenario files, store every step, inspect runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
runs_app = typer.Typer(
    help="Inspect, export and delete stored runs.\n\nExample: [bold]normlab runs ls[/]", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOption = Annotated[
    Optional[str],
    typer.Option("--store", help="SQLAlchemy URL of the store \\[default: $NORMLAB_STORE or sqlite:///runs/normlab.db]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    from normlab.scenario import ScenarioError
    from normlab.store import StoreError

    try:
        yield
    except SQLAlchemyError as exc:
        _fail(f"store error: {str(exc).splitlines()[0]}")
    except ScenarioError as exc:
        for problem in exc.problems:
            err.print(escape(str(problem)))
        raise typer.Exit(2) from None
    except (StoreError, UserError) as exc:
        _fail(str(exc))


def _open_store(url: str | None, scenario_store: str | None = None) -> Any:
    from normlab.store import Store, resolve_url

    return Store(resolve_url(url, scenario_store))


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"normlab {__version__}")
        raise typer.Exit(0)


# --- run and resume ----------------------------------------------------------------------


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    store: StoreOption = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Episodes played side by side (results do not change).")] = None,
    episodes: Annotated[Optional[int], typer.Option(min=1, help="Override the scenario's number of episodes.")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Override the scenario's seed.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Swap the model of every LLM agent, e.g. openai/gpt-4o-mini.")] = None,
    cache: Annotated[Optional[str], typer.Option(help="Model response cache: on, off, or replay (fail on any call not cached).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary; print only the run id.")] = False,
) -> None:
    """Run a scenario file and store every step. The last line printed is the run id.

    Example: [bold]normlab run scenarios/ipd_classic.yaml --concurrency 8[/]
    """
    from normlab import runner
    from normlab.scenario import load_scenario

    if cache is not None and cache not in ("on", "off", "replay"):
        _fail(f"--cache must be on, off or replay, not {cache!r}")
    with _user_errors():
        scenario = load_scenario(file)
        overrides: dict[str, Any] = {k: v for k, v in {"episodes": episodes, "seed": seed, "cache": cache}.items() if v is not None}
        if model is not None:
            overrides["agents"] = {
                agent_id: {**cfg.model_dump(mode="json"), "model": model} if cfg.kind == "llm" else cfg.model_dump(mode="json")
                for agent_id, cfg in scenario.agents.items()
            }
        if overrides:
            scenario = _with_overrides(scenario, overrides)
        _check_keys(scenario)
        db = _open_store(store, scenario.store)
        run_id = runner.create_run(db, scenario)
    if not quiet:
        err.print(f"run [bold]{run_id}[/] · {escape(scenario.name)} · {scenario.episodes} episodes → {escape(db.url)}")
    _play(db, run_id, scenario, range(scenario.episodes), concurrency, quiet)


def _check_keys(scenario: Any) -> None:
    """Refuse, before anything is written, a run whose API models lack their keys."""
    if any(cfg.kind == "llm" and not cfg.model.startswith(("local/", "mock/")) for cfg in scenario.agents.values()):
        from normlab.models.keys import missing_key_problems

        problems = missing_key_problems(scenario)
        if problems:
            raise UserError("; ".join(problems))


def _with_overrides(scenario: Any, overrides: dict[str, Any]) -> Any:
    from normlab.scenario import scenario_from_config

    from normlab.scenario import ScenarioError, check_semantics

    config = {**scenario.model_dump(mode="json"), **overrides}
    try:
        changed = scenario_from_config(config, scenario.source_text, scenario.source_path)
    except ValueError as exc:
        raise UserError(f"invalid override: {str(exc).splitlines()[0]}") from None
    problems = check_semantics(changed)
    if problems:
        from normlab.scenario import Problem

        raise ScenarioError([Problem(scenario.source_path, 1, 1, ".".join(map(str, loc)), msg) for loc, msg in problems])
    return changed


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Id (or unique prefix) of an unfinished run.")],
    store: StoreOption = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Episodes played side by side.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
) -> None:
    """Play only the episodes a run is missing, each with its own seed.

    A resumed run equals one that was never interrupted.
    Example: [bold]normlab resume 3f2a9c1b7d4e[/]
    """
    from normlab import runner
    from normlab.scenario import scenario_from_config

    with _user_errors():
        db = _open_store(store)
        stored = db.get_run(run_id)
        scenario = scenario_from_config(stored.config, stored.scenario_text, stored.scenario_path)
        _check_keys(scenario)
        todo = runner.missing_indices(db, stored.id, scenario.episodes)
    if not quiet:
        err.print(f"resuming run [bold]{stored.id}[/]: {len(todo)} of {scenario.episodes} episodes to play")
    _play(db, stored.id, scenario, todo, concurrency, quiet)


def _play(db: Any, run_id: str, scenario: Any, indices: Any, concurrency: int | None, quiet: bool) -> None:
    from normlab import runner

    indices = list(indices)
    with _progress(len(indices), quiet) as on_episode:
        try:
            runner.run_sync(scenario, db, run_id, indices, concurrency, on_episode)
        except KeyboardInterrupt:
            err.print(f"\n[yellow]interrupted[/]: finished episodes are stored; continue with `normlab resume {run_id}`")
            raise typer.Exit(130) from None
        except runner.BudgetStop as exc:
            err.print(f"[yellow]budget spent[/]: {escape(str(exc))}; finished episodes are stored (status budget_exhausted)")
            if not quiet:
                _print_summary(db, run_id)
            print(run_id)
            raise typer.Exit(3) from None
        except runner.RunFailed as exc:
            err.print(f"[red]error:[/] run {run_id} failed: {escape(str(exc))}")
            err.print(f"finished episodes are stored; after fixing the cause, `normlab resume {run_id}`")
            raise typer.Exit(1) from None
    if not quiet:
        _print_summary(db, run_id)
    print(run_id)


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    started = time.perf_counter()
    steps = 0
    with Progress(
        TextColumn("episodes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("episodes", total=total, rate="")

        def on_episode(result: Any) -> None:
            nonlocal steps
            steps += len({row["t"] for row in result.steps}) if result.steps else 0
            rate = steps / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=1, rate=f"{rate:,.0f} steps/s" if rate >= 10 else f"{rate:.2f} steps/s")

        yield on_episode


def _print_summary(db: Any, run_id: str) -> None:
    from normlab.summary import summarize

    stored = db.get_run(run_id)
    summary = summarize(db.episodes(run_id))
    table = Table(title=f"run {run_id} · {escape(stored.name)} · {stored.status}")
    table.add_column("agent")
    table.add_column("mean return", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    for agent, values in summary.returns.items():
        table.add_row(escape(agent), f"{sum(values) / len(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}")
    out.print(table)
    if summary.events:
        events = Table(title="events")
        events.add_column("type")
        events.add_column("count", justify="right")
        events.add_column("per episode", justify="right")
        for kind, count in sorted(summary.events.items()):
            events.add_row(escape(kind), str(count), f"{count / max(summary.episodes, 1):.2f}")
        out.print(events)
    out.print(f"{summary.episodes} episodes, {summary.steps} steps stored in {escape(db.url)}")


# --- checking and listing ----------------------------------------------------------------


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario files to check.")]) -> None:
    """Check scenario files without running them; errors are printed as file:line:col.

    Example: [bold]normlab validate scenarios/*.yaml[/]
    """
    from normlab.scenario import ScenarioError, load_scenario

    failed = 0
    for file in files:
        try:
            load_scenario(file)
        except ScenarioError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(escape(str(problem)))
        else:
            out.print(f"[green]ok[/] {escape(str(file))}")
    if failed:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editor autocompletion).

    Example: [bold]normlab schema > scenario.schema.json[/]
    """
    from normlab.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command("envs")
def list_envs() -> None:
    """List registered environment ids.

    Example: [bold]normlab envs[/]
    """
    from normlab import envs

    table = Table(title="environments")
    table.add_column("id", no_wrap=True)
    table.add_column("api")
    table.add_column("description")
    for spec in envs.specs():
        table.add_row(spec.id, spec.api, spec.description)
    out.print(table)


@app.command("agents")
def list_agents() -> None:
    """List agent kinds and scripted strategies usable in scenarios.

    Example: [bold]normlab agents[/]
    """
    from normlab.agents import AGENT_KINDS, STRATEGIES

    kinds = Table(title="agent kinds")
    kinds.add_column("kind")
    kinds.add_column("description")
    for kind, text in AGENT_KINDS.items():
        kinds.add_row(kind, text)
    out.print(kinds)
    strategies = Table(title="scripted strategies")
    strategies.add_column("strategy")
    strategies.add_column("params")
    strategies.add_column("description")
    for name, cls in STRATEGIES.items():
        params = ", ".join(f"{k}={v}" for k, v in cls.defaults.items())
        strategies.add_row(name, params, cls.description)
    out.print(strategies)


@app.command("models")
def list_models(
    file: Annotated[Optional[list[Path]], typer.Argument(help="Scenario files whose models to list.")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Load the local model and generate a few tokens.")] = True,
) -> None:
    """List the model strings in use and whether the embedded local model loads and generates.

    Example: [bold]normlab models scenarios/*.yaml[/]
    """
    from normlab.models import DEFAULT_MODEL
    from normlab.scenario import load_scenario

    used: dict[str, list[str]] = {}
    with _user_errors():
        for path in file or []:
            scenario = load_scenario(path)
            for agent_id, cfg in scenario.agents.items():
                if cfg.kind == "llm":
                    used.setdefault(cfg.model, []).append(f"{agent_id} ({path.name})")
    table = Table(title="models")
    table.add_column("model", no_wrap=True)
    table.add_column("kind")
    table.add_column("used by")
    for model in sorted(used) or [DEFAULT_MODEL]:
        kind = "local (in process)" if model.startswith("local/") else "mock (tests)" if model.startswith("mock/") else "LiteLLM API"
        table.add_row(escape(model), kind, escape(", ".join(used.get(model, ["(default)"]))))
    out.print(table)
    if not check:
        return
    from normlab.models.providers import litellm

    litellm()
    from normlab.models.local import check_local_model

    for model in sorted({m for m in used if m.startswith("local/")} or {DEFAULT_MODEL}):
        result = check_local_model(model.split("/", 1)[1])
        if result.get("ok"):
            gpu = "GPU" if result.get("gpu_offload") else "CPU"
            out.print(f"[green]ok[/] {escape(model)}: loads and generates on {gpu}, {result.get('tokens_per_s', 0):.0f} tokens/s ({escape(str(result.get('path')))})")
        else:
            err.print(f"[red]error:[/] {escape(model)}: {escape(str(result.get('error')))}")
            raise typer.Exit(1)


# --- stored runs -------------------------------------------------------------------------


def _run_dict(run: Any, stored_episodes: int) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "episodes": stored_episodes,
        "episodes_planned": run.episodes_planned,
        "seed": run.seed,
        "scenario_path": run.scenario_path,
        "scenario_hash": run.scenario_hash,
        "normlab_version": run.normlab_version,
        "git_commit": run.git_commit,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
    }


@runs_app.command("ls")
def runs_ls(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first.

    Example: [bold]normlab runs ls --json[/]
    """
    with _user_errors():
        rows = _open_store(store).list_runs(limit)
    if as_json:
        print(json.dumps([_run_dict(run, n) for run, n in rows], indent=2))
        return
    table = Table(title="runs")
    for column in ("id", "name", "status", "episodes", "created"):
        table.add_column(column)
    for run, n in rows:
        table.add_row(run.id, escape(run.name), run.status, f"{n}/{run.episodes_planned}", run.created_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    episode: Annotated[Optional[int], typer.Option("--episode", "-e", help="Print this episode's transcript.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run (its episodes and summary), or one episode as a readable transcript.

    Example: [bold]normlab runs show 3f2a --episode 0[/]
    """
    from normlab.summary import summarize

    with _user_errors():
        db = _open_store(store)
        stored = db.get_run(run_id)
        if episode is not None:
            ep = db.episode(stored.id, episode)
            steps = db.steps(ep.id)
            calls = db.model_calls(ep.id)
            if as_json:
                print(json.dumps(_episode_dict(stored.id, ep, steps, calls), indent=2, default=str))
            else:
                _print_transcript(stored, ep, steps, calls)
            return
        episodes = db.episodes(stored.id)
    summary = summarize(episodes)
    if as_json:
        data = _run_dict(stored, len(episodes))
        data["summary"] = summary.as_dict()
        data["episodes_detail"] = [
            {"index": e.index, "seed": e.seed, "returns": e.returns, "steps": e.num_steps, "metrics": e.metrics}
            for e in episodes
        ]
        print(json.dumps(data, indent=2))
        return
    out.print(f"[bold]run {stored.id}[/] · {escape(stored.name)} · {stored.status}")
    out.print(f"scenario {escape(stored.scenario_path)} (sha256 {stored.scenario_hash[:12]}) · seed {stored.seed} · normlab {stored.normlab_version}")
    if stored.error:
        out.print(f"[red]error:[/] {escape(stored.error)}")
    table = Table(title=f"episodes ({len(episodes)}/{stored.episodes_planned})")
    table.add_column("episode", justify="right")
    table.add_column("seed", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("returns")
    table.add_column("events")
    for e in episodes[:200]:
        returns = ", ".join(f"{escape(a)}={v:g}" for a, v in e.returns.items())
        events = ", ".join(f"{escape(k)}={v}" for k, v in sorted((e.metrics or {}).get("events", {}).items()))
        table.add_row(str(e.index), str(e.seed), str(e.num_steps), returns, events)
    out.print(table)
    if len(episodes) > 200:
        out.print(f"... {len(episodes) - 200} more episodes (use --json for all)")
    means = ", ".join(f"{escape(a)}={v:.3f}" for a, v in summary.mean_returns().items())
    out.print(f"mean returns: {means or '-'}")


def _episode_dict(run_id: str, ep: Any, steps: list[dict], calls: list[dict]) -> dict[str, Any]:
    return {
        "run": run_id,
        "episode": ep.index,
        "seed": ep.seed,
        "returns": ep.returns,
        "metrics": ep.metrics,
        "steps": [{k: v for k, v in s.items() if k != "episode_id"} for s in steps],
        "model_calls": calls,
    }


def _print_transcript(stored: Any, ep: Any, steps: list[dict], calls: list[dict]) -> None:
    by_step: dict[int | None, list[dict]] = {}
    for call in calls:
        by_step.setdefault(call.get("step_id"), []).append(call)
    shown: dict[str, list] = {}  # per agent: the conversation printed so far
    out.print(f"[bold]run {stored.id} · episode {ep.index}[/] · seed {ep.seed} · {ep.num_steps} steps")
    for s in steps:
        out.rule(f"t={s['t']} · {escape(s['agent'])}")
        obs = s["observation"]
        text = obs.get("text") if isinstance(obs, dict) else None
        step_calls = by_step.get(s["id"], [])
        shown_text = text if text is not None else json.dumps(obs)
        prompts = {m.get("content") for c in step_calls for m in (c.get("request") or []) if isinstance(m, dict)}
        if shown_text not in prompts:  # else the user turn of the model call below shows it
            out.print(escape(shown_text))
        for call in step_calls:
            _print_model_call(call, shown.setdefault(s["agent"], []))
        info = s["info"] if isinstance(s["info"], dict) else {}
        flags = " terminated" if s["terminated"] else ""
        flags += " truncated" if s["truncated"] else ""
        out.print(f"[bold]action[/] {escape(json.dumps(s['action']))} · reward {s['reward']:g}{flags}")
        for ev in info.get("events", []):
            out.print(f"  [cyan]event[/] {escape(json.dumps(ev))}")
        if info.get("harness"):
            out.print(f"  [dim]harness[/] {escape(json.dumps(info['harness']))}")
    returns = ", ".join(f"{escape(a)}={v:g}" for a, v in ep.returns.items())
    out.rule(f"returns: {returns}")


def _print_model_call(call: dict, shown: list) -> None:
    """Print the messages of a call that the agent's conversation has not shown yet."""
    request = [m for m in (call.get("request") or []) if isinstance(m, dict)]
    system = [m for m in request if m.get("role") == "system"]
    rest = [m for m in request if m.get("role") != "system"]
    if system and (not shown or shown[0] != system):
        for message in system:
            out.print(f"[dim]system:[/] {escape(str(message.get('content', '')))}")
    previous = shown[1] if len(shown) > 1 else []
    common = 0
    while common < min(len(previous), len(rest)) and previous[common] == rest[common]:
        common += 1
    for message in rest[common:]:
        content = message.get("content")
        out.print(f"[dim]{escape(str(message.get('role', '?')))}:[/] {escape(str(content if content is not None else ''))}")
    shown[:] = [system, rest]
    if call.get("tool_calls"):
        out.print(f"[magenta]tool calls:[/] {escape(json.dumps(call['tool_calls']))}")
    if call.get("response") is not None:
        cached = " (cached)" if call.get("cache_hit") else ""
        out.print(f"[green]{escape(str(call.get('model')))}{cached}:[/] {escape(str(call['response']))}")
    if call.get("error"):
        out.print(f"[red]model error:[/] {escape(str(call['error']))}")


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
    from normlab.store.export import EXPORT_FORMATS, export_steps

    if format not in EXPORT_FORMATS:
        _fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    with _user_errors():
        db = _open_store(store)
        stored = db.get_run(run_id)
        if output is None:
            export_steps(db, stored.id, format, sys.stdout)
        else:
            partial = output.with_name(output.name + ".partial")
            with partial.open("w", encoding="utf-8", newline="") as handle:
                count = export_steps(db, stored.id, format, handle)
            partial.replace(output)  # never leave a half-written export under the real name
            err.print(f"{count} rows written to {escape(str(output))}")


@runs_app.command("rm")
def runs_rm(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes) to delete.")],
    store: StoreOption = None,
) -> None:
    """Delete runs and everything stored under them.

    Example: [bold]normlab runs rm 3f2a9c1b7d4e[/]
    """
    with _user_errors():
        db = _open_store(store)
        for ref in run_ids:
            stored = db.get_run(ref)
            db.delete_run(stored.id)
            out.print(f"deleted run {stored.id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

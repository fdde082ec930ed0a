"""`normlab run` and `normlab resume`: play episodes with a progress bar and a summary."""

from __future__ import annotations

import time
from enum import Enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import StoreOption, UserError, app, fail, open_store, resume_hint, user_errors
from normlab.limits import MAX_CONCURRENCY, MAX_EPISODES, MAX_SEED, MAX_WORKERS


class Executor(str, Enum):
    local = "local"
    processes = "processes"


class CacheMode(str, Enum):
    on = "on"
    off = "off"
    replay = "replay"


ConcurrencyOption = Annotated[
    Optional[int],
    typer.Option(min=1, max=MAX_CONCURRENCY, help="Episodes played side by side (results do not change)."),
]
CacheOption = Annotated[
    Optional[CacheMode], typer.Option(help="Model response cache; replay fails on any call not cached.")
]
ExecutorOption = Annotated[
    Optional[Executor], typer.Option(help="local: asyncio tasks in this process; processes: worker processes on this machine.")
]
WorkersOption = Annotated[
    Optional[int], typer.Option(min=1, max=MAX_WORKERS, help="Worker processes of --executor processes [default: the usable cores].")
]
BudgetTokensOption = Annotated[
    Optional[int], typer.Option("--budget-tokens", min=1, help="Stop cleanly once the run's models have used this many tokens.")
]
BudgetUsdOption = Annotated[
    Optional[float], typer.Option("--budget-usd", min=0.000001, help="Stop cleanly once the run's models have cost this many dollars.")
]


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    store: StoreOption = None,
    concurrency: ConcurrencyOption = None,
    episodes: Annotated[Optional[int], typer.Option(min=1, max=MAX_EPISODES, help="Override the scenario's number of episodes.")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, max=MAX_SEED, help="Override the scenario's seed.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Swap the model of every LLM agent, e.g. openai/gpt-4o-mini (their api_base is dropped unless --api-base is given).")] = None,
    api_base: Annotated[Optional[str], typer.Option("--api-base", help="Server URL for every LLM agent, e.g. http://localhost:8000/v1 (with --model).")] = None,
    cache: CacheOption = None,
    budget_tokens: BudgetTokensOption = None,
    budget_usd: BudgetUsdOption = None,
    executor: ExecutorOption = None,
    workers: WorkersOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary; print only the run id.")] = False,
) -> None:
    """Run a scenario file and store every step. The last line printed is the run id.

    Example: [bold]normlab run scenarios/ipd_classic.yaml --concurrency 8[/]
    """
    from normlab import run as runs
    from normlab.overrides import Overrides
    from normlab.scenario import load_scenario

    with user_errors():
        scenario = load_scenario(file)
        scenario = _override(
            scenario, Overrides(episodes, seed, cache.value if cache else None, model, api_base, budget_tokens, budget_usd)
        )
        _check_keys(scenario)
        if (executor.value if executor else scenario.executor) == "processes":
            from normlab.executors.processes import prestart

            prestart(scenario)  # the workers' fork server imports while the run is set up
        db = open_store(store, scenario.store)
        run_id = runs.create_run(db, scenario)
    if not quiet:
        common.err.print(f"run [bold]{run_id}[/] · {escape(scenario.name)} · {scenario.total_episodes} episodes → {escape(db.url)}")
    _play(db, run_id, scenario, range(scenario.total_episodes), concurrency, quiet, executor, workers)




def _override(scenario: Any, overrides: Any) -> Any:
    from normlab.overrides import OverrideError, apply_overrides

    try:
        scenario, notes = apply_overrides(scenario, overrides)
    except OverrideError as exc:
        raise UserError(str(exc)) from None
    for note in notes:
        common.err.print(f"[yellow]note:[/] {escape(note)}")
    return scenario


def _check_keys(scenario: Any) -> None:
    """Refuse, before anything is written, a run whose API models lack their keys."""
    if any(cfg.kind == "llm" and not cfg.model.startswith(("local/", "mock/")) for cfg in scenario.agents.values()):
        from normlab.models.keys import MissingKeyError, require_keys

        try:
            require_keys(scenario)
        except MissingKeyError as exc:
            raise UserError(str(exc)) from None


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Id (or unique prefix) of an unfinished run.")],
    store: StoreOption = None,
    concurrency: ConcurrencyOption = None,
    cache: CacheOption = None,
    budget_tokens: BudgetTokensOption = None,
    budget_usd: BudgetUsdOption = None,
    executor: ExecutorOption = None,
    workers: WorkersOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
) -> None:
    """Play only the episodes a run is missing, each with its own seed.

    A resumed run equals one that was never interrupted. It plays from what the run stored (the scenario, skill texts, tool import paths), from any folder.

    --cache and the budget options apply to this session: to go on after a replay miss or a spent budget.

    Example: [bold]normlab resume 3f2a9c1b7d4e --budget-tokens 500000[/]
    """
    from normlab import run as runs
    from normlab.overrides import Overrides

    with user_errors():
        db = open_store(store, create=False)
        stored = db.get_run(run_id)
        db.ensure_not_live(stored)
        scenario = runs.stored_scenario(stored)
        scenario = _override(scenario, Overrides(cache=cache.value if cache else None, budget_tokens=budget_tokens, budget_usd=budget_usd))
        _check_keys(scenario)
        todo = runs.missing_indices(db, stored.id, scenario.total_episodes)
        changed = runs.stored_assets(stored, scenario).changed_tools()
    if changed:
        common.err.print(f"[yellow]note:[/] tool modules changed since the run started: {escape(', '.join(changed))}")
    if not quiet:
        common.err.print(f"resuming run [bold]{stored.id}[/]: {len(todo)} of {scenario.total_episodes} episodes to play")
    _play(db, stored.id, scenario, todo, concurrency, quiet, executor, workers)


def _play(
    db: Any,
    run_id: str,
    scenario: Any,
    indices: Any,
    concurrency: int | None,
    quiet: bool,
    executor: Any = None,
    workers: int | None = None,
) -> None:
    from normlab import run as runs

    from normlab.store import StoreError

    indices = list(indices)
    with _progress(len(indices), quiet) as on_episode:
        try:
            runs.run_sync(
                scenario, db, run_id, indices, concurrency, on_episode, executor=executor.value if executor else None, workers=workers
            )
        except StoreError as exc:  # e.g. another process leased the run meanwhile
            fail(str(exc))
        except KeyboardInterrupt:
            common.err.print(f"\n[yellow]interrupted[/]: finished episodes are stored; continue with `{escape(resume_hint(db, run_id))}`")
            print(run_id)
            raise typer.Exit(130) from None
        except runs.BudgetStop as exc:
            common.err.print(
                f"[yellow]budget spent[/]: {escape(str(exc))}; finished episodes are stored (status budget_exhausted); "
                f"raise the budget with `{escape(resume_hint(db, run_id))} --budget-tokens N` (or --budget-usd)"
            )
            if not quiet:
                _print_summary(db, run_id)
            print(run_id)
            raise typer.Exit(3) from None
        except runs.RunFailed as exc:
            common.err.print(f"[red]error:[/] run {run_id} failed: {escape(str(exc))}")
            common.err.print(f"finished episodes are stored; after fixing the cause, `{escape(resume_hint(db, run_id))}`")
            print(run_id)
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
        console=common.err,
    ) as progress:
        task = progress.add_task("episodes", total=total, rate="")
        from normlab.interactive import set_live_display

        set_live_display(progress)  # a human player pauses it while typing

        def on_episode(result: Any) -> None:
            nonlocal steps
            steps += result.num_steps
            rate = steps / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=1, rate=f"{rate:,.0f} turns/s" if rate >= 10 else f"{rate:.2f} turns/s")

        try:
            yield on_episode
        finally:
            set_live_display(None)


def _print_summary(db: Any, run_id: str) -> None:
    from normlab.summary import count_step_rows, summarize

    stored = db.get_run(run_id)
    summary = summarize(db.episodes(run_id), count_step_rows(db, run_id))
    table = Table(title=f"run {run_id} · {escape(stored.name)} · {stored.status}")
    table.add_column("agent")
    table.add_column("mean return", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    for agent, values in summary.returns.items():
        table.add_row(escape(agent), f"{sum(values) / len(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}")
    common.out.print(table)
    if summary.events:
        events = Table(title="events")
        events.add_column("type")
        events.add_column("count", justify="right")
        events.add_column("per episode", justify="right")
        for kind, count in sorted(summary.events.items()):
            events.add_row(escape(kind), str(count), f"{count / max(summary.episodes, 1):.2f}")
        common.out.print(events)
    failed = f" ({summary.failed} failed: see `normlab runs show {run_id}`)" if summary.failed else ""
    common.out.print(
        f"{summary.episodes} episodes{failed}, {summary.steps} turns ({summary.rows} step rows, one per agent per turn) "
        f"stored in {escape(db.url)}"
    )

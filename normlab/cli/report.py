"""`normlab report RUN [RUN ...]` and `normlab compare RUN_A RUN_B`: metrics, adherence per
pole, priorities and Bradley-Terry strengths with 95 % bootstrap intervals, from what the store
holds (see `normlab.grading.report`). Read-only: they create no store and change none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import JsonOption, StoreOption, UserError, app, open_store, user_errors


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _ci(ci: list[float]) -> str:
    return f"[{_number(ci[0])}, {_number(ci[1])}]"


def _variant_text(variant: dict[str, Any], several: bool) -> str:
    if not variant:
        return "all episodes" if several else "one variant"
    return ", ".join(f"{k}={v}" for k, v in variant.items())


@app.command("report")
def report(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids or unique prefixes.")],
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Write PNG plots (adherence per pole per variant, value priorities) into this folder.")] = None,
    effects: Annotated[bool, typer.Option("--effects", help="Also fit, per metric, the main effects and two-way interactions of the run's matrix factors (OLS, HC3 errors, 95% CI, p).")] = False,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report runs: per variant and overall, episodes, each metric, adherence per pole (and
    per value), priorities and Bradley-Terry strengths, each with a 95 % bootstrap interval.

    Grade a run first (`normlab grade RUN`) to get adherence; a run without grade rows reports
    its env metrics and returns.

    `--effects`: per metric, the effect of each level of each matrix factor against its first
    level and the two-way interactions of crossed factors, with 95 % intervals and p-values
    (treatment coding, see `normlab.grading.effects`).

    Example: [bold]normlab report 3f2a --plots plots/[/]  ·  [bold]normlab report 3f2a 9c1e --json[/]
    """
    from normlab.grading.report import read_run, report_of

    with user_errors():
        db = open_store(store, create=False, read_only=True)
        reads = [read_run(db, ref) for ref in run_ids]  # each run read once, for every view
        data = report_of(reads)
        found: list[Any] = []
        if effects:
            from normlab.grading.effects import effects_of

            found = [effects_of(read) for read in reads]
        written: list[str] = []
        if plots is not None:
            from normlab.grading.report import write_plots

            try:
                written = write_plots(data, plots)
            except OSError as exc:
                raise UserError(f"--plots: cannot write into {plots}: {exc.strerror or exc}") from None
    if as_json:
        out: dict[str, Any] = {"runs": data["runs"], "rows": data["rows"]}
        if effects:
            from normlab.grading.effects import effects_json

            out["effects"], out["effects_info"] = effects_json(found)
        print(json.dumps(out, indent=2))
        return
    for run in data["runs"]:
        rows = [r for r in data["rows"] if r["run"] == run["id"]]
        common.out.print(f"[bold]run {run['id']}[/] · {escape(run['name'])} · {run['episodes']} finished episodes")
        for row in rows:
            table = Table(title=f"{escape(_variant_text(row['variant'], len(rows) > 1))} · {row['episodes']} episodes")
            table.add_column("metric")
            table.add_column("mean", justify="right")
            table.add_column("95% CI", justify="right")
            for name, m in row["metrics"].items():
                table.add_row(escape(name), _number(m["mean"]), _ci(m["ci"]))
            common.out.print(table)
    for found_run in found:
        _print_effects(found_run)
    for path in written:
        common.out.print(f"wrote {escape(path)}")


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _print_effects(found: Any) -> None:
    """One table per metric: its terms with estimate, 95 % CI and p; skipped metrics with why."""
    from normlab.grading.effects import no_factors_line

    run = found.run
    if not found.factors:
        common.out.print(escape(no_factors_line(run)))
        return
    bases = "; ".join(f"{name}: base {levels[0]}" for name, levels in found.factors.items())
    common.out.print(f"[bold]effects, run {run['id']}[/] · factors {escape(bases)}")
    for name, m in found.metrics.items():
        table = Table(title=f"{escape(name)} · {m.episodes} episodes · {m.se} standard errors")
        for column in ("term", "estimate", "95% CI", "p"):
            table.add_column(column, justify="left" if column == "term" else "right")
        for t in m.terms:
            table.add_row(escape(t.term), _number(t.estimate), _ci(t.ci), _p(t.p))
        common.out.print(table)
        for note in m.notes:
            common.out.print(f"  {escape(name)}: {escape(note)}")
    for name, why in found.skipped.items():
        common.out.print(f"skipped {escape(name)}: {escape(why)}")


def _conditions(given: list[str] | None, option: str) -> dict[str, Any]:
    """`PATH=VALUE` options as {path: value}, the value read as YAML (`[]`, `[care-first]`, 3)."""
    from ruamel.yaml import YAML, YAMLError

    out: dict[str, Any] = {}
    for text in given or []:
        path, sep, value = text.partition("=")
        if not sep or not path.strip():
            raise UserError(f"{option} {text!r}: give PATH=VALUE, e.g. {option} 'agents.agent.skills=[care-first]'")
        try:
            out[path.strip()] = YAML(typ="safe", pure=True).load(value) if value.strip() else ""
        except YAMLError as exc:
            raise UserError(f"{option} {text!r}: the value is not YAML ({str(exc).splitlines()[0]})") from None
    return out


@app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run (id or unique prefix).")],
    run_b: Annotated[Optional[str], typer.Argument(help="The run compared with it (default: RUN_A again, to compare two of its variants).")] = None,
    where_a: Annotated[Optional[list[str]], typer.Option("--a", help="Side A is RUN_A's variants with this matrix value: PATH=VALUE (repeatable).")] = None,
    where_b: Annotated[Optional[list[str]], typer.Option("--b", help="Side B is RUN_B's variants with this matrix value: PATH=VALUE (repeatable).")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two runs, or two variants of one run: per metric both sides have, the
    difference B - A of the means with a 95 % bootstrap interval over their episodes (an
    interval that excludes 0: a difference).

    Examples: [bold]normlab compare 3f2a 9c1e[/] ·
    [bold]normlab compare 3f2a --a 'agents.agent.skills=[]' --b 'agents.agent.skills=[care-first]'[/]
    """
    from normlab.grading.report import NoEpisodes
    from normlab.grading.report import compare as build

    with user_errors():
        a_where, b_where = _conditions(where_a, "--a"), _conditions(where_b, "--b")
        if run_b is None and not (a_where or b_where):
            raise UserError("give RUN_B, or --a/--b to compare two variants of RUN_A")
        db = open_store(store, create=False, read_only=True)
        try:
            data = build(db, run_a, run_b, a_where, b_where)
        except NoEpisodes as exc:
            raise UserError(str(exc)) from None
    if as_json:
        print(json.dumps(data, indent=2))
        return
    a, b = data["a"], data["b"]
    def side(x: dict[str, Any]) -> str:
        chosen = ", ".join(f"{k}={v}" for k, v in x["variant"].items())
        return f"run {x['id']} ({escape(x['name'])}{', ' + escape(chosen) if chosen else ''}; {x['episodes']} episodes)"

    table = Table(title=f"B - A: A = {side(a)}, B = {side(b)}")
    for column in ("metric", "A", "B", "B - A", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, m in data["metrics"].items():
        table.add_row(escape(name), _number(m["a"]), _number(m["b"]), _number(m["diff"]), _ci(m["ci"]))
    common.out.print(table)
    if not data["metrics"]:
        common.out.print("the two runs share no metric")

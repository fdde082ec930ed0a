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
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report runs: per variant and overall, episodes, each metric, adherence per pole (and
    per value), priorities and Bradley-Terry strengths, each with a 95 % bootstrap interval.

    Grade a run first (`normlab grade RUN`) to get adherence; a run without grade rows reports
    its env metrics and returns.

    Example: [bold]normlab report 3f2a --plots plots/[/]  ·  [bold]normlab report 3f2a 9c1e --json[/]
    """
    from normlab.grading.report import report as build

    with user_errors():
        db = open_store(store, create=False, read_only=True)
        data = build(db, run_ids)
        written: list[str] = []
        if plots is not None:
            from normlab.grading.report import write_plots

            try:
                written = write_plots(data, plots)
            except OSError as exc:
                raise UserError(f"--plots: cannot write into {plots}: {exc.strerror or exc}") from None
    if as_json:
        print(json.dumps({"runs": data["runs"], "rows": data["rows"]}, indent=2))
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
    for path in written:
        common.out.print(f"wrote {escape(path)}")


@app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run (id or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="The run compared with it.")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two runs: per metric both have, the difference B - A of the means with a 95 %
    bootstrap interval over their episodes (an interval that excludes 0: a difference).

    Example: [bold]normlab compare 3f2a 9c1e[/]
    """
    from normlab.grading.report import compare as build

    with user_errors():
        db = open_store(store, create=False, read_only=True)
        data = build(db, run_a, run_b)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    a, b = data["a"], data["b"]
    table = Table(title=f"B - A: A = run {a['id']} ({escape(a['name'])}), B = run {b['id']} ({escape(b['name'])})")
    for column in ("metric", "A", "B", "B - A", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, m in data["metrics"].items():
        table.add_row(escape(name), _number(m["a"]), _number(m["b"]), _number(m["diff"]), _ci(m["ci"]))
    common.out.print(table)
    if not data["metrics"]:
        common.out.print("the two runs share no metric")

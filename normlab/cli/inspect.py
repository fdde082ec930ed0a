"""Commands that check and list: validate, schema, envs, agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import app


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
                common.err.print(escape(str(problem)))
        else:
            common.out.print(f"[green]ok[/] {escape(str(file))}")
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
def list_envs(
    details: Annotated[Optional[str], typer.Option("--details", metavar="ID", help="Show one env: its rules and action format, parameters with defaults, events and metrics.")] = None,
    as_json: common.JsonOption = False,
) -> None:
    """List registered environment ids, or describe one.

    Examples: [bold]normlab envs[/] · [bold]normlab envs --details normlab/IteratedPrisonersDilemma-v0[/]
    """
    from normlab import envs

    if details is not None:
        with common.user_errors():
            try:
                found = envs.details(details)
            except envs.UnknownEnvError as exc:
                raise common.UserError(str(exc.args[0])) from None
        if as_json:
            print(json.dumps(found, indent=2, default=str))
        else:
            _print_details(found)
        return
    if as_json:
        print(json.dumps([{"id": s.id, "api": s.api, "description": s.description} for s in envs.specs()], indent=2))
        return
    table = Table(title="environments")
    table.add_column("id", no_wrap=True)
    table.add_column("api")
    table.add_column("description")
    for spec in envs.specs():
        table.add_row(spec.id, spec.api, spec.description)
    common.out.print(table)


def _print_details(found: dict[str, Any]) -> None:
    common.out.print(f"[bold]{escape(found['id'])}[/] ({found['api']}): {escape(found['description'])}")
    if found["doc"]:
        common.out.print()
        common.out.print(escape(found["doc"]))
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "parameters",
            ["name", "type", "default", "description"],
            [[p["name"], p["type"], json.dumps(p["default"], default=str), p["description"]] for p in found["params"]],
        ),
        ("events", ["type", "meaning"], [[k, v] for k, v in found["events"].items()]),
        ("metrics", ["name", "meaning"], [[k, v] for k, v in found["metrics"].items()]),
    ]
    for title, columns, rows in sections:
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))
        common.out.print(table)


@app.command("agents")
def list_agents() -> None:
    """List agent kinds and scripted strategies usable in scenarios.

    Example: [bold]normlab agents[/]
    """
    from normlab.agents import AGENT_KINDS, STRATEGIES

    kinds = Table(title="agent kinds")
    kinds.add_column("kind")
    kinds.add_column("description")
    for kind, info in AGENT_KINDS.items():
        kinds.add_row(kind, info.description)
    common.out.print(kinds)
    strategies = Table(title="scripted strategies")
    strategies.add_column("strategy")
    strategies.add_column("params")
    strategies.add_column("description")
    for name, cls in STRATEGIES.items():
        params = ", ".join(f"{k}={v}" for k, v in cls.defaults.items())
        strategies.add_row(name, params, cls.description)
    common.out.print(strategies)

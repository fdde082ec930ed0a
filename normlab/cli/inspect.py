"""Commands that check and list: validate, schema, envs, agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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

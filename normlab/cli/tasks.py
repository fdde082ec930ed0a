"""`normlab tasks`: the shipped tool tasks of `normlab/ToolTask-v0` and the values they set
against each other."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from normlab.cli import common
from normlab.cli.common import JsonOption, app


def _row(name: str) -> dict[str, Any]:
    from normlab.envs.tasks import load_task

    task = load_task(name)
    poles = task.poles
    return {
        "name": task.name,
        "domain": task.domain,
        "value_system": poles.value_system if poles else None,
        "A": poles.A.value if poles else None,
        "B": poles.B.value if poles else None,
        "checkpoints": {"A": len(poles.A.checkpoints), "B": len(poles.B.checkpoints)} if poles else {"A": 0, "B": 0},
        "description": task.description,
    }


@app.command("tasks")
def list_tasks(
    domain: Annotated[Optional[str], typer.Option("--domain", "-d", help="Only the tasks of this domain.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the shipped tool tasks (normlab/ToolTask-v0): domain, value system, the two values.

    Example: [bold]normlab tasks --domain refund_desk[/]
    """
    from normlab.envs.tasks import domains, task_names

    if domain is not None and domain not in domains():
        common.fail(f"unknown domain {domain!r}; domains: {', '.join(domains())}")
    rows = [_row(name) for name in task_names() if domain is None or name.split("/", 1)[0] == domain]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"tool tasks ({len(rows)})")
    table.add_column("task", no_wrap=True)
    table.add_column("domain")
    table.add_column("value system")
    table.add_column("A vs B")
    table.add_column("checkpoints", justify="right")
    for row in rows:
        versus = f"{row['A']} vs {row['B']}" if row["A"] else "-"
        table.add_row(escape(row["name"]), row["domain"], row["value_system"] or "-", escape(versus), f"{row['checkpoints']['A']} + {row['checkpoints']['B']}")
    common.out.print(table)

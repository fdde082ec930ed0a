"""Exports of a run's steps, one line per agent per step, streamed."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from normlab.store.trajectories import Store

EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_FIELDS = ("run", "episode", "t", "agent", "observation", "action", "reward", "terminated", "truncated", "events", "info")


def _export_row(run_id: str, step: dict[str, Any]) -> dict[str, Any]:
    info = step["info"] if isinstance(step["info"], dict) else {}
    return {
        "run": run_id,
        "episode": step["episode"],
        "t": step["t"],
        "agent": step["agent"],
        "observation": step["observation"],
        "action": step["action"],
        "reward": step["reward"],
        "terminated": bool(step["terminated"]),
        "truncated": bool(step["truncated"]),
        "events": info.get("events", []),
        "info": {k: v for k, v in info.items() if k != "events"},
    }


def export_steps(store: Store, run_id: str, fmt: str, handle: IO[str]) -> int:
    """Write the rows and return how many; nested fields are JSON text in CSV."""
    count = 0
    if fmt == "jsonl":
        for step in store.iter_steps(run_id):
            handle.write(json.dumps(_export_row(run_id, step), ensure_ascii=False) + "\n")
            count += 1
    elif fmt == "csv":
        writer = csv.DictWriter(handle, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for step in store.iter_steps(run_id):
            row = _export_row(run_id, step)
            for key in ("observation", "action", "events", "info"):
                row[key] = json.dumps(row[key], ensure_ascii=False)
            writer.writerow(row)
            count += 1
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return count

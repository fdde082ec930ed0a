"""Aggregates of a stored run for the end-of-run table and `runs show`."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from normlab.store import Episode


@dataclass
class RunSummary:
    episodes: int
    steps: int
    returns: dict[str, list[float]] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)

    def mean_returns(self) -> dict[str, float]:
        return {agent: statistics.fmean(values) for agent, values in self.returns.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "steps": self.steps,
            "mean_returns": self.mean_returns(),
            "events": dict(self.events),
        }


def summarize(episodes: list[Episode]) -> RunSummary:
    summary = RunSummary(episodes=len(episodes), steps=sum(ep.num_steps for ep in episodes))
    for ep in episodes:
        for agent, value in ep.returns.items():
            summary.returns.setdefault(agent, []).append(float(value))
        summary.events.update((ep.metrics or {}).get("events", {}))
    return summary

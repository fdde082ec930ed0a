"""Plain values that flow from the runner to the store: one episode's whole record."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from datetime import datetime
from typing import Any

import numpy as np
import orjson

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    from normlab.requests import INVALID

    if value is INVALID:  # an agent's answer that was no legal action
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)  # unknown objects are stored as text rather than failing the write


def dumps_json(value: Any) -> str:
    """JSON text of a value that may hold NumPy arrays and scalars (fast: on the step path)."""
    return orjson.dumps(value, default=_fallback, option=_JSON_OPTIONS).decode()


#: `dumps_json` as bytes, for the step path (one Python call less per value).
json_bytes = partial(orjson.dumps, default=_fallback, option=_JSON_OPTIONS)


@dataclass
class EpisodeResult:
    """Everything one episode produced. `steps` and `model_calls` are rows of plain values
    (column name -> value) so the store can insert them in bulk without ORM objects.

    In step rows, `observation`, `action` and `info` are JSON text, encoded when the step
    happened: envs may reuse arrays and dicts between steps, and the text is what the store
    writes, so encoding once at record time is both a snapshot and the cheapest path."""

    index: int
    seed: int
    steps: list[dict[str, Any]]
    returns: dict[str, float]
    metrics: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    status: str = "finished"
    num_steps: int = 0
    agent_state: dict[str, Any] | None = None
    # per seat: a hash of the seat's resolved agent config (tournaments group by it)
    agent_ids: dict[str, str] | None = None
    error: str | None = None  # why it failed (status "failed")
    # where it sits in the scenario's design (normlab.design): None for plain scenarios
    variant: dict[str, Any] | None = None
    trial: int | None = None

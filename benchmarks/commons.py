"""One GovSim year on the embedded model: 5 LLM agents × 12 months with discussion and
reflection (`normlab/CommonsHarvest-v0`, fishery), through the real runner on a temporary
store. Reports wall time, model calls, tokens, and how many prompt tokens llama.cpp reused
from its KV cache (the prefix shared with the previous prompt), measured by counting the
tokens `Llama.eval` is handed: a prompt token not evaluated was reused. The count is taken
here, around llama-cpp-python, so normlab's provider is unchanged. Target: under 10 minutes
on a 2-core machine.

    python benchmarks/commons.py                  # 12 months, max_tokens 96 (as the govsim scenarios)
    python benchmarks/commons.py --months 2 --max-tokens 32
    python benchmarks/commons.py --pool 100000      # a weak model collapses the lake in month 1: time a full year
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

SCENARIO = """
name: bench_commons
env:
  id: normlab/CommonsHarvest-v0
  params: {{flavour: fishery, months: {months}, pool: {pool}, max_message_chars: 200}}
agents:
{agents}
episodes: 1
seed: 1
"""


def main(months: int = 12, max_tokens: int = 96, pool: int = 100) -> dict[str, Any]:
    from llama_cpp import Llama

    from normlab.models.local import DEFAULT_PROMPT_CACHE_MB, PROMPT_CACHE_ENV, llama_settings
    from normlab.runner import run_scenario
    from normlab.scenario import parse_scenario
    from normlab.store import Store

    evaluated = [0]
    original = Llama.eval

    def counting_eval(self: Any, tokens: Any) -> None:
        evaluated[0] += len(tokens)
        original(self, tokens)

    Llama.eval = counting_eval  # type: ignore[method-assign]
    agent = f"{{kind: llm, model: local/smollm2-135m, harness: direct, max_tokens: {max_tokens}, temperature: 0.7}}"
    agents = "\n".join(f"  persona_{i}: {agent}" for i in range(5))
    text = SCENARIO.format(months=months, agents=agents, pool=pool)
    yaml.safe_load(text)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'bench.db'}")
        started = time.perf_counter()
        run_id = run_scenario(parse_scenario(text), store)
        wall = time.perf_counter() - started
        (episode,) = store.episodes(run_id)
        assert episode.id is not None
        calls = store.model_calls(episode.id)
        steps = store.steps(episode.id)
        store.close()
    Llama.eval = original  # type: ignore[method-assign]
    tokens_in = sum(c["tokens_in"] for c in calls)
    tokens_out = sum(c["tokens_out"] for c in calls)
    answered = [c for c in calls if not c["cache_hit"] and c["error"] is None]
    prompt_evaluated = max(0, evaluated[0] - sum(c["tokens_out"] for c in answered))
    reused = max(0, sum(c["tokens_in"] for c in answered) - prompt_evaluated)
    months_played = int(episode.metrics.get("survival_months") or 0)
    invalid = sum(1 for s in steps if any(e.get("type") == "invalid_action" for e in (s["info"] or {}).get("events", [])))
    figures = {
        "months_played": episode.metrics.get("survival_months"),
        "collapsed": episode.metrics.get("collapsed"),
        "wall_s": round(wall, 1),
        "steps": len(steps),
        "invalid_actions": invalid,
        "model_calls": len(calls),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "prompt_tokens_reused": reused,
        "prompt_reuse_share": round(reused / tokens_in, 3) if tokens_in else None,
        "calls_per_s": round(len(calls) / wall, 2) if wall else None,
        # a weak model collapses the pool early: the year it would take at this pace
        "s_per_month": round(wall / months_played, 1) if months_played else None,
        "year_estimate_s": round(wall / months_played * months, 1) if months_played else None,
        "llama_threads": llama_settings()["n_threads"],
        "prompt_cache_mb": os.environ.get(PROMPT_CACHE_ENV) or DEFAULT_PROMPT_CACHE_MB,
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--pool", type=int, default=100, help="a large pool (100000) keeps a weak model from collapsing it, to time all 12 months")
    args = parser.parse_args()
    main(args.months, args.max_tokens, args.pool)

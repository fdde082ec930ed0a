"""Model-layer benchmarks, each a ratio measured side by side in one run.

(a) tokens/s of the embedded local model through normlab against raw llama-cpp-python on
    the same prompt (target >= 0.9);
(b) per-call overhead of harness, client and store with a zero-latency mock model, against
    LiteLLM calling the same mock alone (target < 2 ms);
(c) wall time of 200 episodes against a mock with 100 ms latency at concurrency 1 and 32
    (target >= 0.9 of the ideal 32x speed-up), with the local executor (32 side by side in
    this process) and with the processes executor (32 side by side in all, split over
    `--workers` worker processes). The processes executor runs twice: end to end, as a
    `normlab run` does (its fork server starts and imports LiteLLM, seconds), then again with
    the fork server warm (steady state: every later run of the same process).

    python benchmarks/models.py            # all three
    python benchmarks/models.py --skip-local
    python benchmarks/models.py --only c   # just the speed-up
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from normlab.executors.processes import default_workers  # noqa: E402
from normlab.models import mock  # noqa: E402
from normlab.models.providers import litellm  # noqa: E402
from normlab.runner import create_run, run_sync  # noqa: E402
from normlab.scenario import parse_scenario  # noqa: E402
from normlab.store import Store  # noqa: E402

SCENARIO = """
name: model-benchmark
env: {{id: normlab/SupervisedShortcut-v0, params: {{supervision: random}}}}
agents:
  agent: {{kind: llm, model: mock/{name}, harness: direct, max_connections: 32, params: {{mock: {{latency: {latency}, reply: '{{"action": 0}}'}}}}}}
episodes: {episodes}
concurrency: {concurrency}
cache: off
"""


def run_mock(folder: Path, name: str, latency: float, episodes: int, concurrency: int, executor: str = "local", workers: int | None = None) -> tuple[float, int]:
    scenario = parse_scenario(SCENARIO.format(name=name, latency=latency, episodes=episodes, concurrency=concurrency))
    store = Store(f"sqlite:///{folder / f'{name}-{concurrency}-{executor}.db'}")
    started = time.perf_counter()
    run_id = create_run(store, scenario)
    run_sync(scenario, store, run_id, range(scenario.episodes), executor=executor, workers=workers)
    elapsed = time.perf_counter() - started
    calls = sum(len(store.model_calls(ep.id)) for ep in store.episodes(run_id))
    store.close()
    return elapsed, calls


def raw_litellm_calls(n: int) -> float:
    """LiteLLM alone calling the same zero-latency mock, same message size."""
    lm = litellm()
    messages = [{"role": "system", "content": "x " * 120}, {"role": "user", "content": "y " * 80}]

    async def go() -> None:
        for _ in range(n):
            await lm.acompletion(model="mock/raw", messages=messages, mock={"reply": '{"action": 0}'}, temperature=0, max_tokens=128)

    started = time.perf_counter()
    asyncio.run(go())
    return (time.perf_counter() - started) / n


def overhead(folder: Path, episodes: int) -> None:
    run_mock(folder, "warm", 0.0, 20, 1)
    raw_litellm_calls(50)
    elapsed, calls = run_mock(folder, "zero", 0.0, episodes, 1)
    per_call = elapsed / calls
    raw = raw_litellm_calls(calls)
    print(f"(b) zero-latency mock, {calls} calls")
    print(f"    normlab run per call      {per_call * 1e3:7.3f} ms (harness + client + LiteLLM + store, whole loop)")
    print(f"    LiteLLM + mock alone      {raw * 1e3:7.3f} ms")
    print(f"    normlab overhead per call {(per_call - raw) * 1e3:7.3f} ms   (target < 2 ms)")


def speedup(folder: Path, episodes: int, workers: int) -> None:
    serial, _ = run_mock(folder, "latency", 0.1, episodes, 1)
    parallel, _ = run_mock(folder, "latency", 0.1, episodes, 32)
    # 32 side by side in all, split over the workers
    width = max(1, 32 // workers)
    cold, _ = run_mock(folder, "cold", 0.1, episodes, width, "processes", workers)
    warm, _ = run_mock(folder, "warm", 0.1, episodes, width, "processes", workers)
    ideal = min(32, episodes)

    def row(label: str, seconds: float) -> str:
        return f"    {label:<58} {seconds:7.2f} s   speed-up {serial / seconds:5.1f}x of ideal {ideal}x = {serial / seconds / ideal:.2f}"

    print(f"(c) {episodes} episodes, mock latency 100 ms ({default_workers()} usable CPUs)")
    print(f"    {'concurrency 1':<58} {serial:7.2f} s")
    print(row("concurrency 32, local", parallel))
    print(row(f"concurrency {width} x {workers} processes, end to end (fork server starts)", cold))
    print(row(f"concurrency {width} x {workers} processes, fork server warm", warm) + "   (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-local", action="store_true", help="skip (a), the local model")
    parser.add_argument("--only", choices=["a", "b", "c"], help="run only this benchmark")
    parser.add_argument("--episodes", type=int, default=200, help="episodes of (b) and (c) (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the processes executor in (c) (default: %(default)s)")
    args = parser.parse_args()
    wanted = {args.only} if args.only else {"a", "b", "c"} - ({"a"} if args.skip_local else set())
    if "a" in wanted:
        from models_local import bench as local_bench

        print("(a) local model through normlab vs raw llama-cpp-python")
        asyncio.run(local_bench("smollm2-135m", 128, 5, 1))
    with tempfile.TemporaryDirectory() as tmp:
        if "b" in wanted:
            overhead(Path(tmp), args.episodes)
        if "c" in wanted:
            speedup(Path(tmp), args.episodes, args.workers)
    mock.reset_calls()


if __name__ == "__main__":
    main()

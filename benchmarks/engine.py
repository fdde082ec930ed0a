"""Engine throughput: `normlab run` against a bare PettingZoo loop that stores nothing.

Both play the same scripted IPD games (tit-for-tat against seeded random); normlab also
derives seeds, records every step and writes each episode to a SQLite store in one
transaction. Prints steps/s of the bare loop, of the local executor (one process) and of the
processes executor (`--workers` processes play, this one writes), each as a ratio to the
bare loop (target: at least 0.5). The processes executor runs twice: first end to end, as a
`normlab run` does (its fork server starts and imports normlab), then again with the fork
server warm (what every later run of the same process sees). The bare loop runs before and
after; the ratios use the faster of the two.

    python benchmarks/engine.py                 # 1,000 episodes x 100 rounds
    python benchmarks/engine.py --episodes 100  # a quicker look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from normlab.agents.scripted import RandomStrategy, TitForTat
from normlab.executors.processes import default_workers
from normlab.envs.dilemmas.prisoners_dilemma import IteratedPrisonersDilemmaEnv
from normlab.runner import create_run, run_sync
from normlab.scenario import parse_scenario
from normlab.store import Store

SCENARIO = """
name: engine-benchmark
env: {{id: normlab/IteratedPrisonersDilemma-v0, params: {{rounds: {rounds}}}}}
agents:
  player_0: {{kind: scripted, strategy: tit_for_tat}}
  player_1: {{kind: scripted, strategy: random, params: {{p: 0.5}}}}
episodes: {episodes}
seed: 1
concurrency: {concurrency}
"""


def bare_loop(episodes: int, rounds: int) -> int:
    """The same games with direct policy calls, no asyncio, no records, no store."""
    env = IteratedPrisonersDilemmaEnv(rounds=rounds)
    steps = 0
    for episode in range(episodes):
        tft = TitForTat(env.action_space("player_0"))
        rnd = RandomStrategy(env.action_space("player_1"), {"p": 0.5})
        observations, _ = env.reset(seed=episode)
        tft.start()
        rnd.start()
        while env.agents:
            actions = {"player_0": tft.choose(observations["player_0"]), "player_1": rnd.choose(observations["player_1"])}
            observations, _, _, _, _ = env.step(actions)
            steps += 1
    return steps


def normlab_run(episodes: int, rounds: int, concurrency: int, folder: Path, executor: str = "local", workers: int | None = None) -> tuple[int, Path]:
    scenario = parse_scenario(SCENARIO.format(episodes=episodes, rounds=rounds, concurrency=concurrency))
    db = folder / f"bench-{executor}-{concurrency}-{len(list(folder.iterdir()))}.db"
    store = Store(f"sqlite:///{db}")
    run_id = create_run(store, scenario)
    run_sync(scenario, store, run_id, range(scenario.episodes), executor=executor, workers=workers)
    steps = sum(ep.num_steps for ep in store.episodes(run_id))
    store.close()
    return steps, db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=100, help="rounds per episode (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=1, help="episodes side by side in each process (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the processes executor (default: %(default)s)")
    args = parser.parse_args()

    def bare() -> float:
        started = time.perf_counter()
        steps = bare_loop(args.episodes, args.rounds)
        return steps / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        bare_rates = [bare()]
        runs = []
        for label, executor, workers in (
            ("local", "local", None),
            (f"processes x{args.workers}, end to end (fork server starts)", "processes", args.workers),
            (f"processes x{args.workers}, fork server warm", "processes", args.workers),
        ):
            started = time.perf_counter()
            steps, db = normlab_run(args.episodes, args.rounds, args.concurrency, Path(tmp), executor, workers)
            runs.append((label, steps, time.perf_counter() - started, db.stat().st_size / 1e6))
        bare_rates.append(bare())

    bare_rate = max(bare_rates)
    print(f"episodes x rounds {args.episodes} x {args.rounds}, concurrency {args.concurrency} per process, {default_workers()} usable CPUs")
    print(f"bare PettingZoo loop  {bare_rate:>9,.0f} steps/s (stores nothing; best of {', '.join(f'{r:,.0f}' for r in bare_rates)})")
    for label, steps, run_s, size_mb in runs:
        rate = steps / run_s
        print(f"normlab {label:<48} {steps:>9,} steps in {run_s:6.2f} s = {rate:>9,.0f} steps/s   ratio to bare {rate / bare_rate:.2f}")
    print(f"(every step stored: {runs[0][3]:.0f} MB per run; target ratio >= 0.5)")


if __name__ == "__main__":
    main()

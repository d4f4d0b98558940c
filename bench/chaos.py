"""Chaos runs against the Graph fake, more seeds than CI's: `python -m reclaim` (run, work,
expire, restore) killed by SIGKILL or a closed pipe at directory-request boundaries and random
points, recovered, and checked against DESIGN §8 invariants 4 and 5 (tests/support/chaos.py).

Prints each seed's kill points and figures, the totals, and one SUMMARY line. A broken invariant
stops the run with its seed: `CHAOS_SEED=<seed> pytest tests/e2e/test_chaos.py -k graph -s`
replays it in the test (the kill points are the seed's; whether a delay lands is timing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import header
from tests.support.chaos import Figures, GraphWorld, scenario
from tests.support.tripwire import TrippingGraph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40, help="how many scenarios")
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--users", type=int, default=6, help="group members per scenario (max)")
    args = parser.parse_args()
    header("chaos: the CLI killed at random points against the Graph fake")
    total = Figures()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reclaim-chaos-") as folder, TrippingGraph() as graph:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            workdir = Path(folder) / f"seed{seed}"
            workdir.mkdir()
            attempts = "2" if seed % 2 else "5"
            world = GraphWorld(
                graph, workdir, 2 + seed % (args.users - 1), RECLAIM_MAX_ATTEMPTS=attempts
            )
            log: list[str] = []
            try:
                figures = scenario(world, seed, log)
            finally:
                print(f"seed {seed}:\n" + "\n".join(log))
            print(f"seed {seed}: {figures.line()}")
            total += figures
    seconds = time.monotonic() - started
    print(f"totals: {total.line()}")
    print(
        f"SUMMARY chaos: {total.runs} scenarios in {seconds:.0f} s, {total.kills} SIGKILLs and "
        f"{total.pipes} closed pipes landed, {total.lost_answers} answers lost at a kill point, "
        f"{total.recovered} requests recovered, {total.removed} removed ({total.confirmed_absent} "
        f"confirmed absent after our write), {total.restored} restored; mislabelled "
        f"{total.mislabelled}, duplicated {total.duplicated}, non-terminal {total.non_terminal}"
    )


if __name__ == "__main__":
    main()

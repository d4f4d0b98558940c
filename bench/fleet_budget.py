"""The fleet-wide write budget: 1, 2, 4 and 8 instances against ONE throttled Graph.

    python -m bench.fleet_budget [--sizes 1 2 4 8] [--removals 1000] [--scale 10] [--backend tables]

Each fleet size is a fresh tenant of `--removals` members in one Graph fake (real HTTPS, msal
and requests on the client side) whose write bucket is Graph's 3,000 per 150 s with the window
scaled 1/scale (capacity 300, refill 20/s at the default), and a fresh state store: Table storage
on a real Azurite started for the bench (or the SQLite file, `--backend sqlite`). The instances
are worker processes (bench/fleet.py): each its own interpreter, Graph client and host.json
`batchSize` workers; they share only the Graph app registration and the store, which holds the
budget (RECLAIM_GRAPH_WRITE_BURST set to the scaled capacity, RECLAIM_GRAPH_WRITE_RATE 20).

Figures per size: removals, the achieved rate as a fraction of the limit (the floor: the bucket
allows capacity + refill x time; whole run, and once the bucket first ran dry), Graph requests per removal,
writes answered 429, lost and done twice, and CPU seconds of the workers, the Graph fake and
Azurite against the wall time (the machine's cores say where it is CPU bound).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from bench.common import figure, header
from bench.fleet import FleetRun, run_fleet
from bench.harness import host_queue_settings
from tests.fakes.graph import FakeGraph
from tests.support.azurite import Azurite, unique_name

GRAPH_CAPACITY = 3000
GRAPH_REFILL = 20.0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cpu_seconds(pid: int | None) -> float:
    """User + system time of a running process (Azurite), from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--removals", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=10.0, help="capacity = 3000 / scale")
    parser.add_argument("--backend", choices=("tables", "sqlite"), default="tables")
    parser.add_argument(
        "--latency", type=float, nargs=2, default=(0.02, 0.05), metavar=("LO", "HI")
    )
    parser.add_argument(
        "--threads", type=int, help="per instance; default: batchSize + newBatchThreshold"
    )
    args = parser.parse_args()
    logging.getLogger("reclaim").setLevel(logging.ERROR)

    host = host_queue_settings()
    threads = args.threads or host.most_in_flight
    capacity = GRAPH_CAPACITY / args.scale
    header("fleet-wide write budget: instances sharing one tenant's Graph writes")
    print(
        f"throttle: capacity {capacity:.0f} writes, refill {GRAPH_REFILL:.0f}/s (Graph's 3,000 per "
        f"150 s, window scaled 1/{args.scale:g}); latency {args.latency[0] * 1000:.0f}-"
        f"{args.latency[1] * 1000:.0f} ms per request; {args.removals} removals per fleet size"
    )
    print(
        f"instances: worker processes with {threads} threads each (batchSize + newBatchThreshold "
        f"from {host.source}); "
        f"store and budget: {'Table storage on Azurite' if args.backend == 'tables' else 'SQLite'}"
    )

    workdir = Path(tempfile.mkdtemp(prefix="reclaim-fleet-"))
    azurite = None
    if args.backend == "tables":
        azurite = Azurite(_free_port(), _free_port(), _free_port(), workdir)
        azurite.start()
    runs: list[FleetRun] = []
    loads: dict[int, float] = {}  # the machine is shared: other work slows the instances
    try:
        for size in args.sizes:
            env = {
                "RECLAIM_GRAPH_WRITE_BURST": str(int(capacity)),
                "RECLAIM_GRAPH_WRITE_RATE": f"{GRAPH_REFILL:g}",
            }
            if azurite is not None:
                env |= {
                    "AzureWebJobsStorage": azurite.connection_string,
                    "RECLAIM_STATE_BACKEND": "tables",
                    "RECLAIM_TABLE_PREFIX": unique_name("fleet"),
                }
            folder = workdir / f"size{size}"
            folder.mkdir()
            with FakeGraph() as graph:
                graph.latency = tuple(args.latency)  # type: ignore[assignment]
                run = run_fleet(
                    graph,
                    folder,
                    processes=size,
                    removals=args.removals,
                    threads=threads,
                    capacity=capacity,
                    refill=GRAPH_REFILL,
                    env=env,
                    max_dequeue_count=host.max_dequeue_count,
                    store_cpu=lambda: _cpu_seconds(azurite.pid if azurite else None),
                )
            runs.append(run)
            loads[size] = os.getloadavg()[0]
            report(run)
            print(f"  load average (1 min) after: {loads[size]:.1f}")
    finally:
        if azurite is not None:
            azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print("table (for README):")
    print(
        "| instances | fraction of the limit (whole / steady) | requests per removal "
        "| 429s (share) | lost / twice | budget waits | CPU busy (of 2 cores) | load average |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run.processes} | {run.fraction:.3f} / {run.steady_fraction:.3f} | "
            f"{run.requests_per_removal:.3f} | {run.throttled} ({run.throttled_share:.1%}) | "
            f"{run.lost} / {run.done_twice} | {run.paced_seconds:.0f} s | {run.cores_busy:.2f} | "
            f"{loads[run.processes]:.1f} |"
        )
    met = all(
        r.fraction >= 0.95
        and r.requests_per_removal <= 1.05
        and r.throttled_share <= 0.01
        and r.lost == r.done_twice == 0
        for r in runs
    )
    worst = min(r.fraction for r in runs)
    print(
        f"SUMMARY fleet_budget: sizes {'/'.join(str(s) for s in args.sizes)}: lowest fraction of "
        f"the limit {worst:.3f} (goal 0.95), most requests per removal "
        f"{max(r.requests_per_removal for r in runs):.3f} (goal 1.05), most 429s "
        f"{max(r.throttled_share for r in runs):.2%} (goal 1 %), "
        f"lost {sum(r.lost for r in runs)}, twice {sum(r.done_twice for r in runs)}; "
        f"{'MET' if met else 'NOT MET'}"
    )


def report(run: FleetRun) -> None:
    print(f"{run.processes} instance(s):")
    figure("removals done", f"{run.removals}")
    figure("first DELETE -> last removal", f"{run.seconds:.1f} s")
    figure("achieved rate", f"{run.removals / max(run.seconds, 1e-9):.1f} /s")
    figure("fraction of the limit, whole run", f"{run.fraction:.3f}", ">= 0.95")
    figure(
        "fraction of the limit, once the bucket ran dry", f"{run.steady_fraction:.3f}", ">= 0.95"
    )
    figure("Graph requests per removal", f"{run.requests_per_removal:.3f}", "<= 1.05")
    figure(
        "writes answered 429",
        f"{run.throttled} of {run.writes} ({run.throttled_share:.2%})",
        "<= 1 %",
    )
    figure("worker results", ", ".join(f"{k} {v}" for k, v in sorted(run.statuses.items())))
    if run.errors:
        figure("redelivered (handler raised)", ", ".join(f"{k} {v}" for k, v in run.errors.items()))
    figure(
        "writes waiting for a send time (sum of waits)",
        f"{run.paced_seconds:.1f} s over {run.processes} instance(s)",
    )
    figure("removals lost", f"{run.lost}", "0")
    figure("removals done twice", f"{run.done_twice}", "0")
    figure(
        "CPU s: workers / Graph fake+parent / Azurite",
        f"{run.worker_cpu:.1f} / {run.parent_cpu:.1f} / {run.store_cpu:.1f}",
    )
    figure(
        "cores busy (CPU s / wall s)",
        f"{run.cores_busy:.2f} of {os.cpu_count()} over {run.phase_seconds:.1f} s",
    )


if __name__ == "__main__":
    main()

"""Several instances of the app share one tenant's Graph write budget (issue 16, item 1).

Three worker processes (each its own interpreter, GraphClient and workers, as instances are)
remove 180 members against ONE Graph fake whose write bucket holds 20 tokens and refills at 20/s,
with the state store (SQLite file, Table storage on Azurite) they share. Counts, never timers:
at most 1.05 Graph requests per removal and at most 1 % of the writes answered 429, nothing lost
or done twice. With a pacer per process, each instance learns the bucket is empty from its own
429s, and the fleet gets far more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fleet import run_fleet
from tests.fakes.graph import FakeGraph
from tests.support.azurite import Azurite, unique_name

PROCESSES = 3
REMOVALS = 60 * PROCESSES
CAPACITY = 20.0
REFILL = 20.0
THREADS = 8  # host.json batchSize


@pytest.mark.parametrize("backend", ["sqlite", "tables"])
def test_instances_share_the_write_budget(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {
        # the budget mirrors the fake's bucket, as the defaults mirror Graph's 3,000 and 20/s
        "RECLAIM_GRAPH_WRITE_BURST": str(int(CAPACITY)),
        "RECLAIM_GRAPH_WRITE_RATE": str(REFILL),
    }
    if backend == "tables":
        azurite: Azurite = request.getfixturevalue("azurite")
        env |= {
            "AzureWebJobsStorage": azurite.connection_string,
            "RECLAIM_STATE_BACKEND": "tables",
            "RECLAIM_TABLE_PREFIX": unique_name("t"),
        }
    with FakeGraph() as graph:
        run = run_fleet(
            graph,
            tmp_path,
            processes=PROCESSES,
            removals=REMOVALS,
            threads=THREADS,
            capacity=CAPACITY,
            refill=REFILL,
            env=env,
        )
    assert (run.removals, run.lost, run.done_twice) == (REMOVALS, 0, 0), run
    assert run.throttled <= 0.01 * run.writes, run
    assert run.requests_per_removal <= 1.05, run

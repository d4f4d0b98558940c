"""Table storage at scale, on Azurite (issue 16, item 4).

1. A scheduled run over --members members (dry-run policy: decision records and the members
   snapshot are written), on day 1 (first snapshot) and day 2 (nobody joined or left): records
   written, seconds, HTTP requests.
2. A 500-answer list (what the webhook does with a verified list: find every answer's request by
   policy and user, then record them, a few at once) against --stored stored requests: seconds,
   requests per answer.

How it partitions, and why its times do not carry over: Azurite's time per write grows with the
rows already in a partition (ENVIRONMENT.md: 100k rows in one partition took 639 s); real Table
storage does not behave like this (its limit is 2,000 entities a second per partition). The store
partitions decisions by run (1,000 a partition) and members by a hash (1,000 a partition), so the
run is what the store does anywhere. A policy's requests share one partition (its index must be
updated in one transaction), so the stored requests are spread over --policies policies; the
history is written straight into their partitions in transactions of 100 (the same entities
add_request writes, without the locators, which an answer by policy and user never reads). The
request counts carry over to real Table storage; the seconds do not.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import figure, header
from reclaim import usecases
from reclaim.adapters.storage import storage_from_env
from reclaim.adapters.tables import TableStore
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import policies_from_data
from reclaim.functions import webhook
from tests.support.azurite import Azurite, _free_port
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
HTTP_LIMIT = 230.0  # seconds: the Functions HTTP trigger's limit behind the load balancer


@dataclass
class Counter:
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, _request: Any) -> None:
        with self._lock:
            self.requests += 1


def policy(name: str, mode: str = "dry-run", **extra: Any) -> Any:
    """A policy whose caps never halt the bench (it measures the store, not the guardrails)."""
    data = {
        "name": name,
        "application": "Bench",
        "mode": mode,
        "directory": {"kind": "csv", "group": "G", "file": "members.csv"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 1_000_000, "max_percent_of_group": 100},
        "licence": {"monthly_cost": 10.0},
        **extra,
    }
    return policies_from_data({"policies": [data]})[0]


def scheduled_run(env: dict[str, str], members: int) -> None:
    users = [User(object_id=f"id{i}", upn=f"user{i}@bench.test") for i in range(members)]
    # a tenth idle (CANDIDATE), the rest active: every member gets a decision record
    rows = [UsageRow(u.upn, 0.5 if i % 10 == 0 else 60.0) for i, u in enumerate(users)]
    counter = Counter()
    store = TableStore.from_account(
        storage_from_env(env), env["RECLAIM_TABLE_PREFIX"] + "run", raw_request_hook=counter
    )
    chosen = policy("scheduled")
    directory = MemoryDirectory({"G": [Member(u) for u in users]})
    ctx = usecases.Context(
        store,
        MemoryQueue(),
        MemoryAdapters(directory, MemoryUsage(rows, NOW)),
        {"scheduled": chosen},
    )
    for day in (1, 2):
        counter.requests = 0
        started = time.perf_counter()
        run = usecases.run_policy(ctx, chosen, NOW + timedelta(days=day)).run
        seconds = time.perf_counter() - started
        written = run.members + (members if day == 1 else 0)  # decisions (+ first snapshot)
        print(f"day {day}: {run.members} members, {run.counts}")
        figure(f"day {day}: records written", f"{written:,}")
        figure(f"day {day}: seconds (Azurite)", f"{seconds:.1f}")
        figure(f"day {day}: HTTP requests", f"{counter.requests:,}")
        figure(f"day {day}: records per request", f"{written / counter.requests:.1f}", "~100")


def stored_request(i: int, policy_name: str, state: RequestState) -> Request:
    user = User(object_id=f"oid{i}", upn=f"user{i}@bench.test")
    return Request(
        f"req{i:07d}", policy_name, "G", user, user.upn, "run-0", state, NOW - timedelta(days=3),
        NOW - timedelta(days=3), deadline=NOW + timedelta(days=4), reason="idle",
    )  # fmt: skip


def seed(store: TableStore, requests: list[Request]) -> None:
    """The history, straight into the policies' partitions in transactions of 100."""
    table = store._requests
    by_partition: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for r in requests:
        for entity in [table._primary(r), *table._copies(r)]:
            by_partition.setdefault(entity["PartitionKey"], []).append(("upsert", entity))
    client = store._service.get_table_client(store.table_names[2])
    table._access.transact_many(client, list(by_partition.values()))


def answer_list(env: dict[str, str], stored: int, policies: int, answers: int) -> None:
    names = [f"p{n:03d}" for n in range(policies)]
    asking = {
        n: policy(
            n,
            "enforce",
            ask_permission=True,
            directory={"kind": "ad", "group": "G"},
            campaign={
                "channel": "webhook",
                "url": "https://survey.example/ask",
                "respond_within": "7d",
            },
        )
        for n in names
    }
    counter = Counter()
    store = TableStore.from_account(
        storage_from_env(env), env["RECLAIM_TABLE_PREFIX"] + "ans", raw_request_hook=counter
    )
    pending = set(range(0, stored, max(1, stored // answers)))
    requests = [
        stored_request(
            i, names[i % policies], RequestState.PENDING if i in pending else RequestState.CANCELLED
        )
        for i in range(stored)
    ]
    started = time.perf_counter()
    seed(store, requests)
    print(
        f"seeded {stored:,} requests over {policies} policies in {time.perf_counter() - started:.0f} s"
    )
    for r in requests:
        if r.state is RequestState.PENDING:
            store.add_request(r)  # with its locator, as a run stores it
    ctx = usecases.Context(
        store, MemoryQueue(), MemoryAdapters(MemoryDirectory({}), MemoryUsage([], NOW)), asking
    )
    commands = [
        usecases.AnswerCommand(AnswerValue.YES, NOW, policy=r.policy, user=r.user.upn)
        for r in requests
        if r.state is RequestState.PENDING
    ][:answers]
    counter.requests = 0
    started = time.perf_counter()
    # what the webhook does with a verified list: check that every answer finds its request,
    # then record them (reclaim.functions.webhook)
    request_ids = webhook._check_known(ctx, commands)
    counts = webhook._record(SimpleNamespace(ctx=ctx, now=lambda: NOW), commands, request_ids)
    seconds = time.perf_counter() - started
    assert counts["kept"] == len(commands), counts
    figure(
        f"{len(commands)} answers against {stored:,} requests: seconds",
        f"{seconds:.1f}",
        f"well under {HTTP_LIMIT:.0f}",
    )
    figure("seconds per answer (Azurite)", f"{seconds / len(commands):.3f}")
    figure(
        "HTTP requests per answer",
        f"{counter.requests / len(commands):.1f}",
        "independent of stored",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000, help="0: no scheduled run")
    parser.add_argument("--stored", type=int, default=100_000, help="0: no answer list")
    parser.add_argument("--policies", type=int, default=100, help="the stored requests' policies")
    parser.add_argument("--answers", type=int, default=500)
    args = parser.parse_args()
    header("Table storage at scale (Azurite; times do not carry over, request counts do)")
    with tempfile.TemporaryDirectory() as workdir:
        azurite = Azurite(_free_port(), _free_port(), _free_port(), Path(workdir))
        azurite.start()
        try:
            env = {
                "AzureWebJobsStorage": azurite.connection_string,
                "RECLAIM_TABLE_PREFIX": "bench",
            }
            if args.members:
                scheduled_run(env, args.members)
            if args.stored:
                answer_list(env, args.stored, args.policies, args.answers)
        finally:
            azurite.stop()
    print("SUMMARY table_scale done")


if __name__ == "__main__":
    main()

"""A fleet on one machine: several worker processes against ONE Graph fake and ONE state store.

Shared by the fleet benchmark (bench/fleet_budget.py) and its count test
(tests/e2e/test_fleet_budget.py). The parent seeds the tenant, runs the enforce run
(usecases.run_policy) and deals its removal messages round-robin to `processes` child processes,
as the queue trigger deals a queue's messages to instances. Each child is one instance: its own
interpreter, Context, GraphClient (token, connection pool, pacer) and `threads` workers doing what
the removal worker does (bench.harness.run_workers, with the host's delivery rules for its
deferrals). What the children share is what instances share in Azure: the Graph app registration
(the fake's one write bucket) and the state store (SQLite file or Table storage on Azurite),
which holds the fleet's write budget.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import DelayQueue, graph_tenant, reconcile, run_workers
from reclaim import usecases
from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import shared_client
from reclaim.adapters.graph.pacing import FleetPacer
from reclaim.adapters.sqlite import SqliteStore
from reclaim.adapters.tables import TableStore
from reclaim.domain.policy import Policy
from reclaim.domain.records import RemovalMessage
from reclaim.domain.write_budget import BudgetRule
from reclaim.ports import StateStore
from reclaim.settings import Settings
from reclaim.wiring import Wiring
from tests.fakes.graph import FakeGraph, LoggedRequest

STEADY_MIN_SECONDS = 5.0  # a steady state shorter than this is not reported


class _Dealt:
    """reclaim.ports.WorkQueue for the enqueue run: the messages, to be dealt to the instances."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        self.texts.append(message.to_json())


@dataclass(frozen=True)
class FleetRun:
    processes: int
    removals: int  # DELETEs answered 204
    writes: int  # DELETEs sent, whatever the answer
    throttled: int  # DELETEs answered 429
    requests: int  # every Graph request but the run's group and member reads
    seconds: float  # first DELETE -> last successful DELETE
    fraction: float  # removals / (capacity + refill x seconds)
    steady_fraction: float  # after the bucket first ran dry (nan: it never did)
    lost: int
    done_twice: int
    statuses: Counter[str]
    errors: Counter[str]
    phase_seconds: float  # instances started -> all finished
    worker_cpu: float  # user + system seconds of the worker processes
    parent_cpu: float  # this process: the Graph fake's server threads and the bookkeeping
    store_cpu: float  # the store's server (Azurite), when a probe was given
    paced_seconds: float  # summed over instances: writes waiting for the budget's send times

    @property
    def cores_busy(self) -> float:
        return (self.worker_cpu + self.parent_cpu + self.store_cpu) / self.phase_seconds

    @property
    def requests_per_removal(self) -> float:
        return self.requests / max(self.removals, 1)

    @property
    def throttled_share(self) -> float:
        return self.throttled / max(self.writes, 1)


def _store(settings: Settings, env: Mapping[str, str]) -> StateStore:
    if settings.state_backend == "tables":
        return TableStore.from_settings(settings, env)
    return SqliteStore(settings.state_db)


def _bucket_dry_at(accepted: list[float], capacity: float, refill: float) -> float | None:
    """When the fake's bucket first came within the budget's headroom of empty (the budget
    keeps that much unspent), replayed from the accepted writes' arrival times (a 429 takes no
    token); None if it never did."""
    low = 1 + refill * BudgetRule().headroom
    tokens, previous = capacity, accepted[0] if accepted else 0.0
    for at in accepted:
        tokens = min(capacity, tokens + (at - previous) * refill) - 1
        previous = at
        if tokens < low:
            return at
    return None


def _is_read(request: LoggedRequest) -> bool:
    return request.method == "GET" and request.path.startswith("/groups/")


def _instance(
    env: Mapping[str, str],
    workdir: str,
    policy: Policy,
    texts: list[str],
    threads: int,
    max_dequeue_count: int,
    results: Any,
) -> None:
    """One instance of the app (runs in a child process)."""
    import logging

    logging.getLogger("reclaim").setLevel(logging.ERROR)  # a warning per 429 otherwise
    os.environ.update(env)  # the budget reads the storage account from it, as in Azure
    settings = Settings.from_env(env)
    queue = DelayQueue(max_dequeue_count)
    for text in texts:
        queue.enqueue(RemovalMessage.from_json(text))
    secrets = EnvironmentSecrets(dict(env))
    ctx = usecases.Context(
        _store(settings, env),
        queue,
        Wiring(settings, Path(workdir), secrets),
        {policy.name: policy},
    )
    tally = run_workers(ctx, queue, threads)
    pacer = shared_client(settings, secrets).write_pacer  # the one the directory used
    paced = pacer.paced_seconds if isinstance(pacer, FleetPacer) else 0.0
    results.put((dict(tally.statuses), dict(tally.errors), paced))


def run_fleet(
    graph: FakeGraph,
    workdir: Path,
    *,
    processes: int,
    removals: int,
    threads: int,
    capacity: float,
    refill: float,
    env: Mapping[str, str] | None = None,
    max_dequeue_count: int = 5,
    store_cpu: Callable[[], float] = lambda: 0.0,
) -> FleetRun:
    """Enqueue `removals` and work them with `processes` instances against `graph`, whose write
    bucket (capacity, refill/s) starts full; `env` names the store (default: SQLite in workdir)
    and the budget's settings."""
    tenant = graph_tenant(graph, workdir, removals, env)
    store = _store(tenant.settings, tenant.env)
    dealt = _Dealt()
    ctx = usecases.Context(
        store,
        dealt,
        Wiring(tenant.settings, workdir, tenant.secrets),
        {tenant.policy.name: tenant.policy},
    )
    outcome = usecases.run_policy(ctx, tenant.policy, datetime.now(UTC))
    if outcome.halted or len(dealt.texts) != removals:
        raise RuntimeError(f"the run did not enqueue {removals} removals: {outcome.halt}")

    graph.clear_log()
    graph.throttle_writes(capacity, refill)
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as instances are
    results = spawn.Queue()
    children = [
        spawn.Process(
            target=_instance,
            args=(
                tenant.env,
                str(workdir),
                tenant.policy,
                dealt.texts[n::processes],
                threads,
                max_dequeue_count,
                results,
            ),
            name=f"instance-{n}",
            daemon=True,  # an interrupted bench takes its instances with it
        )
        for n in range(processes)
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_before = time.process_time()
    store_before = store_cpu()
    started = time.monotonic()
    for child in children:
        child.start()
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    paced: list[float] = []
    for _ in children:
        child_statuses, child_errors, child_paced = results.get(timeout=1800)
        statuses.update(child_statuses)
        errors.update(child_errors)
        paced.append(child_paced)
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"{child.name} exited with {child.exitcode}")
    phase_seconds = time.monotonic() - started
    store_used = store_cpu() - store_before
    parent_cpu = time.process_time() - own_before
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )

    log = [r for r in graph.requests if not _is_read(r)]
    deletes = [r for r in log if r.method == "DELETE"]
    ok = sorted(r.at for r in deletes if r.status == 204)
    first = min((r.at for r in deletes), default=0.0)
    seconds = (ok[-1] - first) if ok else 0.0
    fraction = len(ok) / (capacity + refill * seconds) if ok else 0.0
    dry_at = _bucket_dry_at(ok, capacity, refill)
    steady_seconds = ok[-1] - dry_at if dry_at is not None else 0.0
    steady = (
        sum(1 for t in ok if t > dry_at) / (refill * steady_seconds)
        if dry_at is not None and steady_seconds >= STEADY_MIN_SECONDS
        else float("nan")  # never (long) dry: the workers, not the budget, set the pace
    )

    checked = reconcile(ctx, tenant.policy, graph, tenant.group, tenant.user_ids)
    lost = len(checked.lost) + len(checked.not_terminal) + len(checked.unrecorded)
    done_twice = checked.duplicate_ledger + sum(1 for r in deletes if r.status == 404)
    return FleetRun(
        processes=processes,
        removals=len(ok),
        writes=len(deletes),
        throttled=sum(1 for r in deletes if r.status == 429),
        requests=len(log),
        seconds=seconds,
        fraction=fraction,
        steady_fraction=steady,
        lost=lost,
        done_twice=done_twice,
        statuses=statuses,
        errors=errors,
        phase_seconds=phase_seconds,
        worker_cpu=worker_cpu,
        parent_cpu=parent_cpu,
        store_cpu=store_used,
        paced_seconds=sum(paced),
    )

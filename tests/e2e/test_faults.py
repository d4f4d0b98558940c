"""Fault runs: thousands of removals through the real removal path while Graph misbehaves (429
storms, 503/504s, connections reset before and after the work, slow answers, malformed JSON, a
token that stops working) and, on Azure storage, while Azurite restarts in the middle.

After each run every request has reached a terminal state, the ledger equals the change in the
directory (the users gone from the group are exactly those with a REMOVED entry: a removal whose
answer was lost is recognised as reclaim's own, never NOT_MEMBER), and no ledger entry is
duplicated.

- SQLite + Graph: 5,000 removals, SqliteStore and the host's queue rules (bench.harness.DelayQueue)
  worked by batchSize threads, the real EntraDirectory/GraphClient over HTTPS to the fake.
- Table storage + Storage queue + Graph against a durable Azurite (--location) that is stopped for
  OUTAGE seconds part-way. Fewer removals (STORAGE_REMOVALS): a removal costs about seven storage
  round trips to one Azurite process; measured on 2 cores, about 45 removals/s whatever the
  number of workers and 80 enqueued/s, so 5,000 would take about three minutes.
  The run's clock goes TIME_SCALE times faster than real time and so do the queue's delays, so a
  claim left behind by the outage (5 minutes, usecases.CLAIM_TIMEOUT) expires in seconds.

Retries are real but short: Retry-After of 1 s on 429s, exponential backoff from 20 ms otherwise.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.harness import (
    DelayQueue,
    GraphTenant,
    WorkerTally,
    graph_tenant,
    host_queue_settings,
    reconcile,
    run_workers,
)
from reclaim import usecases
from reclaim.adapters.files import CsvUsage
from reclaim.adapters.graph.client import GraphClient, RetryPolicy
from reclaim.adapters.graph.members import EntraDirectory
from reclaim.adapters.graph.pacing import WritePacer
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.breaker import BreakerRules
from reclaim.domain.policy import Policy
from reclaim.domain.records import MessageError, RemovalMessage
from reclaim.errors import ConfigurationError
from reclaim.ports import Campaign, Directory, Licences, UsageSource
from tests.fakes.graph import FakeGraph, Fault
from tests.support.azurite import AZURITE_JS, HOST, Azurite, unique_name
from tests.support.components import missing

REF = "/groups/*/members/*/$ref"
REMOVALS = 5_000
STORAGE_REMOVALS = 600
READ_TIMEOUT = 2.5  # seconds; a slower answer is retried (and its work may already be done)
FAST_RETRY = RetryPolicy(max_attempts=5, budget=10.0, base_delay=0.02, max_delay=0.2)
TIME_SCALE = 60  # storage run: one real second is a minute of the run's clock
AZURITE_FLAGS = ("--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose")
# Longer than azure-core's own retries (3, from 0.8 s doubling): calls in flight fail.
OUTAGE = 8.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


# ---- the world ----------------------------------------------------------------------------------


class FaultRunAdapters:
    """usecases.Adapters: the real Graph directory with short retries, the usage CSV."""

    def __init__(self, tenant: GraphTenant) -> None:
        settings = tenant.settings
        secrets = tenant.secrets
        self._directory = EntraDirectory(
            GraphClient(
                base_url=settings.graph_base_url,
                authority=f"{settings.authority_host}/{settings.tenant_id}",
                client_id=settings.client_id,
                load_credential=lambda: secrets.get(settings.graph_client_secret_name),
                ca_bundle=settings.ca_bundle,
                retry=FAST_RETRY,
                timeout=(2.0, READ_TIMEOUT),
                # The 429s here are injected, not a spent budget: pacing at Graph's real 20/s
                # for 150 s would stretch the run to minutes without testing anything more.
                write_pacer=WritePacer(rate=2000, quiet=1.0),
            )
        )

    def directory(self, policy: Policy) -> Directory:
        return self._directory

    def usage_source(self, policy: Policy) -> UsageSource:
        return CsvUsage(Path(policy.usage.file))

    def campaign(self, policy: Policy) -> Campaign:
        raise ConfigurationError("the fault runs ask no one")

    def licences(self, policy: Policy) -> Licences:
        raise ConfigurationError("the fault runs name no SKU: their seats are not verified")


@dataclass(frozen=True)
class FaultPlan:
    """What is injected on the removal DELETEs, in order (each storm after `skip` clean ones)."""

    storms: tuple[tuple[int, tuple[Fault, ...]], ...]

    @classmethod
    def for_removals(cls, removals: int, workers: int) -> FaultPlan:
        def n(count: int) -> int:
            return max(1, count * removals // REMOVALS)

        # Every worker meets more 429s in a row than it retries: messages go back to the queue.
        storm = workers * (FAST_RETRY.max_attempts + 1)
        return cls(
            (
                (n(250), (Fault.throttled(retry_after=1),) * storm),
                (n(300), (Fault.unavailable(),) * n(80)),  # 503 without Retry-After: backoff
                (n(250), (Fault.connection_reset(),) * n(40)),  # dropped before the work
                (n(250), (Fault.connection_reset(after_work=True),) * n(30)),  # answer lost
                (n(200), (Fault.expired_token(),)),
                (n(250), (Fault.slow(0.2),) * n(40)),  # slow, within the read timeout
                (n(250), (Fault.slow(READ_TIMEOUT + 0.5),) * n(8)),  # too slow: work done, retried
                (n(250), (Fault.gateway_timeout(),) * n(40)),
                (n(250), (Fault.unavailable(retry_after=1),) * n(16)),
                (n(200), (Fault.malformed_json(),) * n(10)),
                (n(200), (Fault.expired_token(),)),
                (n(250), (Fault.throttled(retry_after=1),) * n(40)),  # a second storm
            )
        )

    def inject(self, graph: FakeGraph) -> None:
        for skip, faults in self.storms:
            graph.inject("DELETE", REF, *faults, skip=skip)

    def count(self, **fields: object) -> int:
        return sum(
            1
            for _, faults in self.storms
            for fault in faults
            if all(getattr(fault, k) == v for k, v in fields.items())
        )


def assert_consistent(
    ctx: usecases.Context,
    tenant: GraphTenant,
    plan: FaultPlan,
    removals: int,
    *,
    storage_faults: bool = False,
) -> None:
    """Terminal states, ledger = directory change, no duplicates, and the faults really fired."""
    graph = tenant.graph
    result = reconcile(ctx, tenant.policy, graph, tenant.group, tenant.user_ids)
    print(f"fault run ({'storage' if storage_faults else 'sqlite'}): {result.line()}")  # README
    assert result.requests == removals
    assert result.not_terminal == [], [
        (r.state.value, r.detail, r.attempts)
        for r in ctx.store.requests(tenant.policy.name)
        if r.id in result.not_terminal
    ]
    assert result.lost == []  # the store says done, the directory still holds them
    assert result.unrecorded == [], [  # gone from the group with no ledger entry: the request?
        (r.state.value, r.detail)
        for r in ctx.store.requests(tenant.policy.name)
        if r.user.object_id in result.unrecorded
    ]
    assert result.failed_but_gone == []
    assert result.duplicate_ledger == 0
    assert result.mislabelled == 0 and result.confirmed_absent > 0  # lost answers, recognised
    ledger = ctx.store.ledger(policy=tenant.policy.name)
    assert len({e.id for e in ledger}) == len(ledger)
    # Transient faults only: every removal ends done, none FAILED. Every user was a member
    # before reclaim's first write, so none is NOT_MEMBER: a lost answer is still a removal.
    assert result.outcomes["REMOVED"] == removals, result.outcomes
    assert not any(graph.is_member(tenant.group, u) for u in tenant.user_ids)

    deletes = [r for r in graph.requests if r.method == "DELETE"]
    assert graph.count("DELETE", REF, in_batch=False) == len(deletes)
    # Each user left the group once: by a DELETE the fake answered 204 (heard or not: a slow
    # answer may time out), or by one dropped after the work.
    answered_204 = sum(1 for r in deletes if r.status == 204)
    assert answered_204 <= removals
    assert answered_204 + plan.count(reset="after") >= removals
    # "Confirmed absent after our write" only where a DELETE of ours had done the work and its
    # answer was lost (or, with storage down, its outcome could not be stored): recognised by a
    # retry that got 404, or by the expiry tick's reading of the group (nothing sent again).
    by_user: dict[str, list[int]] = {}
    for request in deletes:
        by_user.setdefault(request.path.split("/")[4], []).append(request.status)
    confirmed = [
        (e.user.object_id, e.detail)
        for e in ledger
        if e.outcome.value == "REMOVED" and e.detail.startswith("confirmed absent after our write")
    ]
    ours = [user for user, detail in confirmed if not detail.endswith("(re-decided by the tick)")]
    for user in ours:
        statuses = by_user[user]
        assert statuses[-1] == 404 and {204, 0} & set(statuses[:-1]), (user, statuses)
    by_tick = [user for user, detail in confirmed if user not in ours]
    assert storage_faults or not by_tick  # without storage faults every worker stores its outcome
    for user in by_tick:
        assert {204, 0} & set(by_user[user]), (user, by_user[user])
    answered_404 = sum(1 for r in deletes if r.status == 404)
    # With storage down, a 404 whose outcome could not be stored is heard again later.
    assert answered_404 >= len(ours) if storage_faults else answered_404 == len(ours)
    # Every injected fault was served.
    assert sum(1 for r in deletes if r.status == 429) == plan.count(status=429)
    assert sum(1 for r in deletes if r.status == 0) == plan.count(reset="before") + plan.count(
        reset="after"
    )


# ---- SQLite + Graph -----------------------------------------------------------------------------


def test_5000_removals_under_graph_faults_end_consistent(tmp_path: Path) -> None:
    host = host_queue_settings()
    plan = FaultPlan.for_removals(REMOVALS, host.batch_size)
    with FakeGraph() as graph:
        tenant = graph_tenant(graph, tmp_path, REMOVALS)
        queue = DelayQueue(host.max_dequeue_count, visibility_timeout=0.5)
        ctx = usecases.Context(
            SqliteStore(tenant.settings.state_db),
            queue,
            FaultRunAdapters(tenant),
            {tenant.policy.name: tenant.policy},
            # A 503 storm opens the breaker; the run waits out seconds, not Azure's minutes.
            limits=usecases.RemovalLimits(breaker=BreakerRules(backoff=timedelta(seconds=1))),
        )
        outcome = usecases.run_policy(ctx, tenant.policy, datetime.now(UTC))
        assert outcome.run.enqueued == REMOVALS

        graph.clear_log()
        plan.inject(graph)
        tally = run_workers(ctx, queue, host.batch_size)

        assert tally.errors == {} and queue.poisoned == []
        assert tally.statuses["deferred"] > 0  # the storms outlasted the retries: back to the queue
        assert_consistent(ctx, tenant, plan, REMOVALS)


# ---- Table storage + Storage queue + Graph, Azurite restarting ----------------------------------


class DurableAzurite(Azurite):
    """Azurite with its data on disk (--location): a restart is an outage, not a data loss,
    as with Azure Storage. tests.support.azurite runs it in memory, where a restart wipes all."""

    def start(self) -> None:
        node = shutil.which("node")
        assert node, "checked by the fixture"
        self._log = (self.workdir / "azurite.out").open("ab")
        ports = (
            ("--blobHost", HOST, "--blobPort", str(self.blob_port)),
            ("--queueHost", HOST, "--queuePort", str(self.queue_port)),
            ("--tableHost", HOST, "--tablePort", str(self.table_port)),
        )
        self._process = subprocess.Popen(
            [node, str(AZURITE_JS), "--location", str(self.workdir / "data"), *AZURITE_FLAGS]
            + [part for port in ports for part in port],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"azurite exited: {self.log_tail()}")
            if all(_port_open(p) for p in (self.blob_port, self.queue_port, self.table_port)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"azurite did not listen within 30 s: {self.log_tail()}")

    def outage(self, seconds: float) -> None:
        """Stop (SIGTERM: Azurite saves its data), stay down `seconds`, start again."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=10)
        time.sleep(seconds)
        self.start()


@pytest.fixture
def durable_azurite() -> Iterator[DurableAzurite]:
    if not (shutil.which("node") and AZURITE_JS.exists()):
        missing("Azurite is not installed: sh tests/support/azurite_setup.sh")
    workdir = Path(tempfile.mkdtemp(prefix="reclaim-azurite-durable-"))
    emulator = DurableAzurite(_free_port(), _free_port(), _free_port(), workdir)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class FastClock:
    """The run's clock: TIME_SCALE times faster than real time, from now."""

    def __init__(self) -> None:
        self._wall = datetime.now(UTC)
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self._wall + timedelta(seconds=(time.monotonic() - self._started) * TIME_SCALE)


class ScaledQueue:
    """The StorageQueue with delays on the run's clock (divided by TIME_SCALE in real time)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        self.inner.enqueue(message, delay / TIME_SCALE if delay else None)  # type: ignore[attr-defined]


def pump_storage_queue(
    ctx: usecases.Context,
    storage_queue: object,
    threads: int,
    max_dequeue_count: int,
    clock: FastClock,
    done: threading.Event,
) -> WorkerTally:
    """The host's queue trigger over the real Storage queue, `threads` instances: receive with a
    lease, run the worker's logic, delete on success; on an exception the message comes back
    after the (scaled) visibilityTimeout, or after its lease when storage is down; poison after
    maxDequeueCount. A storage call that fails during the outage is what the host would see."""
    from azure.core.exceptions import AzureError

    client = storage_queue.client  # type: ignore[attr-defined]
    poison = storage_queue.poison  # type: ignore[attr-defined]
    tally = WorkerTally()
    lock = threading.Lock()
    lease = 10  # seconds; the host renews its lease while a function runs, we keep it short
    retry_visibility = max(1, int(host_queue_settings().visibility_timeout / TIME_SCALE))

    def work() -> None:
        while not done.is_set():
            try:
                batch = list(client.receive_messages(max_messages=8, visibility_timeout=lease))
            except AzureError as error:
                with lock:
                    tally.errors[f"receive: {type(error).__name__}"] += 1
                time.sleep(0.5)
                continue
            if not batch:
                time.sleep(0.1)
                continue
            for stored in batch:
                command = None
                try:
                    message = RemovalMessage.from_json(stored.content)
                    command = usecases.RemovalCommand(
                        message, final_attempt=stored.dequeue_count >= max_dequeue_count
                    )
                    report = usecases.perform_removal(ctx, command, clock())
                except MessageError:
                    report = None
                except Exception as error:
                    with lock:
                        tally.errors[type(error).__name__] += 1
                    with contextlib.suppress(AzureError):
                        if stored.dequeue_count >= max_dequeue_count:
                            poison(stored.content, f"failed {stored.dequeue_count} times")
                            client.delete_message(stored)
                        else:
                            client.update_message(stored, visibility_timeout=retry_visibility)
                    continue
                with lock:
                    status = report.status.value if report else "malformed"
                    tally.statuses[status] += 1
                with contextlib.suppress(AzureError):
                    if report is None or report.status is usecases.RemovalStatus.FAILED:
                        poison(stored.content, report.detail if report else "malformed")
                    client.delete_message(stored)

    workers = [threading.Thread(target=work, name=f"pump-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return tally


def test_removals_on_table_storage_survive_an_azurite_restart(
    tmp_path: Path, durable_azurite: DurableAzurite
) -> None:
    from reclaim.adapters.queues import StorageQueue
    from reclaim.adapters.storage import StorageAccount
    from reclaim.adapters.tables import TableStore

    removals = STORAGE_REMOVALS
    host = host_queue_settings()
    plan = FaultPlan.for_removals(removals, host.batch_size)
    account = StorageAccount(connection_string=durable_azurite.connection_string)
    with FakeGraph() as graph:
        tenant = graph_tenant(graph, tmp_path, removals)
        store = TableStore.from_account(account, unique_name("f"))
        storage_queue = StorageQueue(account, unique_name("q"))
        storage_queue.create()
        clock = FastClock()
        ctx = usecases.Context(
            store,
            ScaledQueue(storage_queue),
            FaultRunAdapters(tenant),
            {tenant.policy.name: tenant.policy},
        )
        outcome = usecases.run_policy(ctx, tenant.policy, clock())
        assert outcome.run.enqueued == removals

        graph.clear_log()
        plan.inject(graph)
        done = threading.Event()
        outages = 0

        def watch() -> None:
            """Restart Azurite once a third of the removals are done; run the host's expiry
            timer, which re-decides the requests whose worker stopped before an outcome (their
            claims are handed back as DUE); end the run when every request is terminal (or give
            up after a deadline, failing the test)."""
            nonlocal outages
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                time.sleep(2.0)
                with contextlib.suppress(Exception):  # storage may be down right now
                    usecases.expire_requests(ctx, clock())
                with contextlib.suppress(Exception):
                    states = [r.state.value for r in store.requests(tenant.policy.name)]
                    finished = sum(s in ("REMOVED", "NOT_MEMBER", "FAILED") for s in states)
                    if finished >= removals // 3 and not outages:
                        outages += 1
                        durable_azurite.outage(seconds=OUTAGE)
                    elif finished == removals:
                        break
            done.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        tally = pump_storage_queue(
            ctx, storage_queue, host.batch_size, host.max_dequeue_count, clock, done
        )
        watcher.join()

        assert outages == 1
        assert sum(tally.errors.values()) > 0  # the outage reached the workers
        assert tally.statuses["malformed"] == 0
        assert_consistent(ctx, tenant, plan, removals, storage_faults=True)


def test_the_fault_plan_is_sized_for_the_removals() -> None:
    """Every storm must be reachable: the clean requests and faults fit in the DELETEs a run
    sends at the very least (one per removal)."""
    workers = host_queue_settings().batch_size
    for removals in (REMOVALS, STORAGE_REMOVALS):
        plan = FaultPlan.for_removals(removals, workers)
        assert sum(skip + len(faults) for skip, faults in plan.storms) < removals

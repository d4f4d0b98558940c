"""The removal path as it runs in Azure, on one machine: shared by the removal benchmark and the
fault runs (tests/e2e/test_faults.py).

- `GraphTenant`: a FakeGraph tenant with one licensing group of N users, the settings that point
  reclaim's real Graph adapter at it (secrets from the environment), and an enforce policy over it.
- `DelayQueue`: the removal queue as the Functions host uses it: a message sent with a delay is
  invisible until then, a message whose handler raised comes back after visibilityTimeout with its
  dequeue count raised, and goes to the poison list after maxDequeueCount.
- `run_workers`: `threads` workers doing what reclaim/functions/worker.py does with each message
  (usecases.perform_removal, final_attempt on the last delivery, FAILED and malformed messages to
  poison), until no message is waiting or in flight.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reclaim import usecases
from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.domain.policy import Policy, policies_from_data
from reclaim.domain.records import MessageError, RemovalMessage
from reclaim.errors import ConfigurationError
from reclaim.functions.app_context import QueueOptions
from reclaim.settings import Settings
from tests.fakes.graph import FakeGraph

HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
DEFAULT_BATCH_SIZE = 16  # the Functions host's default when host.json does not say


@dataclass(frozen=True)
class HostQueueSettings:
    batch_size: int
    max_dequeue_count: int
    visibility_timeout: float  # seconds before a failed message is delivered again
    source: str  # where the figures came from
    new_batch_threshold: int = DEFAULT_BATCH_SIZE // 2

    @property
    def most_in_flight(self) -> int:
        """What one instance runs at once: a new batch is fetched at newBatchThreshold."""
        return self.batch_size + self.new_batch_threshold


def host_queue_settings(path: Path = HOST_JSON) -> HostQueueSettings:
    """extensions.queues of host.json (the function app's own parser); the host's defaults, and a
    note saying so, when there is no host.json."""
    try:
        options = QueueOptions.from_host_json(path)
    except ConfigurationError:
        return HostQueueSettings(DEFAULT_BATCH_SIZE, 5, 0.0, f"no {path.name}: host defaults")
    return HostQueueSettings(
        options.batch_size,
        options.max_dequeue_count,
        options.visibility_timeout.total_seconds(),
        path.name,
        options.new_batch_threshold,
    )


# ---- the Graph tenant ---------------------------------------------------------------------------


@dataclass
class GraphTenant:
    graph: FakeGraph
    group: str
    user_ids: list[str]
    env: dict[str, str]
    settings: Settings
    policy: Policy

    @property
    def secrets(self) -> EnvironmentSecrets:
        return EnvironmentSecrets(self.env)


def graph_tenant(
    graph: FakeGraph, workdir: Path, members: int, env: Mapping[str, str] | None = None
) -> GraphTenant:
    """A licensing group of `members` users in `graph`, nobody using the application (everyone
    is a candidate), and an enforce policy without asking that may remove them all; `env` adds
    or overrides settings (e.g. the Table store)."""
    sku = graph.new_sku()
    group = graph.add_group("Bench licensing group", licences=[sku])
    user_ids = [
        graph.add_user(f"bench{n:06d}@contoso.test", user_id=f"00000000-0000-4000-8000-{n:012d}")
        for n in range(members)
    ]
    graph.add_member(group, *user_ids)
    usage = workdir / "usage.csv"
    usage.write_text(
        "upn,minutes\n" + "".join(f"bench{n:06d}@contoso.test,0\n" for n in range(members))
    )
    policy = policies_from_data(
        {
            "policies": [
                {
                    "name": "bench",
                    "application": "Bench App",
                    "mode": "enforce",
                    "ask_permission": False,
                    "directory": {"kind": "entra", "group": group},
                    "usage": {
                        "source": "csv",
                        "file": str(usage),
                        "user_column": "upn",
                        "usage_column": "minutes",
                        "match_on": "upn",
                        "threshold": "5m",
                    },
                    "limits": {"max_removals_per_run": members, "max_percent_of_group": 100},
                    "licence": {"monthly_cost": 10.0},
                }
            ]
        }
    )[0]
    full_env = {
        **graph.settings_env(),
        "RECLAIM_STATE_DB": str(workdir / "state.sqlite3"),
        "RECLAIM_POLICIES_FILE": str(workdir / "policies.yaml"),
        **(env or {}),
    }
    return GraphTenant(graph, group, user_ids, full_env, Settings.from_env(full_env), policy)


# ---- the queue ----------------------------------------------------------------------------------


@dataclass(order=True)
class _Waiting:
    visible_at: float
    sequence: int
    text: str = field(compare=False)
    dequeue_count: int = field(compare=False)


class DelayQueue:
    """reclaim.ports.WorkQueue with the host's delivery rules; messages cross it as JSON text."""

    def __init__(self, max_dequeue_count: int = 5, visibility_timeout: float = 0.0) -> None:
        self.max_dequeue_count = max_dequeue_count
        self.visibility_timeout = visibility_timeout
        self.poisoned: list[tuple[str, str]] = []  # (message text, why)
        self.sent = 0
        self.redelivered = 0
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._sequence = itertools.count()
        self._condition = threading.Condition()

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        seconds = delay.total_seconds() if delay else 0.0
        self._put(message.to_json(), 1, seconds)
        self.sent += 1

    def _put(self, text: str, dequeue_count: int, delay: float) -> None:
        with self._condition:
            heapq.heappush(
                self._waiting,
                _Waiting(time.monotonic() + delay, next(self._sequence), text, dequeue_count),
            )
            self._condition.notify()

    def take(self) -> tuple[str, int] | None:
        """The next visible message and its dequeue count; None once nothing is left anywhere."""
        with self._condition:
            while True:
                if self._waiting:
                    wait = self._waiting[0].visible_at - time.monotonic()
                    if wait <= 0:
                        item = heapq.heappop(self._waiting)
                        self._in_flight += 1
                        return item.text, item.dequeue_count
                    self._condition.wait(wait)
                elif self._in_flight == 0:
                    self._condition.notify_all()
                    return None
                else:
                    self._condition.wait()

    def settle(self, text: str, dequeue_count: int, *, failed: bool, why: str = "") -> None:
        """After a delivery: done, or (the handler raised) back after visibilityTimeout, or to
        poison when it was the last delivery."""
        if failed and dequeue_count < self.max_dequeue_count:
            self._put(text, dequeue_count + 1, self.visibility_timeout)
            self.redelivered += 1
        elif failed:
            self.poison(text, why)
        with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    def poison(self, text: str, why: str) -> None:
        with self._condition:
            self.poisoned.append((text, why))

    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting) + self._in_flight


# ---- the workers --------------------------------------------------------------------------------


@dataclass
class WorkerTally:
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # exception type -> deliveries
    finished_at: list[float] = field(default_factory=list)  # monotonic, per REMOVED report


def run_workers(
    ctx: usecases.Context,
    queue: DelayQueue,
    threads: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> WorkerTally:
    """Work the queue with `threads` workers as reclaim/functions/worker.py does, until empty."""
    tally = WorkerTally()
    lock = threading.Lock()

    def work() -> None:
        while (taken := queue.take()) is not None:
            text, dequeue_count = taken
            try:
                message = RemovalMessage.from_json(text)
                report = usecases.perform_removal(
                    ctx,
                    usecases.RemovalCommand(
                        message, final_attempt=dequeue_count >= queue.max_dequeue_count
                    ),
                    clock(),
                )
            except MessageError as error:
                queue.poison(text, f"malformed: {error}")
                queue.settle(text, dequeue_count, failed=False)
                continue
            except Exception as error:  # the host retries the message
                with lock:
                    tally.errors[type(error).__name__] += 1
                queue.settle(text, dequeue_count, failed=True, why=repr(error))
                continue
            if report.status is usecases.RemovalStatus.FAILED:
                queue.poison(text, report.detail)
            with lock:
                tally.statuses[report.status.value] += 1
                if report.status is usecases.RemovalStatus.REMOVED:
                    tally.finished_at.append(time.monotonic())
            queue.settle(text, dequeue_count, failed=False)

    workers = [threading.Thread(target=work, name=f"worker-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return tally


# ---- checks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    """Ledger against directory after a run."""

    requests: int
    not_terminal: list[str]  # request ids not REMOVED / NOT_MEMBER / FAILED
    lost: list[str]  # REMOVED or NOT_MEMBER in the store, still in the group
    unrecorded: list[str]  # gone from the group without a REMOVED / NOT_MEMBER ledger entry
    failed_but_gone: list[str]  # ledger FAILED, yet no longer a member
    duplicate_ledger: int  # more than one removal outcome for one request or one user
    outcomes: Counter[str]
    # REMOVED though the answer to our write was lost: a retry found the user gone after it
    confirmed_absent: int = 0

    @property
    def mislabelled(self) -> int:
        """Every user was a member before reclaim's first write, so a NOT_MEMBER is a lost
        answer mislabelled, and a FAILED user gone from the group a removal left unrecorded."""
        return self.outcomes["NOT_MEMBER"] + len(self.failed_but_gone)

    def line(self) -> str:
        return (
            f"requests {self.requests}, removed {self.outcomes['REMOVED']}, lost answers "
            f"recognised {self.confirmed_absent}, mislabelled {self.mislabelled}, duplicated "
            f"{self.duplicate_ledger}, non-terminal {len(self.not_terminal)}, lost {len(self.lost)}, "
            f"unrecorded {len(self.unrecorded)}"
        )

    @property
    def ok(self) -> bool:
        return not (
            self.not_terminal
            or self.lost
            or self.unrecorded
            or self.failed_but_gone
            or self.duplicate_ledger
            or self.mislabelled
        )


def reconcile(
    ctx: usecases.Context, policy: Policy, graph: FakeGraph, group: str, user_ids: Iterable[str]
) -> Reconciliation:
    terminal = {"REMOVED", "NOT_MEMBER", "FAILED"}
    requests = ctx.store.requests(policy.name)
    not_terminal = [r.id for r in requests if r.state.value not in terminal]
    ledger = [
        e
        for e in ctx.store.ledger(policy=policy.name)
        if e.outcome.value in ("REMOVED", "NOT_MEMBER", "FAILED")
    ]
    per_request = Counter(e.request_id for e in ledger)
    per_user = Counter(e.user.object_id for e in ledger)
    duplicates = sum(n - 1 for n in per_request.values() if n > 1) + sum(
        n - 1 for n in per_user.values() if n > 1
    )
    outcome_of = {e.user.object_id: e.outcome.value for e in ledger}
    lost, unrecorded, failed_but_gone = [], [], []
    for user_id in user_ids:
        member = graph.is_member(group, user_id)
        outcome = outcome_of.get(user_id)
        if outcome in ("REMOVED", "NOT_MEMBER") and member:
            lost.append(user_id)
        elif outcome is None and not member:
            unrecorded.append(user_id)
        elif outcome == "FAILED" and not member:
            failed_but_gone.append(user_id)
    return Reconciliation(
        len(requests),
        not_terminal,
        lost,
        unrecorded,
        failed_but_gone,
        duplicates,
        Counter(e.outcome.value for e in ledger),
        sum(
            e.outcome.value == "REMOVED" and e.detail.startswith("confirmed absent after our write")
            for e in ledger
        ),
    )

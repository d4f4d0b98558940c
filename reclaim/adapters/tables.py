"""The function app's state in Azure Table storage (azure-data-tables): reclaim.ports.StateStore.

The same contract as the SQLite store (tests/adapters/test_store_contract.py runs one suite over
both). Tables come from reclaim.settings.table_names(prefix); keys are chosen for the queries the
use cases make:

| table     | PartitionKey | RowKey                          | read by                           |
|-----------|--------------|---------------------------------|-----------------------------------|
| Requests  | request id   | "request"                       | get_request: one point read per   |
|           |              |                                 | removal (the hot path); requests()|
|           |              |                                 | scans with a server-side filter   |
| Runs      | policy       | run id                          | runs(), report                    |
| Decisions | policy       | state key "|" run id            | user_decisions: a range query     |
| Answers   | policy       | state key "|" request id "|" v  | latest_yes, policy_state          |
| Ledger    | policy       | entry id                        | ledger(), report                  |
| Members   | policy       | state key ("!baseline": when    | policy_state (first-seen dates)   |
|           |              | the first snapshot was taken)   |                                   |
| Cursors   | policy       | "schedule"                      | the scheduler's compare-and-set   |
|           |              | "lease"                         | the run lease (take_lease)        |
|           |              | "breaker:" directory kind       | the policy's circuit breaker      |
| Quarantine| source table | source keys                     | people: rows that did not read    |
|           |              |                                 | back (reclaim.adapters.quarantine)|

Keys are percent-encoded (`key()`), so characters Table keys forbid ('/', '\\', '#', '?',
control characters) and the '|' separator never appear raw. Compare-and-set uses the entity's
ETag (If-Match): update_request also checks the version field, advance_schedule the stored due
time, take_lease the stored holder and expiry. Idempotent inserts are create-or-conflict (409 -> False). Decisions and membership
snapshots are written in entity-group transactions of at most 100 operations per partition.
Datetimes are stored as Edm.DateTime (UTC) and read back timezone-aware.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from reclaim.adapters.quarantine import TableQuarantine
from reclaim.adapters.rows import (
    breaker_from_row,
    decision_from_row,
    edm_time,
    ledger_from_row,
    request_from_row,
    run_from_row,
    user_json,
)
from reclaim.adapters.storage import StorageAccount, storage_from_env
from reclaim.adapters.switch_log import TableSwitchLog
from reclaim.domain.breaker import Breaker
from reclaim.domain.lifecycle import OPEN_STATES, Request, RequestState
from reclaim.domain.model import Answer, PolicyState
from reclaim.domain.records import (
    DecisionRecord,
    Lease,
    LedgerEntry,
    RunRecord,
)
from reclaim.domain.switches import SwitchChange
from reclaim.settings import table_names

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

    from reclaim.settings import Settings

T = TypeVar("T")

TRANSACTION_LIMIT = 100  # operations per entity-group transaction
TRANSACTION_WORKERS = 4
BASELINE_ROW = "!baseline"  # '!' is always percent-encoded in keys, so no state key collides
REQUEST_ROW = "request"
CURSOR_ROW = "schedule"
LEASE_ROW = "lease"
BREAKER_ROW = "breaker:"  # + the directory kind, in the Cursors table
ETAG_CACHE_SIZE = 10_000
MAX_TEXT = 30_000  # a string property holds at most 64 KiB (32K UTF-16 characters)
_KEY_SAFE = "@:._-"


def key(value: str) -> str:
    """A value as a Table key: letters, digits and @:._- stay, everything else is %XX."""
    return quote(value, safe=_KEY_SAFE)


def _after(prefix: str) -> str:
    """The smallest key above every key starting with `prefix` + '|' ('}' follows '|')."""
    return prefix + "}"


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def _dt(value: Any) -> datetime | None:
    """A stored Edm.DateTime as a plain timezone-aware datetime (or None when absent)."""
    return None if value is None else edm_time(value)


class _Etags:
    """request id -> (version, ETag) from our own last read or write, so a claim after a read
    costs one request instead of two. Safe because every change to a request bumps its version:
    a stale ETag for the expected version cannot exist, and a wrong guess fails with 412."""

    def __init__(self, size: int = ETAG_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, request_id: str, version: int) -> str | None:
        with self._lock:
            item = self._items.get(request_id)
            return item[1] if item is not None and item[0] == version else None

    def put(self, request_id: str, version: int, etag: str | None) -> None:
        if not etag:
            return
        with self._lock:
            self._items[request_id] = (version, etag)
            self._items.move_to_end(request_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, request_id: str) -> None:
        with self._lock:
            self._items.pop(request_id, None)


class TableStore:
    """reclaim.ports.StateStore on Azure Table storage; thread-safe (clients are shared)."""

    def __init__(self, service: TableServiceClient, prefix: str, *, create: bool = True) -> None:
        names = table_names(prefix)
        self.table_names = names
        self._service = service
        (
            self._runs,
            self._decisions,
            self._requests,
            self._answers,
            self._ledger,
            self._members,
            self._cursors,
            switches,
            quarantine,
        ) = (service.get_table_client(name) for name in names)
        self._switches = TableSwitchLog(switches)
        self._quarantine = TableQuarantine(quarantine)
        self._etags = _Etags()
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        if create:
            self.create_tables()

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, **client_options: Any
    ) -> TableStore:
        return cls.from_account(storage_from_env(env), settings.table_prefix, **client_options)

    @classmethod
    def from_account(
        cls, account: StorageAccount, prefix: str, *, create: bool = True, **client_options: Any
    ) -> TableStore:
        return cls(account.table_service(**client_options), prefix, create=create)

    def create_tables(self) -> None:
        for name in self.table_names:
            self._service.create_table_if_not_exists(name)

    # ---- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _create(table: TableClient, entity: Mapping[str, Any]) -> dict[str, Any] | None:
        """Insert; None when an entity with these keys exists already (409)."""
        try:
            return table.create_entity(entity)
        except ResourceExistsError:
            return None

    @staticmethod
    def _replace_if(
        table: TableClient, entity: Mapping[str, Any], etag: str
    ) -> dict[str, Any] | None:
        """Replace only when the stored entity still has `etag`; None when it changed or left."""
        try:
            return table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        except HttpResponseError as error:
            if error.status_code in (404, 412):
                return None
            raise

    def _get(self, table: TableClient, partition: str, row: str) -> Any | None:
        try:
            return table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        except (ValueError, OverflowError) as error:  # stored in a form the SDK cannot decode
            self._quarantine.move(table, partition, row, f"the storage SDK cannot read it: {error}")
            return None

    def _query(
        self, table: TableClient, query_filter: str, parameters: dict[str, Any] | None = None
    ) -> Iterator[Any]:
        return iter(self._quarantine.entities(table, query_filter, parameters or {}))

    def _parsed(
        self, table: TableClient, entities: Iterable[Any], parse: Callable[[Any], T]
    ) -> list[T]:
        return self._quarantine.parsed(table, entities, parse)

    @staticmethod
    def _transact(table: TableClient, operations: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Run operations on one partition in transactions of at most 100, a few at once (a
        100,000-member snapshot is 1,000 transactions). A transaction that fails because another
        writer got there first (an entity to delete already gone) is replayed one operation at a
        time, ignoring such conflicts: every operation is idempotent."""

        def submit(chunk: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
            try:
                table.submit_transaction(
                    [
                        (kind, entity, {"mode": UpdateMode.REPLACE} if kind == "upsert" else {})
                        for kind, entity in chunk
                    ]
                )
            except TableTransactionError:
                for kind, entity in chunk:
                    if kind == "delete":
                        with contextlib.suppress(ResourceNotFoundError):
                            table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                    else:
                        table.upsert_entity(entity, mode=UpdateMode.REPLACE)

        chunks = [
            operations[start : start + TRANSACTION_LIMIT]
            for start in range(0, len(operations), TRANSACTION_LIMIT)
        ]
        if len(chunks) <= 1:
            for chunk in chunks:
                submit(chunk)
            return
        with ThreadPoolExecutor(min(TRANSACTION_WORKERS, len(chunks))) as pool:
            list(pool.map(submit, chunks))  # list(): re-raise the first failure

    @staticmethod
    def _filter(*clauses: str) -> str:
        return " and ".join(c for c in clauses if c)

    def _next_sequence(self) -> str:
        """Strictly increasing within this process and close to wall time across processes:
        keeps the ledger's order of entries written at the same `at`."""
        with self._sequence_lock:
            self._sequence = max(self._sequence + 1, time.time_ns())
            return f"{self._sequence:020d}"

    # ---- policy state ------------------------------------------------------------------------

    def atomic(self) -> AbstractContextManager[None]:
        """Table storage has no transaction across tables: the writes go one by one, in order."""
        return nullcontext()

    def policy_state(self, policy: str, now: datetime) -> PolicyState:
        baseline_at: datetime | None = None
        first_seen: dict[str, datetime] = {}
        for entity in self._query(self._members, "PartitionKey eq @p", {"p": key(policy)}):
            if entity["RowKey"] == BASELINE_ROW:
                baseline_at = _dt(entity["taken_at"])
            else:
                first_seen[entity["state_key"]] = _dt(entity["first_seen"])  # type: ignore[assignment]
        last_yes: dict[str, datetime] = {}
        for entity in self._query(
            self._answers, "PartitionKey eq @p and value eq 'yes'", {"p": key(policy)}
        ):
            at = _dt(entity["answered_at"])
            state_key = entity["state_key"]
            if at is not None and (state_key not in last_yes or at > last_yes[state_key]):
                last_yes[state_key] = at
        open_requests = {r.state_key: r.id for r in self.requests(policy, OPEN_STATES)}
        return PolicyState(
            baseline_at=baseline_at,
            first_seen=first_seen,
            last_yes=last_yes,
            open_requests=open_requests,
        )

    def record_run(
        self, run: RunRecord, decisions: Sequence[DecisionRecord], snapshot: Iterable[str] | None
    ) -> None:
        # The run is written last: a run that is listed has its decisions and snapshot stored.
        by_partition: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for d in decisions:
            entity: dict[str, Any] = {
                "PartitionKey": key(d.policy),
                "RowKey": f"{key(d.state_key)}|{key(d.run_id)}",
                "run_id": d.run_id,
                "policy": d.policy,
                "state_key": d.state_key,
                "user": user_json(d.user),
                "decision": d.decision,
                "reason": _text(d.reason),
                "evidence": _text(json.dumps(d.evidence)),
                "run_started_at": run.started_at,
            }
            by_partition.setdefault(entity["PartitionKey"], []).append(("upsert", entity))
        for operations in by_partition.values():
            self._transact(self._decisions, operations)
        if snapshot is not None:
            self._snapshot(run.policy, set(snapshot), run.started_at)
        self._runs.upsert_entity(
            {
                "PartitionKey": key(run.policy),
                "RowKey": key(run.id),
                "id": run.id,
                "policy": run.policy,
                "mode": run.mode,
                "started_at": run.started_at,
                "status": run.status.value,
                "members": run.members,
                "counts": json.dumps(run.counts),
                "asked": run.asked,
                "enqueued": run.enqueued,
                "halt_check": run.halt_check,
                "halt_reason": _text(run.halt_reason),
            },
            mode=UpdateMode.REPLACE,
        )

    def _snapshot(self, policy: str, keys: set[str], at: datetime) -> None:
        partition = key(policy)
        known: set[str] = set()
        has_baseline = False
        for entity in self._query(self._members, "PartitionKey eq @p", {"p": partition}):
            if entity["RowKey"] == BASELINE_ROW:
                has_baseline = True
            else:
                known.add(entity["state_key"])
        operations: list[tuple[str, Mapping[str, Any]]] = [
            ("delete", {"PartitionKey": partition, "RowKey": key(k)}) for k in sorted(known - keys)
        ]
        operations += [
            (
                "upsert",
                {"PartitionKey": partition, "RowKey": key(k), "state_key": k, "first_seen": at},
            )
            for k in sorted(keys - known)
        ]
        self._transact(self._members, operations)
        if not has_baseline:
            self._create(
                self._members, {"PartitionKey": partition, "RowKey": BASELINE_ROW, "taken_at": at}
            )

    # ---- requests ----------------------------------------------------------------------------

    @staticmethod
    def _request_entity(r: Request) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": key(r.id),
            "RowKey": REQUEST_ROW,
            "id": r.id,
            "policy": r.policy,
            "group": r.group,
            "user": user_json(r.user),
            "state_key": r.state_key,
            "run_id": r.run_id,
            "state": r.state.value,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "reason": _text(r.reason),
            "detail": _text(r.detail),
            "version": r.version,
            "attempts": r.attempts,
            "unanswered_writes": r.unanswered_writes,
        }
        if r.deadline is not None:
            entity["deadline"] = r.deadline
        if r.queue_reason is not None:
            entity["queue_reason"] = r.queue_reason.value
        return entity

    @staticmethod
    def _request(e: Mapping[str, Any]) -> Request:
        return request_from_row(e, _dt)

    def add_request(self, request: Request) -> bool:
        written = self._create(self._requests, self._request_entity(request))
        if written is None:
            return False
        self._etags.put(request.id, request.version, written.get("etag"))
        return True

    def update_request(self, request: Request) -> bool:
        expected = request.version - 1
        etag = self._etags.get(request.id, expected)
        if etag is None:
            stored = self._get(self._requests, key(request.id), REQUEST_ROW)
            if stored is None or int(stored["version"]) != expected:
                return False
            etag = stored.metadata["etag"]
        written = self._replace_if(self._requests, self._request_entity(request), etag)
        if written is None:
            self._etags.drop(request.id)
            return False
        self._etags.put(request.id, request.version, written.get("etag"))
        return True

    def get_request(self, request_id: str) -> Request | None:
        stored = self._get(self._requests, key(request_id), REQUEST_ROW)
        if stored is None:
            return None
        parsed = self._parsed(self._requests, [stored], self._request)
        if not parsed:
            return None
        request = parsed[0]
        self._etags.put(request.id, request.version, stored.metadata.get("etag"))
        return request

    def requests(
        self, policy: str | None = None, states: Iterable[RequestState] | None = None
    ) -> list[Request]:
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if policy is not None:
            clauses.append("policy eq @policy")
            parameters["policy"] = policy
        if states is not None:
            wanted = sorted(s.value for s in states)
            if not wanted:
                return []
            names = [f"s{i}" for i in range(len(wanted))]
            # spaces around the parentheses: the SDK finds @names by splitting on spaces
            clauses.append("( " + " or ".join(f"state eq @{n}" for n in names) + " )")
            parameters.update(zip(names, wanted, strict=True))
        found = self._parsed(
            self._requests,
            self._query(self._requests, self._filter(*clauses), parameters),
            self._request,
        )
        return sorted(found, key=lambda r: (r.created_at, r.id))

    # ---- answers -----------------------------------------------------------------------------

    def record_answer(self, policy: str, state_key: str, answer: Answer) -> bool:
        entity = {
            "PartitionKey": key(policy),
            "RowKey": f"{key(state_key)}|{key(answer.request_id)}|{answer.value.value}",
            "request_id": answer.request_id,
            "value": answer.value.value,
            "answered_at": answer.answered_at,
            "source": answer.source,
            "policy": policy,
            "state_key": state_key,
        }
        return self._create(self._answers, entity) is not None

    def latest_yes(self, policy: str, state_key: str) -> datetime | None:
        prefix = key(state_key) + "|"
        times = [
            _dt(e["answered_at"])
            for e in self._query(
                self._answers,
                "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi and value eq @yes",
                {"p": key(policy), "lo": prefix, "hi": _after(key(state_key)), "yes": "yes"},
            )
        ]
        return max((t for t in times if t is not None), default=None)

    # ---- schedule ----------------------------------------------------------------------------

    def schedule_cursor(self, policy: str) -> datetime | None:
        stored = self._get(self._cursors, key(policy), CURSOR_ROW)
        return None if stored is None else _dt(stored["due"])

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        entity = {"PartitionKey": key(policy), "RowKey": CURSOR_ROW, "policy": policy, "due": due}
        if expected is None:
            return self._create(self._cursors, entity) is not None
        stored = self._get(self._cursors, key(policy), CURSOR_ROW)
        if stored is None or _dt(stored["due"]) != expected:
            return False
        return self._replace_if(self._cursors, entity, stored.metadata["etag"]) is not None

    # ---- run lease ---------------------------------------------------------------------------

    def take_lease(self, policy: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        partition = key(policy)
        while True:
            stored = self._get(self._cursors, partition, LEASE_ROW)
            current = None if stored is None else self._lease(policy, stored)
            if current is not None and current.holder != holder and now < current.expires:
                return current
            since = current.since if current is not None and current.holder == holder else now
            lease = Lease(policy, holder, since, now + ttl)
            entity = {
                "PartitionKey": partition,
                "RowKey": LEASE_ROW,
                "policy": policy,
                "holder": holder,
                "since": lease.since,
                "expires": lease.expires,
            }
            # Create-or-409 when there is none; replace If-Match the ETag we read otherwise:
            # a caller that lost either race reads again and sees the winner's lease.
            if stored is None:
                written = self._create(self._cursors, entity)
            else:
                written = self._replace_if(self._cursors, entity, stored.metadata["etag"])
            if written is not None:
                return lease

    @staticmethod
    def _lease(policy: str, entity: Mapping[str, Any]) -> Lease:
        since, expires = _dt(entity["since"]), _dt(entity["expires"])
        if since is None or expires is None:
            raise ValueError(f"the lease of {policy!r} has no since or expires")
        return Lease(policy, entity["holder"], since, expires)

    def release_lease(self, policy: str, holder: str) -> None:
        stored = self._get(self._cursors, key(policy), LEASE_ROW)
        if stored is None or stored["holder"] != holder:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._cursors.delete_entity(
                key(policy),
                LEASE_ROW,
                etag=stored.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )

    # ---- circuit breakers --------------------------------------------------------------------

    def get_breaker(self, policy: str, directory: str) -> Breaker | None:
        stored = self._get(self._cursors, key(policy), BREAKER_ROW + key(directory))
        return None if stored is None else breaker_from_row(stored, _dt)

    def save_breaker(self, breaker: Breaker) -> bool:
        entity: dict[str, Any] = {
            "PartitionKey": key(breaker.policy),
            "RowKey": BREAKER_ROW + key(breaker.directory),
            "policy": breaker.policy,
            "directory": breaker.directory,
            "is_open": breaker.is_open,
            "kind": breaker.kind.value if breaker.kind else "",
            "reason": _text(breaker.reason),
            "permission": breaker.permission,
            "outages": breaker.outages,
            "version": breaker.version,
        }
        for name in ("opened_at", "retry_at"):
            if (moment := getattr(breaker, name)) is not None:
                entity[name] = moment
        if breaker.version == 1:
            return self._create(self._cursors, entity) is not None
        stored = self._get(self._cursors, entity["PartitionKey"], entity["RowKey"])
        if stored is None or int(stored["version"]) != breaker.version - 1:
            return False
        return self._replace_if(self._cursors, entity, stored.metadata["etag"]) is not None

    def breakers(self) -> list[Breaker]:
        found = self._query(
            self._cursors,
            "RowKey ge @lo and RowKey lt @hi",
            {"lo": BREAKER_ROW, "hi": BREAKER_ROW[:-1] + chr(ord(BREAKER_ROW[-1]) + 1)},
        )
        return sorted(
            (breaker_from_row(e, _dt) for e in found), key=lambda b: (b.policy, b.directory)
        )

    # ---- ledger, runs, decisions -------------------------------------------------------------

    def append_ledger(self, entry: LedgerEntry) -> bool:
        entity: dict[str, Any] = {
            "PartitionKey": key(entry.policy),
            "RowKey": key(entry.id),
            "id": entry.id,
            "at": entry.at,
            "policy": entry.policy,
            "group": entry.group,
            "request_id": entry.request_id,
            "run_id": entry.run_id,
            "user": user_json(entry.user),
            "outcome": entry.outcome.value,
            "detail": _text(entry.detail),
            "monthly_cost": float(entry.monthly_cost),
            "currency": entry.currency,
            "sequence": self._next_sequence(),
        }
        if entry.seat_freed is not None:
            entity["seat_freed"] = entry.seat_freed
        return self._create(self._ledger, entity) is not None

    def ledger(self, since: datetime | None = None, policy: str | None = None) -> list[LedgerEntry]:
        query_filter, parameters = self._time_filter("at", since, policy)
        entries = self._parsed(
            self._ledger,
            self._query(self._ledger, query_filter, parameters),
            lambda e: (e["sequence"], ledger_from_row(e, _dt)),
        )
        return [entry for _, entry in sorted(entries, key=lambda item: (item[1].at, item[0]))]

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]:
        query_filter, parameters = self._time_filter("started_at", since, policy)
        found = self._parsed(
            self._runs,
            self._query(self._runs, query_filter, parameters),
            lambda e: run_from_row(e, _dt),
        )
        return sorted(found, key=lambda r: (r.started_at, r.id))

    def user_decisions(self, policy: str, state_key: str) -> list[DecisionRecord]:
        found = self._query(
            self._decisions,
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            {"p": key(policy), "lo": key(state_key) + "|", "hi": _after(key(state_key))},
        )
        ordered = sorted(found, key=lambda e: (_dt(e["run_started_at"]), e["run_id"]))
        return self._parsed(self._decisions, ordered, decision_from_row)

    @staticmethod
    def _time_filter(
        column: str, since: datetime | None, policy: str | None
    ) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if policy is not None:
            clauses.append("PartitionKey eq @p")
            parameters["p"] = key(policy)
        if since is not None:
            clauses.append(f"{column} ge @since")
            parameters["since"] = since
        return " and ".join(clauses), parameters

    # ---- operators' switches (reclaim.adapters.switch_log) -----------------------------------

    def record_switch(self, change: SwitchChange) -> None:
        self._switches.record(change)

    def latest_switch(self, name: str) -> SwitchChange | None:
        return next(iter(self._switches.history(name, 1)), None)

    def switch_history(self, name: str, limit: int = 20) -> list[SwitchChange]:
        return self._switches.history(name, limit)

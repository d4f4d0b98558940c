"""Removal requests in Table storage: one partition per policy, indexed by state and by user.

| PartitionKey  | RowKey                         | what                                         |
|---------------|--------------------------------|----------------------------------------------|
| "!" + policy  | "r|" id                        | the request (get_request, compare-and-set)   |
|               | "s|" state "|" id              | a copy per state: requests(policy, states)   |
|               | "u|" identifier "|" id         | a copy per user identifier: an answer by user|
| id            | "request"                      | the locator: which policy's partition        |

The copies live in the request's partition, so one entity-group transaction writes the request
and its index entries together (the request If-Match its ETag): the index is never stale. A
query by policy and state reads exactly the requests in those states, and an answer by policy
and user reads that user's few requests, however many the policy has had.

Before this layout a request was one entity (PartitionKey id, RowKey "request"). The first store
of a process checks a marker (Cursors "!layout"/"requests"); without it, it copies every old
entity into the new layout and turns it into a locator (If-Match, so a concurrent change is
copied again), then sets the marker. get_request reads an old entity as it is meanwhile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Generic, TypeVar

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from reclaim.adapters.rows import approval_json, request_from_row, user_json
from reclaim.adapters.tables.access import (
    WRITE_WORKERS,
    Operation,
    TableAccess,
    conflict,
    operation,
)
from reclaim.adapters.tables.keys import dt, key, prefix_range, text
from reclaim.domain.lifecycle import FINAL_STATES, Request, RequestState
from reclaim.domain.model import normalise_key

K = TypeVar("K")
V = TypeVar("V")

LOCATOR_ROW = "request"  # also the RowKey of a request stored in the old layout
LAYOUT_PARTITION, LAYOUT_ROW = "!layout", "requests"  # in the Cursors table
LAYOUT = 2
CACHE_SIZE = 10_000


class _Lru(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: K) -> V | None:
        with self._lock:
            return self._items.get(name)

    def put(self, name: K, value: V) -> None:
        with self._lock:
            self._items[name] = value
            self._items.move_to_end(name)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, name: K) -> None:
        with self._lock:
            self._items.pop(name, None)


def partition(policy: str) -> str:
    return "!" + key(policy)


def identifiers(request: Request) -> list[str]:
    """The user's identifiers as index keys, normalised the way User.matches compares them."""
    return sorted({normalise_key(v) for v in request.user.identifiers().values()} - {""})


def _state_row(state: RequestState | str, request_id: str) -> str:
    return f"s|{state}|{key(request_id)}"


class RequestTable:
    def __init__(self, access: TableAccess, table: TableClient, cursors: TableClient) -> None:
        self._access = access
        self._table = table
        self._cursors = cursors
        # request id -> (version, ETag, state) from our own last read or write, so a claim after
        # a read costs one request: every change bumps the version, so a stale ETag for the
        # expected version cannot exist, and a wrong guess fails with 412.
        self._etags: _Lru[str, tuple[int, str, str]] = _Lru()
        self._policies: _Lru[str, str] = _Lru()  # request id -> policy (never changes)
        self._migrated = False
        self._migrating = threading.Lock()

    # ---- entities ----------------------------------------------------------------------------

    @staticmethod
    def _entity(r: Request, partition_key: str, row_key: str) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": partition_key,
            "RowKey": row_key,
            "id": r.id,
            "policy": r.policy,
            "group": r.group,
            "user": user_json(r.user),
            "state_key": r.state_key,
            "run_id": r.run_id,
            "state": r.state.value,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "reason": text(r.reason),
            "detail": text(r.detail),
            "version": r.version,
            "attempts": r.attempts,
            "unanswered_writes": r.unanswered_writes,
        }
        if r.deadline is not None:
            entity["deadline"] = r.deadline
        if r.not_before is not None:
            entity["not_before"] = r.not_before
        if r.write_sent_at is not None:
            entity["write_sent_at"] = r.write_sent_at
        if r.queue_reason is not None:
            entity["queue_reason"] = r.queue_reason.value
        if r.approval is not None:
            entity["approval"] = approval_json(r.approval)
        return entity

    def _copies(self, r: Request) -> list[dict[str, Any]]:
        """The index entries: one per state (the current one) and one per user identifier."""
        p = partition(r.policy)
        rows = [_state_row(r.state, r.id)] + [f"u|{key(i)}|{key(r.id)}" for i in identifiers(r)]
        return [self._entity(r, p, row) for row in rows]

    def _primary(self, r: Request) -> dict[str, Any]:
        return self._entity(r, partition(r.policy), f"r|{key(r.id)}")

    def _locator(self, r: Request) -> dict[str, Any]:
        return {
            "PartitionKey": key(r.id),
            "RowKey": LOCATOR_ROW,
            "policy": r.policy,
            "layout": LAYOUT,
        }

    @staticmethod
    def _request(e: Mapping[str, Any]) -> Request:
        return request_from_row(e, dt)

    # ---- writes ------------------------------------------------------------------------------

    def add(self, request: Request) -> bool:
        self.migrate()
        operations: list[Operation] = [("create", self._primary(request))]
        operations += [("upsert", copy) for copy in self._copies(request)]
        try:
            results = self._table.submit_transaction([operation(k, e) for k, e in operations])
        except TableTransactionError as error:
            if not conflict(error):
                raise
            added = False  # it exists: a retry of an add whose locator may not have been written
        else:
            added = True
            etag = results[0].get("etag")
            if etag:
                self._etags.put(request.id, (request.version, etag, request.state.value))
        self._table.upsert_entity(self._locator(request), mode=UpdateMode.REPLACE)
        self._policies.put(request.id, request.policy)
        return added

    def update(self, request: Request) -> bool:
        self.migrate()
        expected = request.version - 1
        cached = self._etags.get(request.id)
        if cached is not None and cached[0] == expected:
            etag, state = cached[1], cached[2]
        else:
            stored = self._access.get(
                self._table, partition(request.policy), f"r|{key(request.id)}"
            )
            if stored is None or int(stored["version"]) != expected:
                return False
            etag, state = stored.metadata["etag"], stored["state"]
        operations: list[tuple[Any, ...]] = [
            (
                "update",
                self._primary(request),
                {
                    "mode": UpdateMode.REPLACE,
                    "etag": etag,
                    "match_condition": MatchConditions.IfNotModified,
                },
            )
        ]
        if state != request.state.value:
            operations.append(
                (
                    "delete",
                    {
                        "PartitionKey": partition(request.policy),
                        "RowKey": _state_row(state, request.id),
                    },
                )
            )
        operations += [
            ("upsert", copy, {"mode": UpdateMode.REPLACE}) for copy in self._copies(request)
        ]
        try:
            results = self._table.submit_transaction(operations)
        except TableTransactionError as error:
            self._etags.drop(request.id)
            if conflict(error):
                return False
            raise
        new_etag = results[0].get("etag")
        if new_etag:
            self._etags.put(request.id, (request.version, new_etag, request.state.value))
        return True

    # ---- reads -------------------------------------------------------------------------------

    def get(self, request_id: str, policy: str | None = None) -> Request | None:
        """One point read when the policy is given or known here, else the locator first."""
        guess = policy or self._policies.get(request_id)
        if guess is not None:
            stored = self._access.get(self._table, partition(guess), f"r|{key(request_id)}")
            if stored is not None:
                return self._remember(stored)
        locator = self._access.get(self._table, key(request_id), LOCATOR_ROW)
        if locator is None:
            return None
        if "layout" not in locator:  # stored in the old layout, not migrated yet
            return self._remember(locator)
        found = str(locator["policy"])
        if found == guess:
            return None  # read there already
        self._policies.put(request_id, found)
        stored = self._access.get(self._table, partition(found), f"r|{key(request_id)}")
        return None if stored is None else self._remember(stored)

    def _remember(self, stored: Any) -> Request | None:
        parsed = self._access.parsed(self._table, [stored], self._request)
        if not parsed:
            return None
        request = parsed[0]
        if etag := stored.metadata.get("etag"):
            self._etags.put(request.id, (request.version, etag, request.state.value))
        return request

    def find(self, policy: str | None, states: Iterable[RequestState] | None) -> list[Request]:
        """By policy and state: one range query per state in the policy's partition. Without a
        policy (reports, recovering claims) the same ranges over every policy's partition."""
        self.migrate()
        prefixes = ["r|"] if states is None else [f"s|{s.value}|" for s in sorted(set(states))]
        found: list[Request] = []
        for prefix in prefixes:
            clauses = "RowKey ge @lo and RowKey lt @hi"
            parameters: dict[str, Any] = prefix_range(prefix)
            if policy is not None:
                clauses = "PartitionKey eq @p and " + clauses
                parameters["p"] = partition(policy)
            else:  # only the policies' partitions ('!'), never locators
                clauses = "PartitionKey ge '!' and PartitionKey lt '\"' and " + clauses
            entities = self._access.query(self._table, clauses, parameters)
            found += self._access.parsed(self._table, entities, self._request)
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def of_user(self, policy: str, identifier: str) -> list[Request]:
        """The policy's requests for the user with this identifier (any of theirs), oldest first."""
        self.migrate()
        wanted = normalise_key(identifier)
        if not wanted:
            return []
        entities = self._access.query(
            self._table,
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            {"p": partition(policy), **prefix_range(f"u|{key(wanted)}|")},
        )
        found = self._access.parsed(self._table, entities, self._request)
        return sorted(
            (r for r in found if r.user.matches(identifier)), key=lambda r: (r.created_at, r.id)
        )

    # ---- retention ---------------------------------------------------------------------------

    def forget_finished(self, policy: str, before: datetime) -> int:
        """Delete the policy's finished requests last changed before `before` (their ledger
        entries stay): the request, its index entries, then its locator."""
        self.migrate()
        finished: list[Request] = []
        for state in sorted(FINAL_STATES):
            entities = self._access.query(
                self._table,
                "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi and updated_at lt @before",
                {"p": partition(policy), **prefix_range(f"s|{state.value}|"), "before": before},
            )
            finished += self._access.parsed(self._table, entities, self._request)

        def forget(request: Request) -> None:
            rows = [f"r|{key(request.id)}"] + [e["RowKey"] for e in self._copies(request)]
            self._access.transact(
                self._table,
                [("delete", {"PartitionKey": partition(policy), "RowKey": row}) for row in rows],
            )
            self._access.transact(
                self._table, [("delete", {"PartitionKey": key(request.id), "RowKey": LOCATOR_ROW})]
            )
            self._etags.drop(request.id)
            self._policies.drop(request.id)

        with ThreadPoolExecutor(WRITE_WORKERS) as pool:
            list(pool.map(forget, finished))
        return len(finished)

    # ---- the old layout ----------------------------------------------------------------------

    def migrate(self) -> None:
        """Copy requests stored in the old layout into the new one (once per store; one point
        read of the marker after that)."""
        if self._migrated:
            return
        with self._migrating:
            if self._migrated:
                return
            if self._access.get(self._cursors, LAYOUT_PARTITION, LAYOUT_ROW) is None:
                while self._migrate_some():
                    pass
                self._access.create(
                    self._cursors,
                    {"PartitionKey": LAYOUT_PARTITION, "RowKey": LAYOUT_ROW, "layout": LAYOUT},
                )
            self._migrated = True

    def _migrate_some(self) -> bool:
        """One pass over the old entities; True when one changed while it was copied."""
        changed = False
        for old in self._access.query(self._table, "RowKey eq @row", {"row": LOCATOR_ROW}):
            if "layout" in old:
                continue
            parsed = self._access.parsed(self._table, [old], self._request)
            if not parsed:
                continue
            request = parsed[0]
            copied = self._access.get(
                self._table, partition(request.policy), f"r|{key(request.id)}"
            )
            if copied is None or int(copied["version"]) < request.version:  # never go back
                operations: list[Operation] = [("upsert", self._primary(request))]
                operations += [("upsert", copy) for copy in self._copies(request)]
                if copied is not None and copied["state"] != request.state.value:
                    row = _state_row(copied["state"], request.id)
                    operations.append(
                        ("delete", {"PartitionKey": partition(request.policy), "RowKey": row})
                    )
                self._access.transact(self._table, operations)
            if (
                self._access.replace_if(self._table, self._locator(request), old.metadata["etag"])
                is None
            ):
                changed = True
        return changed

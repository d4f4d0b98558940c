"""The Cursors table (one partition per policy): the schedule's compare-and-set, the run lease
and the circuit breakers."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from reclaim.adapters.rows import breaker_from_row
from reclaim.adapters.tables.access import TableAccess
from reclaim.adapters.tables.keys import dt, key, text
from reclaim.domain.breaker import Breaker
from reclaim.domain.records import Lease

CURSOR_ROW = "schedule"
LEASE_ROW = "lease"
BREAKER_ROW = "breaker:"  # + the directory kind
RETENTION_ROW = "retention"  # where the last compaction ended (StateStore.compact)


class CursorTable:
    def __init__(self, access: TableAccess, table: TableClient) -> None:
        self._access = access
        self._table = table

    # ---- schedule ----------------------------------------------------------------------------

    def schedule_cursor(self, policy: str) -> datetime | None:
        stored = self._access.get(self._table, key(policy), CURSOR_ROW)
        return None if stored is None else dt(stored["due"])

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        entity = {"PartitionKey": key(policy), "RowKey": CURSOR_ROW, "policy": policy, "due": due}
        if expected is None:
            return self._access.create(self._table, entity) is not None
        stored = self._access.get(self._table, key(policy), CURSOR_ROW)
        if stored is None or dt(stored["due"]) != expected:
            return False
        return self._access.replace_if(self._table, entity, stored.metadata["etag"]) is not None

    # ---- retention ---------------------------------------------------------------------------

    def compacted_through(self, policy: str) -> datetime | None:
        stored = self._access.get(self._table, key(policy), RETENTION_ROW)
        return None if stored is None else dt(stored["through"])

    def set_compacted_through(self, policy: str, through: datetime) -> None:
        self._table.upsert_entity(
            {"PartitionKey": key(policy), "RowKey": RETENTION_ROW, "through": through},
            mode=UpdateMode.REPLACE,
        )

    # ---- run lease ---------------------------------------------------------------------------

    def take_lease(self, policy: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        partition = key(policy)
        while True:
            stored = self._access.get(self._table, partition, LEASE_ROW)
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
                written = self._access.create(self._table, entity)
            else:
                written = self._access.replace_if(self._table, entity, stored.metadata["etag"])
            if written is not None:
                return lease

    @staticmethod
    def _lease(policy: str, entity: Mapping[str, Any]) -> Lease:
        since, expires = dt(entity["since"]), dt(entity["expires"])
        if since is None or expires is None:
            raise ValueError(f"the lease of {policy!r} has no since or expires")
        return Lease(policy, entity["holder"], since, expires)

    def release_lease(self, policy: str, holder: str) -> None:
        stored = self._access.get(self._table, key(policy), LEASE_ROW)
        if stored is None or stored["holder"] != holder:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.delete_entity(
                key(policy),
                LEASE_ROW,
                etag=stored.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )

    # ---- circuit breakers --------------------------------------------------------------------

    def get_breaker(self, policy: str, directory: str) -> Breaker | None:
        stored = self._access.get(self._table, key(policy), BREAKER_ROW + key(directory))
        return None if stored is None else breaker_from_row(stored, dt)

    def save_breaker(self, breaker: Breaker) -> bool:
        entity: dict[str, Any] = {
            "PartitionKey": key(breaker.policy),
            "RowKey": BREAKER_ROW + key(breaker.directory),
            "policy": breaker.policy,
            "directory": breaker.directory,
            "is_open": breaker.is_open,
            "kind": breaker.kind.value if breaker.kind else "",
            "reason": text(breaker.reason),
            "permission": breaker.permission,
            "outages": breaker.outages,
            "version": breaker.version,
        }
        for name in ("opened_at", "retry_at"):
            if (moment := getattr(breaker, name)) is not None:
                entity[name] = moment
        if breaker.version == 1:
            return self._access.create(self._table, entity) is not None
        stored = self._access.get(self._table, entity["PartitionKey"], entity["RowKey"])
        if stored is None or int(stored["version"]) != breaker.version - 1:
            return False
        return self._access.replace_if(self._table, entity, stored.metadata["etag"]) is not None

    def breakers(self) -> list[Breaker]:
        found = self._access.query(
            self._table,
            "RowKey ge @lo and RowKey lt @hi",
            {"lo": BREAKER_ROW, "hi": BREAKER_ROW[:-1] + chr(ord(BREAKER_ROW[-1]) + 1)},
        )
        return sorted(
            (breaker_from_row(e, dt) for e in found), key=lambda b: (b.policy, b.directory)
        )

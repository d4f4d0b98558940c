"""First-seen dates of a policy's members (the Members table, one partition per policy).

A run reads the partition once: policy_state keeps what it read, and the run's snapshot (the
same run, under the policy's lease) writes only the difference from it. New keys are created,
never overwritten, so even a stale read cannot move a first-seen date."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from azure.data.tables import TableClient

from reclaim.adapters.tables.access import Operation, TableAccess
from reclaim.adapters.tables.keys import dt, key

BASELINE_ROW = "!baseline"  # '!' is always percent-encoded in keys, so no state key collides


class MemberTable:
    def __init__(self, access: TableAccess, table: TableClient) -> None:
        self._access = access
        self._table = table
        self._read: dict[str, tuple[frozenset[str], bool]] = {}  # policy -> (keys, baseline?)
        self._lock = threading.Lock()

    def first_seen(self, policy: str) -> tuple[datetime | None, dict[str, datetime]]:
        """(when the first snapshot was taken, state key -> first seen)."""
        baseline_at: datetime | None = None
        seen: dict[str, datetime] = {}
        for entity in self._access.query(self._table, "PartitionKey eq @p", {"p": key(policy)}):
            if entity["RowKey"] == BASELINE_ROW:
                baseline_at = dt(entity["taken_at"])
            elif (at := dt(entity["first_seen"])) is not None:
                seen[entity["state_key"]] = at
        with self._lock:
            self._read[policy] = (frozenset(seen), baseline_at is not None)
        return baseline_at, seen

    def snapshot(self, policy: str, keys: set[str], at: datetime) -> None:
        with self._lock:
            read = self._read.pop(policy, None)
        if read is None:  # a snapshot without this store's policy_state first: read it now
            self.first_seen(policy)
            with self._lock:
                read = self._read.pop(policy)
        known, has_baseline = read
        p = key(policy)
        operations: list[Operation] = [
            ("delete", {"PartitionKey": p, "RowKey": key(k)}) for k in sorted(known - keys)
        ]
        operations += [("create", self._row(p, k, at)) for k in sorted(keys - known)]
        self._access.transact(self._table, operations)
        if not has_baseline:
            self._access.create(
                self._table, {"PartitionKey": p, "RowKey": BASELINE_ROW, "taken_at": at}
            )

    @staticmethod
    def _row(partition: str, state_key: str, at: datetime) -> Mapping[str, object]:
        return {
            "PartitionKey": partition,
            "RowKey": key(state_key),
            "state_key": state_key,
            "first_seen": at,
        }

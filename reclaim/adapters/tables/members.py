"""First-seen dates of a policy's members (the Members table).

| PartitionKey        | RowKey      | what                                                     |
|---------------------|-------------|----------------------------------------------------------|
| policy              | "!baseline" | when the first snapshot was taken; `partitions`: n       |
| policy "|" b (b < n)| state key   | first seen (b: a hash of the state key)                  |
| policy              | state key   | first seen, for a policy whose baseline has no n (stored |
|                     |             | before partitions; it keeps that layout)                  |

n is fixed by the first snapshot, ceil(members / 1,000), so no partition holds the whole group
(Table storage serves up to 2,000 entities a second per partition; Azurite slows down as a
partition grows). A run reads each partition once: policy_state keeps what it read, and the
run's snapshot (the same run, under the policy's lease) writes only the difference. New keys are
created, never overwritten, so even a stale read cannot move a first-seen date."""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from reclaim.adapters.tables.access import WRITE_WORKERS, Operation, TableAccess
from reclaim.adapters.tables.keys import dt, key

BASELINE_ROW = "!baseline"  # '!' is always percent-encoded in keys, so no state key collides
MEMBERS_PER_PARTITION = 1_000


@dataclass(frozen=True)
class _Read:
    baseline_at: datetime | None
    partitions: int  # 0: the policy's own partition (the layout before partitions)
    seen: dict[str, datetime]


class MemberTable:
    def __init__(self, access: TableAccess, table: TableClient) -> None:
        self._access = access
        self._table = table
        self._read: dict[str, _Read] = {}  # policy -> what its last policy_state read
        self._lock = threading.Lock()

    def first_seen(self, policy: str) -> tuple[datetime | None, dict[str, datetime]]:
        """(when the first snapshot was taken, state key -> first seen)."""
        read = self._read_all(policy)
        with self._lock:
            self._read[policy] = read
        return read.baseline_at, read.seen

    def _read_all(self, policy: str) -> _Read:
        baseline = self._access.get(self._table, key(policy), BASELINE_ROW)
        if baseline is None:
            return _Read(None, 0, {})
        partitions = int(baseline.get("partitions") or 0)
        names = [f"{key(policy)}|{b}" for b in range(partitions)] or [key(policy)]
        seen: dict[str, datetime] = {}
        workers = min(WRITE_WORKERS, len(names))
        with ThreadPoolExecutor(workers) as pool:
            for rows in pool.map(lambda p: list(self._rows(p)), names):
                seen.update(rows)
        return _Read(dt(baseline["taken_at"]), partitions, seen)

    def _rows(self, partition: str) -> Iterator[tuple[str, datetime]]:
        for entity in self._access.query(self._table, "PartitionKey eq @p", {"p": partition}):
            if entity["RowKey"] != BASELINE_ROW and (at := dt(entity["first_seen"])) is not None:
                yield entity["state_key"], at

    def snapshot(self, policy: str, keys: set[str], at: datetime) -> None:
        with self._lock:
            read = self._read.pop(policy, None)
        if read is None:  # a snapshot without this store's policy_state first: read it now
            read = self._read_all(policy)
        partitions = read.partitions
        if read.baseline_at is None:
            # The baseline first, with the partitions: rows lost to a crash after it only make
            # members look new (protected), never old.
            partitions = max(1, math.ceil(len(keys) / MEMBERS_PER_PARTITION))
            baseline = {"PartitionKey": key(policy), "RowKey": BASELINE_ROW, "taken_at": at}
            if self._access.create(self._table, {**baseline, "partitions": partitions}) is None:
                stored = self._access.get(self._table, key(policy), BASELINE_ROW)  # another's
                partitions = int(stored.get("partitions") or 0) if stored else partitions
        by_partition: dict[str, list[Operation]] = {}
        for k in sorted(set(read.seen) - keys):
            p = self._partition(policy, k, partitions)
            by_partition.setdefault(p, []).append(("delete", {"PartitionKey": p, "RowKey": key(k)}))
        for k in sorted(keys - set(read.seen)):
            p = self._partition(policy, k, partitions)
            by_partition.setdefault(p, []).append(("create", self._row(p, k, at)))
        self._access.transact_many(self._table, list(by_partition.values()))

    @staticmethod
    def _partition(policy: str, state_key: str, partitions: int) -> str:
        if not partitions:
            return key(policy)
        return f"{key(policy)}|{zlib.crc32(state_key.encode()) % partitions}"

    @staticmethod
    def _row(partition: str, state_key: str, at: datetime) -> Mapping[str, Any]:
        return {
            "PartitionKey": partition,
            "RowKey": key(state_key),
            "state_key": state_key,
            "first_seen": at,
        }

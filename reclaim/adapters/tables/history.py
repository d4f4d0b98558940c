"""Run histories (reclaim.adapters.history) in Table storage, in the Decisions table.

| PartitionKey        | RowKey                                  | properties                   |
|---------------------|-----------------------------------------|------------------------------|
| policy "|history"   | run start (UTC, fixed width) "|" run id | data (Edm.Binary, <= 60 KB), |
|                     | "|" piece number                        | pieces (how many the run has)|

One partition per policy, in time order: `histories(since)` is one range query, retention one
range delete. A run's pieces are written in transactions of at most PIECES_PER_TRANSACTION (an
entity-group transaction carries at most 4 MiB); a run whose pieces are not all there (a write
cut short) is skipped when read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient

from reclaim.adapters.history import HistoryError, pack, unpack
from reclaim.adapters.tables.access import Operation, TableAccess
from reclaim.adapters.tables.keys import key
from reclaim.domain.history import RunHistory

PIECES_PER_TRANSACTION = 40
log = logging.getLogger("reclaim.adapters.tables")


def _partition(policy: str) -> str:
    return f"{key(policy)}|history"


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HistoryTable:
    def __init__(self, access: TableAccess, decisions: TableClient) -> None:
        self._access = access
        self._table = decisions

    def record(self, history: RunHistory) -> None:
        pieces = pack(history)
        prefix = f"{_stamp(history.started_at)}|{key(history.run_id)}"
        entities: list[Operation] = [
            (
                "upsert",
                {
                    "PartitionKey": _partition(history.policy),
                    "RowKey": f"{prefix}|{n:04d}",
                    "pieces": len(pieces),
                    "data": piece,
                },
            )
            for n, piece in enumerate(pieces)
        ]
        groups = [
            entities[i : i + PIECES_PER_TRANSACTION]
            for i in range(0, len(entities), PIECES_PER_TRANSACTION)
        ]
        self._access.transact_many(self._table, groups)

    def read(self, policy: str, since: datetime | None) -> list[RunHistory]:
        query = "PartitionKey eq @p"
        parameters: dict[str, Any] = {"p": _partition(policy)}
        if since is not None:
            query += " and RowKey ge @lo"
            parameters["lo"] = _stamp(since)
        return list(self._runs(self._access.query(self._table, query, parameters)))

    def _runs(self, entities: Iterable[Any]) -> Iterable[RunHistory]:
        by_run: dict[str, list[Any]] = {}
        for entity in entities:  # RowKey order: a run's pieces are together, in order
            by_run.setdefault(str(entity["RowKey"]).rsplit("|", 1)[0], []).append(entity)
        for prefix, pieces in by_run.items():
            if len(pieces) != int(pieces[0].get("pieces") or 0):
                log.warning("run history %s is incomplete: skipped", prefix)
                continue
            try:
                yield unpack([bytes(p["data"]) for p in pieces])
            except HistoryError as error:
                log.error("run history %s skipped: %s", prefix, error)

    def compact(self, policy: str, before: datetime) -> int:
        """Forget the histories of runs that started before `before` (retention)."""
        old = list(
            self._access.query(
                self._table,
                "PartitionKey eq @p and RowKey lt @hi",
                {"p": _partition(policy), "hi": _stamp(before)},
            )
        )
        deletes: list[Operation] = [
            ("delete", {"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"]}) for e in old
        ]
        self._access.transact(self._table, deletes)
        return len({str(e["RowKey"]).rsplit("|", 1)[0] for e in old})

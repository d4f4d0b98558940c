"""Runs and their decision records (the Runs and Decisions tables).

| table     | PartitionKey                   | RowKey    | read by                            |
|-----------|--------------------------------|-----------|------------------------------------|
| Runs      | policy                         | run id    | runs(), report, user_decisions     |
| Decisions | policy "|" run id "|" n        | state key | user_decisions: one point read per |
|           | (n < the run's partitions)     |           | run, in the key's partition        |

A run's decisions are spread over ceil(decisions / 1,000) partitions by a hash of the state key
(the count is kept on the run), written in entity-group transactions of at most 100, a few at
once. No partition grows with the policy's history: a run writes its own, retention deletes it
whole. Runs recorded before this layout have their decisions in one partition per policy
(RowKey state key "|" run id): user_decisions still reads those with one range query.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient, UpdateMode

from reclaim.adapters.rows import decision_from_row, run_from_row, user_json
from reclaim.adapters.tables.access import WRITE_WORKERS, Operation, TableAccess
from reclaim.adapters.tables.keys import after, dt, key, text
from reclaim.domain.records import DecisionRecord, RunRecord

DECISIONS_PER_PARTITION = 1_000
PARTITIONS = "decision_partitions"  # on the run: how many partitions hold its decisions


def decision_partition(policy: str, run_id: str, state_key: str, partitions: int) -> str:
    bucket = zlib.crc32(state_key.encode()) % partitions
    return f"{key(policy)}|{key(run_id)}|{bucket}"


def time_filter(
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


def _keys(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}


class RunTable:
    def __init__(self, access: TableAccess, runs: TableClient, decisions: TableClient) -> None:
        self._access = access
        self._runs = runs
        self._decisions = decisions

    def write_decisions(self, run: RunRecord, decisions: Sequence[DecisionRecord]) -> int:
        """The run's decisions in their partitions; returns how many partitions hold them."""
        partitions = max(1, math.ceil(len(decisions) / DECISIONS_PER_PARTITION))
        by_partition: dict[str, list[Operation]] = {}
        for d in decisions:
            p = decision_partition(run.policy, run.id, d.state_key, partitions)
            entity: dict[str, Any] = {
                "PartitionKey": p,
                "RowKey": key(d.state_key),
                "run_id": d.run_id,
                "policy": d.policy,
                "state_key": d.state_key,
                "user": user_json(d.user),
                "decision": d.decision,
                "reason": text(d.reason),
                "evidence": text(json.dumps(d.evidence)),
                "run_started_at": run.started_at,
            }
            by_partition.setdefault(p, []).append(("upsert", entity))
        self._access.transact_many(self._decisions, list(by_partition.values()))
        return partitions

    def write_run(self, run: RunRecord, partitions: int) -> None:
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
                "halt_reason": text(run.halt_reason),
                PARTITIONS: partitions,
            },
            mode=UpdateMode.REPLACE,
        )

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]:
        return [run for run, _ in self._stored(since, policy)]

    def _stored(self, since: datetime | None, policy: str | None) -> list[tuple[RunRecord, int]]:
        """Runs with the number of partitions holding their decisions (0: the old layout)."""
        query_filter, parameters = time_filter("started_at", since, policy)
        found = self._access.parsed(
            self._runs,
            self._access.query(self._runs, query_filter, parameters),
            lambda e: (run_from_row(e, dt), int(e.get(PARTITIONS) or 0)),
        )
        return sorted(found, key=lambda item: (item[0].started_at, item[0].id))

    def user_decisions(self, policy: str, state_key: str) -> list[DecisionRecord]:
        stored = self._stored(None, policy)
        wanted = [
            (decision_partition(policy, run.id, state_key, partitions), key(state_key))
            for run, partitions in stored
            if partitions
        ]
        with ThreadPoolExecutor(WRITE_WORKERS) as pool:
            found = [
                e
                for e in pool.map(lambda pr: self._access.get(self._decisions, *pr), wanted)
                if e is not None
            ]
        if any(not partitions for _, partitions in stored):
            found += self._access.query(
                self._decisions,
                "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
                {"p": key(policy), "lo": key(state_key) + "|", "hi": after(key(state_key))},
            )
        return self._ordered(found)

    def run_decisions(self, policy: str, run_id: str) -> list[DecisionRecord]:
        """One query per partition of the run; a compacted run (or one of the old layout) has
        its decisions in the policy's own partition."""
        run = self._access.get(self._runs, key(policy), key(run_id))
        if run is None:
            return []
        if partitions := int(run.get(PARTITIONS) or 0):
            found = [
                e
                for n in range(partitions)
                for e in self._access.query(
                    self._decisions,
                    "PartitionKey eq @p",
                    {"p": f"{key(policy)}|{key(run_id)}|{n}"},
                )
            ]
        else:
            found = list(
                self._access.query(
                    self._decisions,
                    "PartitionKey eq @p and run_id eq @r",
                    {"p": key(policy), "r": run_id},
                )
            )
        parsed = self._access.parsed(self._decisions, found, decision_from_row)
        return sorted(parsed, key=lambda d: d.state_key)

    def compact(self, policy: str, before: datetime, since: datetime | None) -> tuple[int, int]:
        """Runs that started before `before` (and not before `since`, where the last compaction
        ended) keep only their CANDIDATE decisions, moved to the policy's own partition (RowKey
        state key "|" run id, where user_decisions reads runs without partitions); the rest are
        deleted. (runs compacted, decisions deleted)"""
        runs = deleted = 0
        query_filter, parameters = time_filter("started_at", since, policy)
        old = self._access.query(
            self._runs,
            query_filter + " and started_at lt @before",
            {**parameters, "before": before},
        )
        for run in old:
            if run.get("compacted"):
                continue
            deleted += self._compact_run(policy, str(run["id"]), int(run.get(PARTITIONS) or 0))
            # Marked last: a compaction cut short is done again, and finds less to do.
            self._runs.upsert_entity(
                {"PartitionKey": run["PartitionKey"], "RowKey": run["RowKey"], PARTITIONS: 0,
                 "compacted": True},
                mode=UpdateMode.MERGE,
            )  # fmt: skip
            runs += 1
        return runs, deleted

    def _compact_run(self, policy: str, run_id: str, partitions: int) -> int:
        if not partitions:  # the old layout: the policy's partition, filtered by run
            dropped = list(
                self._access.query(
                    self._decisions,
                    "PartitionKey eq @p and run_id eq @r and decision ne 'CANDIDATE'",
                    {"p": key(policy), "r": run_id},
                )
            )
            self._access.transact(self._decisions, [("delete", _keys(e)) for e in dropped])
            return len(dropped)
        deleted = 0
        for n in range(partitions):
            p = f"{key(policy)}|{key(run_id)}|{n}"
            stored = list(self._access.query(self._decisions, "PartitionKey eq @p", {"p": p}))
            kept: list[Operation] = [
                (
                    "upsert",
                    {**e, "PartitionKey": key(policy), "RowKey": f"{e['RowKey']}|{key(run_id)}"},
                )
                for e in stored
                if e.get("decision") == "CANDIDATE"
            ]
            self._access.transact(self._decisions, kept)
            self._access.transact(self._decisions, [("delete", _keys(e)) for e in stored])
            deleted += len(stored) - len(kept)
        return deleted

    def _ordered(self, entities: Iterable[Mapping[str, Any]]) -> list[DecisionRecord]:
        ordered = sorted(entities, key=lambda e: (dt(e["run_started_at"]), e["run_id"]))
        return self._access.parsed(self._decisions, ordered, decision_from_row)

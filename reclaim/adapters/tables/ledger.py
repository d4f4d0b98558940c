"""The ledger (kept for ever) and the answers, one partition per policy each.

| table   | PartitionKey | RowKey                          | read by                    |
|---------|--------------|---------------------------------|----------------------------|
| Ledger  | policy       | entry id                        | ledger(), report           |
| Answers | policy       | state key "|" request id "|" v  | latest_yes, policy_state   |
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from reclaim.adapters.rows import ledger_from_row, user_json
from reclaim.adapters.tables.access import TableAccess
from reclaim.adapters.tables.keys import after, dt, key, text
from reclaim.adapters.tables.runs import time_filter
from reclaim.domain.model import Answer, AnswerValue
from reclaim.domain.records import LedgerEntry


class LedgerTable:
    def __init__(self, access: TableAccess, ledger: TableClient, answers: TableClient) -> None:
        self._access = access
        self._ledger = ledger
        self._answers = answers
        self._sequence = 0
        self._sequence_lock = threading.Lock()

    def _next_sequence(self) -> str:
        """Strictly increasing within this process and close to wall time across processes:
        keeps the ledger's order of entries written at the same `at`."""
        with self._sequence_lock:
            self._sequence = max(self._sequence + 1, time.time_ns())
            return f"{self._sequence:020d}"

    def append(self, entry: LedgerEntry) -> bool:
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
            "detail": text(entry.detail),
            "monthly_cost": float(entry.monthly_cost),
            "currency": entry.currency,
            "sequence": self._next_sequence(),
        }
        if entry.seat_freed is not None:
            entity["seat_freed"] = entry.seat_freed
        return self._access.create(self._ledger, entity) is not None

    def entries(
        self, since: datetime | None = None, policy: str | None = None
    ) -> list[LedgerEntry]:
        query_filter, parameters = time_filter("at", since, policy)
        entries = self._access.parsed(
            self._ledger,
            self._access.query(self._ledger, query_filter, parameters),
            lambda e: (e["sequence"], ledger_from_row(e, dt)),
        )
        return [entry for _, entry in sorted(entries, key=lambda item: (item[1].at, item[0]))]

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
            "justification": answer.justification,
        }
        return self._access.create(self._answers, entity) is not None

    def answers(self, policy: str, state_key: str) -> list[Answer]:
        found = [
            Answer(
                e["request_id"],
                AnswerValue(e["value"]),
                at,
                e.get("source") or "",
                e.get("justification") or "",  # rows written before justifications: none
            )
            for e in self._access.query(
                self._answers,
                "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
                {"p": key(policy), "lo": key(state_key) + "|", "hi": after(key(state_key))},
            )
            if (at := dt(e["answered_at"])) is not None
        ]
        return sorted(found, key=lambda a: (a.answered_at, a.request_id, a.value.value))

    def latest_yes(self, policy: str, state_key: str) -> datetime | None:
        times = [
            dt(e["answered_at"])
            for e in self._access.query(
                self._answers,
                "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi and value eq @yes",
                {
                    "p": key(policy),
                    "lo": key(state_key) + "|",
                    "hi": after(key(state_key)),
                    "yes": "yes",
                },
            )
        ]
        return max((t for t in times if t is not None), default=None)

    def yes_by_user(self, policy: str) -> dict[str, datetime]:
        last_yes: dict[str, datetime] = {}
        for entity in self._access.query(
            self._answers, "PartitionKey eq @p and value eq 'yes'", {"p": key(policy)}
        ):
            at = dt(entity["answered_at"])
            state_key = entity["state_key"]
            if at is not None and (state_key not in last_yes or at > last_yes[state_key]):
                last_yes[state_key] = at
        return last_yes

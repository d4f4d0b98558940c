"""Stored rows back into domain records, shared by the SQLite and Table stores.

Both keep the same field names; each store passes `read_time` for its own column type (ISO text
in SQLite, Edm.DateTime in Table storage). Optional text may be absent from a Table entity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from reclaim.domain.approval import Approval
from reclaim.domain.breaker import Breaker, HaltKind
from reclaim.domain.lifecycle import QueueReason, Request, RequestState
from reclaim.domain.model import User
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import DecisionRecord, LedgerEntry, LedgerOutcome, RunRecord, RunStatus

ReadTime = Callable[[Any], datetime | None]
T = TypeVar("T")

# What a reader raises on a row it cannot parse: a missing field, a bad enum or number, bad JSON.
ROW_ERRORS = (KeyError, ValueError, TypeError, OverflowError, AttributeError)


def stored_rows(
    rows: Iterable[Any], parse: Callable[[Any], T], on_bad: Callable[[Any, str], None]
) -> list[T]:
    """`parse` of every row; `on_bad(row, reason)` for one that does not parse, which is left
    out: one bad row never stops the read (each store records it in its quarantine table)."""
    records = []
    for row in rows:
        try:
            records.append(parse(row))
        except ROW_ERRORS as error:
            on_bad(row, f"{type(error).__name__}: {error}")
    return records


def user_json(user: User) -> str:
    return json.dumps(user.to_dict(), separators=(",", ":"))


def user_from_json(text: str) -> User:
    return User.from_dict(json.loads(text))


def _time(read_time: ReadTime, value: Any) -> datetime:
    moment = read_time(value)
    if moment is None:
        raise ValueError("a required time is missing from a stored row")
    return moment


def request_from_row(row: Mapping[str, Any], read_time: ReadTime) -> Request:
    return Request(
        id=row["id"],
        policy=row["policy"],
        group=row["group"],
        user=user_from_json(row["user"]),
        state_key=row["state_key"],
        run_id=row["run_id"],
        state=RequestState(row["state"]),
        created_at=_time(read_time, row["created_at"]),
        updated_at=_time(read_time, row["updated_at"]),
        deadline=read_time(row.get("deadline")),
        reason=row.get("reason") or "",
        queue_reason=QueueReason(row["queue_reason"]) if row.get("queue_reason") else None,
        detail=row.get("detail") or "",
        version=int(row["version"]),
        attempts=int(row.get("attempts") or 0),
        unanswered_writes=int(row.get("unanswered_writes") or 0),
        approval=approval_from_json(row.get("approval") or ""),
        not_before=read_time(row.get("not_before")),
        write_sent_at=read_time(row.get("write_sent_at")),
    )


def approval_json(approval: Approval | None) -> str:
    """The request's approval as one text column ("" for none): both stores keep it alike."""
    if approval is None:
        return ""
    return json.dumps(
        {
            "trigger": approval.trigger.value,
            "escalated_at": approval.escalated_at.isoformat(),
            "approvers": [a.to_dict() for a in approval.approvers],
            "via": approval.via,
            "asked_at": approval.asked_at.isoformat() if approval.asked_at else None,
        },
        separators=(",", ":"),
    )


def approval_from_json(text: str) -> Approval | None:
    if not text:
        return None
    data = json.loads(text)
    asked_at = data.get("asked_at")
    return Approval(
        trigger=EscalateOn(data["trigger"]),
        escalated_at=_aware(datetime.fromisoformat(data["escalated_at"])),
        approvers=tuple(User.from_dict(a) for a in data.get("approvers") or ()),
        via=str(data.get("via") or ""),
        asked_at=_aware(datetime.fromisoformat(asked_at)) if asked_at else None,
    )


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a stored time has no offset")
    return moment


def breaker_from_row(row: Mapping[str, Any], read_time: ReadTime) -> Breaker:
    return Breaker(
        policy=row["policy"],
        directory=row["directory"],
        is_open=bool(row["is_open"]),
        kind=HaltKind(row["kind"]) if row.get("kind") else None,
        reason=row.get("reason") or "",
        permission=row.get("permission") or "",
        opened_at=read_time(row.get("opened_at")),
        retry_at=read_time(row.get("retry_at")),
        outages=int(row.get("outages") or 0),
        version=int(row["version"]),
    )


def ledger_from_row(row: Mapping[str, Any], read_time: ReadTime) -> LedgerEntry:
    seat_freed = row.get("seat_freed")
    return LedgerEntry(
        id=row["id"],
        at=_time(read_time, row["at"]),
        policy=row["policy"],
        group=row["group"],
        request_id=row["request_id"],
        run_id=row["run_id"],
        user=user_from_json(row["user"]),
        outcome=LedgerOutcome(row["outcome"]),
        detail=row.get("detail") or "",
        seat_freed=None if seat_freed is None else bool(seat_freed),
        monthly_cost=float(row.get("monthly_cost") or 0.0),
        currency=row.get("currency") or "",
    )


def run_from_row(row: Mapping[str, Any], read_time: ReadTime) -> RunRecord:
    return RunRecord(
        id=row["id"],
        policy=row["policy"],
        mode=row["mode"],
        started_at=_time(read_time, row["started_at"]),
        status=RunStatus(row["status"]),
        members=int(row["members"]),
        counts=json.loads(row["counts"]),
        asked=int(row["asked"]),
        enqueued=int(row["enqueued"]),
        halt_check=row.get("halt_check") or "",
        halt_reason=row.get("halt_reason") or "",
    )


def decision_from_row(row: Mapping[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        run_id=row["run_id"],
        policy=row["policy"],
        state_key=row["state_key"],
        user=user_from_json(row["user"]),
        decision=row["decision"],
        reason=row.get("reason") or "",
        evidence=json.loads(row["evidence"]),
    )


def edm_time(value: datetime) -> datetime:
    """Table storage's Edm.DateTime (the SDK's own datetime subclass) as a plain aware one."""
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=UTC,
    )

"""What the audit trail keeps: runs, their decisions, the ledger, and the removal message."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from reclaim.domain.model import User


class RunStatus(StrEnum):
    PLANNED = "planned"  # read-only plan, or a dry-run run: nothing changed
    COMPLETED = "completed"  # enforce: requests opened or removals enqueued
    HALTED = "halted"  # a guardrail or a failing source stopped it; nothing changed


# RunRecord.mode of a scheduled run that raised, recorded HALTED by reclaim.scheduling.
SCHEDULER_MODE = "scheduler"


@dataclass(frozen=True)
class RunRecord:
    id: str
    policy: str
    mode: str
    started_at: datetime
    status: RunStatus
    members: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # decision kind -> number
    asked: int = 0
    enqueued: int = 0
    halt_check: str = ""
    halt_reason: str = ""


@dataclass(frozen=True)
class DecisionRecord:
    run_id: str
    policy: str
    state_key: str
    user: User
    decision: str
    reason: str
    evidence: dict[str, Any]


class LedgerOutcome(StrEnum):
    ASKED = "ASKED"
    NOT_ASKED = "NOT_ASKED"  # the campaign channel did not create a request for this user
    ANSWERED = "ANSWERED"
    QUEUED = "QUEUED"  # released: one entry per release, which the rolling rate counts
    HELD = "HELD"  # due, but held back by a tick (the rolling rate, a cap, a halt)
    REQUESTED = "REQUESTED"
    REMOVED = "REMOVED"
    NOT_MEMBER = "NOT_MEMBER"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    RESTORED = "RESTORED"
    ALREADY_MEMBER = "ALREADY_MEMBER"  # a restore found the user already back
    # After a REMOVED, what Entra ID says about the seat: seat_freed True (freed), False (still
    # licensed another way) or None (unverified: processing did not settle, user not found).
    SEAT_CHECKED = "SEAT_CHECKED"
    # campaign.reminders: recorded before the channel is called (the id <request>:REMINDED:<n>
    # is the claim, so overlapping ticks send it once); REMINDER_FAILED when the channel said no.
    REMINDED = "REMINDED"
    REMINDER_FAILED = "REMINDER_FAILED"
    APPEALED = "APPEALED"  # appeal_within: the user took her licence back (beside RESTORED)
    # appeal_within on email / Teams: the removal message with its appeal link (claimed first).
    REMOVAL_SENT = "REMOVAL_SENT"
    REMOVAL_SEND_FAILED = "REMOVAL_SEND_FAILED"
    # escalation (usecases/escalation.py, ask_approvers.py, record_approval.py): sent to the
    # approver, the approver asked (or the channel's refusal), and the approver's decision with
    # who decided and why, or the approver's silence past the deadline and what it did.
    ESCALATED = "ESCALATED"
    APPROVAL_ASKED = "APPROVAL_ASKED"
    APPROVAL_ASK_FAILED = "APPROVAL_ASK_FAILED"
    APPROVER_KEPT = "APPROVER_KEPT"
    APPROVER_RELEASED = "APPROVER_RELEASED"
    APPROVER_SILENT = "APPROVER_SILENT"
    # policy.notice: the date she was told (NOTICE_SENT), or why the channel could not tell her
    # (NOTICE_FAILED; sent again by the next tick, with a date counted from that delivery).
    NOTICE_SENT = "NOTICE_SENT"
    NOTICE_FAILED = "NOTICE_FAILED"


@dataclass(frozen=True)
class LedgerEntry:
    """One thing that happened to one user; `id` makes appending idempotent."""

    id: str
    at: datetime
    policy: str
    group: str
    request_id: str
    run_id: str
    user: User
    outcome: LedgerOutcome
    detail: str = ""
    # SEAT_CHECKED: True freed, False still licensed, None unverified. On REMOVED entries written
    # before seats were verified after the fact it is a prediction made before the DELETE.
    seat_freed: bool | None = None
    monthly_cost: float = 0.0
    currency: str = ""


@dataclass(frozen=True)
class Lease:
    """Who holds a policy's run lease, since when, and until when (a crashed holder's lapses)."""

    policy: str
    holder: str
    since: datetime
    expires: datetime


# 2 adds decided_at; messages of version 1 (no decision time) are still read, and re-decided.
MESSAGE_SCHEMA_VERSION = 2
_READABLE_VERSIONS = (1, 2)


class MessageError(ValueError):
    """A removal message that cannot be acted on; it goes to the poison queue."""


@dataclass(frozen=True)
class RemovalMessage:
    """The removal queue's contract (DESIGN.md section 5); request_id is the idempotency key."""

    request_id: str
    run_id: str
    policy: str
    group: str
    user: User
    reason: str
    version: int = MESSAGE_SCHEMA_VERSION
    # When the decision to remove was taken (the reading it rests on); None: not known (a
    # version 1 message, or one resent without it), so the worker has it re-decided.
    decided_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
                "request_id": self.request_id,
                "run_id": self.run_id,
                "policy": self.policy,
                "group": self.group,
                "user": self.user.to_dict(),
                "reason": self.reason,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RemovalMessage:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise MessageError(f"not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MessageError("expected a JSON object")
        if data.get("version") not in _READABLE_VERSIONS:
            raise MessageError(f"unsupported schema version {data.get('version')!r}")
        missing = [
            k
            for k in ("request_id", "run_id", "policy", "group")
            if not isinstance(data.get(k), str) or not data[k]
        ]
        user = data.get("user")
        if not isinstance(user, dict) or not any(isinstance(v, str) and v for v in user.values()):
            missing.append("user")
            user = {}
        if missing:
            raise MessageError(f"missing or empty: {', '.join(missing)}")
        return cls(
            request_id=data["request_id"],
            run_id=data["run_id"],
            policy=data["policy"],
            group=data["group"],
            user=User.from_dict(user),
            reason=str(data.get("reason") or ""),
            version=data["version"],
            decided_at=_decided_at(data.get("decided_at")),
        )


def _decided_at(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise MessageError(f"decided_at: expected an ISO time with an offset, got {value!r}")
    return moment

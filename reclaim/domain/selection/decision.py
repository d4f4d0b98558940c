"""What a decision is: its kind, the rule's evidence, and the counts taken over decisions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from reclaim.domain.model import Member


class DecisionKind(StrEnum):
    NESTED = "NESTED"  # holds the licence through a nested group: not evaluated
    EXCLUDED = "EXCLUDED"
    DISABLED = "DISABLED"  # account disabled or past its leave date (disabled_accounts says)
    NEW = "NEW"
    UNKNOWN_USAGE = "UNKNOWN_USAGE"
    ACTIVE = "ACTIVE"
    KEPT = "KEPT"
    PENDING = "PENDING"
    CANDIDATE = "CANDIDATE"


@dataclass(frozen=True, slots=True)
class Evidence:
    """The facts behind a decision; only what is known is shown."""

    rule: str
    used: float | None = None  # minutes or sign-ins; None when never observed
    threshold: float | None = None
    unit: str = ""
    window: str = ""
    member_since: datetime | None = None
    answered_yes_at: datetime | None = None
    request_id: str = ""
    excluded_by: str = ""
    joined: str = ""  # which evidence gave member_since, or why there is none
    via_group: str = ""
    usage_as_of: datetime | None = None  # the usage data's age by its own clock ...
    usage_clock: str = ""  # ... and where that clock was read
    seat_note: str = ""  # why a removal would free no seat, when that is known beforehand
    counted: str = ""  # what the source counts, when narrower than its name (interactive only)
    last_seen: datetime | None = None  # the member's newest activity the source reported ...
    last_seen_from: str = ""  # ... and which of its dates that is (lastSuccessfulSignInDateTime)
    inactive_for: str = ""  # entra-activity: how long without a sign-in makes a candidate
    account_created: datetime | None = None  # the directory's createdDateTime of the user
    disabled: str = ""  # why the account counts as disabled (DISABLED)
    left_at: datetime | None = None  # the leave date the directory holds, when it holds one
    account_unread: str = ""  # why the account's state is unknown (a missing permission)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"rule": self.rule}
        for name in (
            "used", "threshold", "unit", "window", "request_id", "excluded_by", "joined",
            "via_group", "usage_clock", "seat_note", "counted", "last_seen_from", "inactive_for",
            "disabled", "account_unread",
        ):  # fmt: skip
            value = getattr(self, name)
            if value not in (None, ""):
                result[name] = value
        for name in ("member_since", "answered_yes_at", "usage_as_of", "last_seen",
                     "account_created", "left_at"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                result[name] = value.isoformat()
        return result


@dataclass(frozen=True, slots=True)
class Decision:
    member: Member
    kind: DecisionKind
    reason: str
    evidence: Evidence
    state_key: str = field(default="")
    # A DISABLED account the policy reclaims: released for removal at once, never asked.
    without_asking: bool = False


def removes(decision: Decision) -> bool:
    """Whether acting on the decision removes the user: a CANDIDATE (asked first when the
    policy asks), or a DISABLED account removed without asking. What the caps count."""
    return decision.kind is DecisionKind.CANDIDATE or decision.without_asking


def count_by_kind(decisions: Iterable[Decision]) -> dict[DecisionKind, int]:
    counts = dict.fromkeys(DecisionKind, 0)
    for decision in decisions:
        counts[decision.kind] += 1
    return counts

"""How a decision words what the usage source reported, and since when a member could use it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from reclaim.domain.durations import format_minutes
from reclaim.domain.model import Member, UsageIndex
from reclaim.domain.policy import Policy, UsageSourceKind

if TYPE_CHECKING:
    from reclaim.domain.selection.joined import Joined


def amount_text(amount: float, policy: Policy) -> str:
    if policy.usage.counts_sign_ins:
        return f"{amount:g} sign-in(s)"
    return format_minutes(amount)


def existed_since(member: Member, joined: Joined) -> tuple[datetime, str] | None:
    """Since when the member could have used the application, and the evidence: the later of
    their join date and the account's creation (None when neither is known: a member from
    before tracking)."""
    created = member.created_at
    if joined.at is not None and (created is None or joined.at >= created):
        return joined.at, f"member since {joined.at:%Y-%m-%d} ({joined.evidence})"
    if created is not None:
        return created, f"account created {created:%Y-%m-%d}"
    return None


def usage_text(
    used: float | None, last: datetime | None, usage: UsageIndex, key: str, policy: Policy
) -> str:
    """What the source reported: an amount, or for entra-activity the last sign-in used."""
    if not policy.usage.by_recency:
        return amount_text(used or 0.0, policy)
    signs_in = policy.usage.source is UsageSourceKind.ENTRA_ACTIVITY
    if last is None:
        return (
            "never signed in (no sign-in activity recorded)"
            if signs_in
            else "no activity on record in the report"
        )
    verb = "last signed in" if signs_in else "last active"
    return f"{verb} {last:%Y-%m-%d} ({usage.last_seen_from.get(key) or 'last activity'})"

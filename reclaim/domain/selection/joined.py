"""When a member joined the group: the directory's date, else reclaim's snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reclaim.domain.model import Member, PolicyState
from reclaim.domain.policy import FirstRun, Policy


@dataclass(frozen=True, slots=True)
class Joined:
    """When a member joined, as far as the evidence goes; `at` None means before tracking."""

    at: datetime | None
    evidence: str


BASELINE = "join date unknown (baseline)"


def member_since(
    member: Member, state: PolicyState, key: str, now: datetime, policy: Policy
) -> Joined:
    """The directory's own join date wins; otherwise reclaim's snapshots (DESIGN's baseline rule),
    raised to the user's creation when that is later and within the grace (nobody joins a group
    before they exist; an older creation date proves nothing)."""
    if member.added_at is not None:
        return Joined(member.added_at, member.added_from or "the directory's join date")
    joined = _tracked(state, key, now, policy)
    created = member.created_at
    recent = created is not None and now - created < policy.new_member_grace
    if created is not None and recent and (joined.at is None or created > joined.at):
        return Joined(created, f"user created {created:%Y-%m-%d}, so joined since")
    return joined


def _tracked(state: PolicyState, key: str, now: datetime, policy: Policy) -> Joined:
    seen = state.first_seen.get(key)
    at_baseline = state.baseline_at is None or (seen is not None and seen <= state.baseline_at)
    if at_baseline:
        if policy.first_run is FirstRun.NEW:
            return Joined(seen or now, "present at the first snapshot (first_run: new)")
        return Joined(None, BASELINE)  # present at the baseline: a member from before tracking
    if seen is None:
        return Joined(now, "first seen in this snapshot")
    return Joined(seen, f"first seen by reclaim on {seen:%Y-%m-%d}")

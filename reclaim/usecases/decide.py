"""decide: read the directory and the usage once, select, check the guardrails.

Shared by run_policy (which then asks or enqueues) and the expiry tick (which re-decides the
requests it is about to release), so both act on the same reading of the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from reclaim.domain import guardrails
from reclaim.domain.guardrails import Halt
from reclaim.domain.model import Member, normalise_key
from reclaim.domain.policy import Policy
from reclaim.domain.selection import Decision, index_usage, select
from reclaim.errors import ReclaimError
from reclaim.ports import Directory
from reclaim.usecases.context import Context


@dataclass(frozen=True)
class Assessment:
    """One decision per member, or why there are none; `halt` set means nothing may act."""

    decisions: list[Decision] = field(default_factory=list)
    halt: Halt | None = None
    read: bool = True  # the directory and the usage were read in full (a snapshot may be kept)


def read_members(directory: Directory, policy: Policy) -> list[Member]:
    directory.check_group(policy.directory.group)
    members = list(directory.members(policy.directory.group))
    if not policy.exclude.groups:
        return members
    # A member's exclusion groups, found by listing each exclusion group once.
    holders: dict[str, set[str]] = {}
    for group in policy.exclude.groups:
        for other in directory.members(group):
            for value in other.user.identifiers().values():
                if value:
                    holders.setdefault(normalise_key(value), set()).add(group)
    return [
        replace(
            m,
            groups=frozenset().union(
                *(holders.get(normalise_key(v), set()) for v in m.user.identifiers().values() if v)
            ),
        )
        for m in members
    ]


def assess(
    ctx: Context,
    policy: Policy,
    now: datetime,
    *,
    kill_switch: bool,
) -> Assessment:
    """Read the directory and the usage (once each), select, and check the guardrails."""
    try:
        members = read_members(ctx.adapters.directory(policy), policy)
    except ReclaimError as error:
        return Assessment(halt=Halt("directory", f"directory: {error}"), read=False)

    state = ctx.store.policy_state(policy.name, now)
    keys = {k for m in members if (k := m.user.key(policy.usage.match_on))}
    try:
        export = ctx.adapters.usage_source(policy).usage(policy, now)
        usage = index_usage(export.rows, keys, export.observed_at)
    except ReclaimError as error:
        return Assessment(halt=Halt("usage_source", f"usage source: {error}"), read=False)

    decisions = select(members, usage, state, policy, now)
    halt = guardrails.check(decisions, usage, policy, now, kill_switch=kill_switch)
    return Assessment(decisions, halt)

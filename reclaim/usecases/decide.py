"""decide: read the directory and the usage once, select, check the guardrails.

Shared by run_policy (which then asks or enqueues) and the expiry tick (which re-decides the
requests it is about to release), so both act on the same reading of the same rules.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime

from reclaim.domain import guardrails
from reclaim.domain.guardrails import Halt
from reclaim.domain.model import Member, normalise_key
from reclaim.domain.policy import Policy
from reclaim.domain.selection import Decision, DecisionKind, index_usage, select
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
    releasing: Collection[str] | None = None,
) -> Assessment:
    """Read the directory and the usage (once each), select, and check the guardrails.

    `releasing` names the state keys of open requests about to be released: they are judged
    afresh (not as PENDING), and the caps count only those of them still CANDIDATE. Without it
    (a run), the caps count every CANDIDATE."""
    try:
        members = read_members(ctx.adapters.directory(policy), policy)
    except ReclaimError as error:
        return Assessment(halt=Halt("directory", f"directory: {error}"), read=False)

    state = ctx.store.policy_state(policy.name, now)
    if releasing is not None:
        wanted = set(releasing)
        state = replace(
            state,
            open_requests={k: v for k, v in state.open_requests.items() if k not in wanted},
        )
    keys = {k for m in members if (k := m.user.key(policy.usage.match_on))}
    try:
        export = ctx.adapters.usage_source(policy).usage(policy, now)
        usage = index_usage(export.rows, keys, export.observed_at)
    except ReclaimError as error:
        return Assessment(halt=Halt("usage_source", f"usage source: {error}"), read=False)

    decisions = select(members, usage, state, policy, now)
    removals = None
    if releasing is not None:
        removals = sum(
            1 for d in decisions if d.kind is DecisionKind.CANDIDATE and d.state_key in wanted
        )
    halt = guardrails.check(
        decisions, usage, policy, now, kill_switch=kill_switch, removals=removals
    )
    return Assessment(decisions, halt)

"""Guardrails: checks that halt a run as a whole before anything is asked or removed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reclaim.domain.durations import format_duration
from reclaim.domain.model import UsageIndex
from reclaim.domain.policy import Policy
from reclaim.domain.selection import Decision, DecisionKind


@dataclass(frozen=True)
class Halt:
    check: str  # the guardrail that stopped the run: max_removals_per_run, stale_usage, ...
    reason: str  # what happened and what to do, for the administrator


def percent_cap(policy: Policy, group_size: int) -> int:
    """The most candidates a run may act on under max_percent_of_group (rounded down)."""
    return math.floor(group_size * policy.limits.max_percent_of_group / 100)


def check(
    decisions: Sequence[Decision],
    usage: UsageIndex,
    policy: Policy,
    now: datetime,
    *,
    kill_switch: bool,
    removals: int | None = None,
) -> Halt | None:
    """The first guardrail that fails, or None when the run may go on. The caps count
    `removals` (what the expiry tick is about to release), or else every CANDIDATE."""
    group_size = len(decisions)
    if kill_switch:
        return Halt(
            "kill_switch",
            "the kill switch is on: nothing is asked or removed until it is off "
            "(`python -m reclaim kill-switch` shows who set it and why)",
        )
    age = now - usage.observed_at
    if age > policy.usage.max_age:
        return Halt(
            "stale_usage",
            f"usage data is {format_duration(age)} old, older than max_age "
            f"{format_duration(policy.usage.max_age)}: refresh the export or the query",
        )
    if group_size and usage.rows_read == 0:
        return Halt(
            "empty_usage",
            f"the usage source returned no rows while the group has {group_size} member(s): "
            "an empty export is treated as broken, not as nobody using the application",
        )
    count = (
        removals
        if removals is not None
        else sum(1 for d in decisions if d.kind is DecisionKind.CANDIDATE)
    )
    cap = policy.limits.max_removals_per_run
    if count > cap:
        return Halt(
            "max_removals_per_run",
            f"{count} candidates exceed max_removals_per_run {cap}: review the plan, then raise the "
            "limit or narrow the policy",
        )
    percent_limit = percent_cap(policy, group_size)
    if count > percent_limit:
        share = 100 * count / group_size
        return Halt(
            "max_percent_of_group",
            f"{count} candidates are {share:.1f}% of the group's {group_size} members, above "
            f"max_percent_of_group {policy.limits.max_percent_of_group:g}% (at most {percent_limit}): "
            "review the plan, then raise the limit or narrow the policy",
        )
    return None

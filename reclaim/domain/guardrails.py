"""Guardrails: checks that halt a run as a whole before anything is asked or removed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reclaim.domain.durations import format_duration
from reclaim.domain.model import UsageIndex
from reclaim.domain.policy import Policy
from reclaim.domain.selection import Decision, evaluated, removes


@dataclass(frozen=True)
class Halt:
    check: str  # the guardrail that stopped the run: max_removals_per_run, stale_usage, ...
    reason: str  # what happened and what to do, for the administrator


def percent_cap(policy: Policy, group_size: int) -> int:
    """The most candidates a run may act on under max_percent_of_group (rounded down)."""
    return math.floor(group_size * policy.limits.max_percent_of_group / 100)


# Timestamps this far ahead of now mean a wrong usage.timezone (or clock), not fresh data.
FUTURE_TOLERANCE = timedelta(hours=1)


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
    `removals` (what the expiry tick is about to release), or else every decision that removes
    (each CANDIDATE, and each DISABLED account the policy reclaims)."""
    direct = evaluated(decisions)  # members through nested groups are not judged, nor counted
    group_size = len(direct)
    if kill_switch:
        return Halt(
            "kill_switch",
            "the kill switch is on: nothing is asked or removed until it is off "
            "(`python -m reclaim kill-switch` shows who set it and why)",
        )
    halt = _stale(usage, policy, now)
    if halt is not None:
        return halt
    if group_size and usage.rows_read == 0:
        return Halt(
            "empty_usage",
            f"the usage source returned no rows while the group has {group_size} member(s): "
            "an empty export is treated as broken, not as nobody using the application",
        )
    halt = _coverage(usage, policy, group_size)
    if halt is not None:
        return halt
    count = removals if removals is not None else sum(1 for d in direct if removes(d))
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


def _stale(usage: UsageIndex, policy: Policy, now: datetime) -> Halt | None:
    """The data's age by its own clock (see UsageIndex.clock) against usage.max_age."""
    clock = f" ({usage.clock})" if usage.clock else ""
    if usage.observed_at is None:
        if usage.rows_read == 0:
            return None  # nothing to date: the empty-usage check speaks for it
        return Halt(
            "stale_usage",
            f"the usage data carries no time{clock}, so its age is unknown: fill the column "
            "or set usage.timestamp_column to one that is",
        )
    age = now - usage.observed_at
    if usage.dated_by_rows and age < -FUTURE_TOLERANCE:
        return Halt(
            "stale_usage",
            f"the usage data is dated {usage.observed_at.isoformat()}{clock}, "
            f"{format_duration(-age)} in the future: check usage.timezone",
        )
    if age > policy.usage.max_age:
        return Halt(
            "stale_usage",
            f"usage data is {format_duration(age)} old{clock}, older than max_age "
            f"{format_duration(policy.usage.max_age)}: refresh the export or the query",
        )
    return None


def _coverage(usage: UsageIndex, policy: Policy, group_size: int) -> Halt | None:
    """A source of observed users must report enough of the members; an authoritative log must
    reach back over the whole look-back (it was read completely, or the source failed)."""
    spec = policy.usage
    if usage.authoritative:
        if spec.retention is not None and spec.lookback > spec.retention:
            return Halt(
                "coverage",
                f"usage.lookback {format_duration(spec.lookback)} is longer than the "
                f"{spec.source.value} log keeps ({format_duration(spec.retention)}): members "
                "absent from it would count as zero use for days it no longer holds",
            )
        return None
    if not group_size:
        return None
    share = usage.matched / group_size
    if share < spec.min_coverage:
        return Halt(
            "coverage",
            f"the usage source reported {usage.matched} of the group's {group_size} members "
            f"({100 * share:.1f}%), under usage.min_coverage {100 * spec.min_coverage:g}%: check "
            f"usage.match_on ({spec.match_on.value}) and usage.user_column, or whether the "
            "source still collects (the rest would be judged as never observed)",
        )
    return None

"""What-if curves: how many members the same rules would select at other thresholds.

Each point re-decides every member with `selection.decide` under the policy with only its
threshold changed, over the one usage read the plan made: the curve at today's threshold is the
plan itself, not a model of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reclaim.domain.guardrails import percent_cap
from reclaim.domain.model import Member, PolicyState, UsageIndex
from reclaim.domain.policy import Policy, UsageSourceKind
from reclaim.domain.selection import DecisionKind, evaluated, removes, select
from reclaim.domain.usage_text import amount_text

# Multiples of today's threshold the curve always shows, around the distinct usage amounts.
MULTIPLES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
NEAR_AMOUNTS = 20  # at most this many of the members' own amounts, the nearest to today's


@dataclass(frozen=True, slots=True)
class CurvePoint:
    threshold: float  # in the policy's unit: minutes, or sign-ins
    label: str  # as the plan words it: "5m", "2 sign-in(s)"
    candidates: int  # CANDIDATE decisions at this threshold
    removals: int  # what the caps count: candidates plus leavers removed without asking
    capped_by: tuple[str, ...]  # the caps these removals exceed (the run would halt)
    today: bool  # the policy's own threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "label": self.label,
            "candidates": self.candidates,
            "removals": self.removals,
            "capped_by": list(self.capped_by),
            "today": self.today,
        }


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The threshold curve of one policy, or why there is none."""

    policy: str
    unit: str  # "minutes" or "sign-ins"
    today: float
    group_size: int  # direct members: what max_percent_of_group is measured against
    max_removals_per_run: int
    percent_cap: int  # max_percent_of_group as a number of removals
    points: tuple[CurvePoint, ...]
    unavailable: str = ""  # why there is no threshold curve (the policy judges by recency)
    lookback: str = ""  # why there is no look-back curve

    @property
    def caps_bite_at(self) -> CurvePoint | None:
        """The lowest threshold on the curve at which a cap would halt the run."""
        return next((p for p in self.points if p.capped_by), None)

    @property
    def at_today(self) -> CurvePoint | None:
        return next((p for p in self.points if p.today), None)

    def to_dict(self) -> dict[str, Any]:
        bite = self.caps_bite_at
        return {
            "policy": self.policy,
            "unit": self.unit,
            "threshold": self.today,
            "group_size": self.group_size,
            "max_removals_per_run": self.max_removals_per_run,
            "max_percent_of_group_removals": self.percent_cap,
            "caps_bite_at": bite.threshold if bite else None,
            "curve": [p.to_dict() for p in self.points],
            "threshold_curve_unavailable": self.unavailable or None,
            "lookback_curve_unavailable": self.lookback or None,
        }


def thresholds_to_try(today: float, amounts: Iterable[float]) -> list[float]:
    """Today's threshold, its multiples, and the members' own amounts between the smallest and
    largest multiple (where the count steps), the nearest to today's first; ascending."""
    tried = {today * m for m in MULTIPLES}
    low, high = today * MULTIPLES[0], today * MULTIPLES[-1]
    # A member using exactly `a` is ACTIVE at threshold `a` and selected just above it.
    steps = {a for a in amounts if low <= a <= high} - tried
    tried |= set(sorted(steps, key=lambda a: (abs(a - today), a))[:NEAR_AMOUNTS])
    tried.add(today)
    return sorted(tried)


def threshold_curve(
    members: Sequence[Member],
    usage: UsageIndex,
    state: PolicyState,
    policy: Policy,
    now: datetime,
    thresholds: Iterable[float] | None = None,
) -> WhatIf:
    """Re-decide every member at each threshold (default `thresholds_to_try`), and mark where
    max_removals_per_run or max_percent_of_group would halt the run."""
    spec = policy.usage
    group_size = len(evaluated(select(members, usage, state, policy, now)))
    cap = policy.limits.max_removals_per_run
    share_cap = percent_cap(policy, group_size)
    whatif = WhatIf(
        policy=policy.name,
        unit="sign-ins" if spec.counts_sign_ins else "minutes",
        today=spec.threshold,
        group_size=group_size,
        max_removals_per_run=cap,
        percent_cap=share_cap,
        points=(),
        lookback=lookback_unavailable(policy),
    )
    if spec.by_recency:
        return replace(
            whatif,
            unavailable=(
                f"{spec.source.value} judges by the date of the last activity (usage.inactive_for), "
                "not by an amount against a threshold"
            ),
        )
    chosen = thresholds_to_try(spec.threshold, usage.amounts.values())
    if thresholds is not None:
        chosen = sorted({*thresholds, spec.threshold})
    points = []
    for threshold in chosen:
        trial = replace(policy, usage=replace(spec, threshold=threshold))
        decisions = evaluated(select(members, usage, state, trial, now))
        count = sum(1 for d in decisions if d.kind is DecisionKind.CANDIDATE)
        removals = sum(1 for d in decisions if removes(d))
        capped = tuple(
            name
            for name, limit in (("max_removals_per_run", cap), ("max_percent_of_group", share_cap))
            if removals > limit
        )
        points.append(
            CurvePoint(
                threshold,
                amount_text(threshold, policy),
                count,
                removals,
                capped,
                threshold == spec.threshold,
            )
        )
    return replace(whatif, points=tuple(points))


def lookback_unavailable(policy: Policy) -> str:
    """Why one read cannot be re-decided at another look-back: the read holds one amount per
    member over usage.lookback, not per-event dated rows that could be cut to a shorter window."""
    spec = policy.usage
    if spec.source is UsageSourceKind.ENTRA_SIGNINS:
        return (
            "the sign-in log is read for usage.lookback only and summed per member as it streams: "
            "the dated sign-ins are not kept, so another look-back needs another read"
        )
    if spec.by_recency:
        return "the source reports each member's last activity date, not usage per day"
    return (
        f"the {spec.source.value} source gives one total per member over usage.lookback "
        "(a row's date is its newest event, not each event's), so a look-back cannot be cut from it"
    )

"""What-if curves: how many members the same rules would select at other thresholds.

Every member is decided by `selection.decide` under the policy with only its threshold changed,
over the one usage read the plan made: the curve at today's threshold is the plan itself, not a
model of it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reclaim.domain.guardrails import percent_cap
from reclaim.domain.model import Member, PolicyState, UsageIndex
from reclaim.domain.policy import Policy, UsageSourceKind
from reclaim.domain.selection import DecisionKind, decide, removes
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
    """Every member's decision at each threshold (default `thresholds_to_try`), and where
    max_removals_per_run or max_percent_of_group would halt the run.

    Selection reads the threshold only in "used >= threshold": a member has one decision while
    their amount reaches the threshold and one once it does not. So each member is decided twice
    (at a threshold every amount reaches, and at one none does) and each point is a lookup: two
    passes over a large group, not one per point."""
    spec = policy.usage
    match_on = spec.match_on
    used = [usage.amounts.get(key) if (key := m.user.key(match_on)) else None for m in members]
    observed = [u for u in used if u is not None]
    reached = _at(policy, min(observed, default=0.0))
    missed = _at(policy, math.nextafter(max(observed, default=0.0), math.inf))
    base_candidates = base_removals = group_size = 0
    steps: list[tuple[float, int, int]] = []  # amount, candidates and removals it adds when reached
    for member, amount in zip(members, used, strict=True):
        below = decide(member, usage, state, missed, now)
        if below.kind is DecisionKind.NESTED:
            continue  # not judged, not counted by the caps, at any threshold
        group_size += 1
        base_candidates += below.kind is DecisionKind.CANDIDATE
        base_removals += removes(below)
        if amount is not None:
            above = decide(member, usage, state, reached, now)
            candidate = (above.kind is DecisionKind.CANDIDATE) - (
                below.kind is DecisionKind.CANDIDATE
            )
            removal = removes(above) - removes(below)
            if candidate or removal:
                steps.append((amount, candidate, removal))
    steps.sort()
    amounts = [amount for amount, _, _ in steps]
    # From index i on: what the members whose amounts reach a threshold at amounts[i] add.
    candidates_from = list(itertools.accumulate((c for _, c, _ in reversed(steps)), initial=0))
    removals_from = list(itertools.accumulate((r for _, _, r in reversed(steps)), initial=0))
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
    chosen = thresholds_to_try(spec.threshold, observed)
    if thresholds is not None:
        chosen = sorted({*thresholds, spec.threshold})
    points = []
    for threshold in chosen:
        reaching = len(amounts) - bisect.bisect_left(amounts, threshold)
        removals = base_removals + removals_from[reaching]
        capped = tuple(
            name
            for name, limit in (("max_removals_per_run", cap), ("max_percent_of_group", share_cap))
            if removals > limit
        )
        points.append(
            CurvePoint(
                threshold,
                amount_text(threshold, policy),
                base_candidates + candidates_from[reaching],
                removals,
                capped,
                threshold == spec.threshold,
            )
        )
    return replace(whatif, points=tuple(points))


def _at(policy: Policy, threshold: float) -> Policy:
    return replace(policy, usage=replace(policy.usage, threshold=threshold))


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

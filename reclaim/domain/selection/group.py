"""The whole group decided, and the decisions its guardrails are measured against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from reclaim.domain.model import Member, PolicyState, UsageIndex
from reclaim.domain.policy import Policy
from reclaim.domain.selection.decision import Decision, DecisionKind
from reclaim.domain.selection.rules import decide


def select(
    members: Sequence[Member], usage: UsageIndex, state: PolicyState, policy: Policy, now: datetime
) -> list[Decision]:
    """One decision per member, in the order the directory listed them."""
    return [decide(m, usage, state, policy, now) for m in members]


def evaluated(decisions: Iterable[Decision]) -> list[Decision]:
    """The decisions about direct members: what caps and coverage are measured against."""
    return [d for d in decisions if d.kind is not DecisionKind.NESTED]

"""Selection: exactly one decision per member, with the rule that decided it and its evidence.

decision.py says what a decision is, usage.py sums the usage rows per member, joined.py dates a
member's join, rules.py decides one member, group.py decides the whole group."""

from reclaim.domain.selection.decision import (
    Decision,
    DecisionKind,
    Evidence,
    count_by_kind,
    removes,
)
from reclaim.domain.selection.group import evaluated, select
from reclaim.domain.selection.joined import BASELINE, Joined, member_since
from reclaim.domain.selection.rules import also_direct, decide
from reclaim.domain.selection.usage import UsageTally, index_usage, members_usage, tally_usage

__all__ = [
    "BASELINE",
    "Decision",
    "DecisionKind",
    "Evidence",
    "Joined",
    "UsageTally",
    "also_direct",
    "count_by_kind",
    "decide",
    "evaluated",
    "index_usage",
    "member_since",
    "members_usage",
    "removes",
    "select",
    "tally_usage",
]

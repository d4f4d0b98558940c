"""explain_user: one user's history under one policy, as `explain` and the console show it.

The decisions of every run that judged the user (with the run they belong to), everything the
ledger recorded about them, and, for the latest decision, the smallest change of each kind that
would have changed it (reclaim.domain.counterfactual).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reclaim.domain.counterfactual import scenario_from_record, what_would_change
from reclaim.domain.policy import Policy
from reclaim.domain.records import DecisionRecord, LedgerEntry, RunRecord
from reclaim.usecases.context import Context
from reclaim.usecases.report import user_history


@dataclass(frozen=True)
class JudgedInRun:
    """One run's decision about the user, with the run (its time, mode and status)."""

    run: RunRecord
    decision: DecisionRecord


@dataclass(frozen=True)
class UserExplanation:
    policy: Policy
    user: str  # as asked for
    decisions: list[JudgedInRun]  # oldest first
    ledger: list[LedgerEntry]  # oldest first
    what_would_change: list[str]  # for the latest decision, e.g. "ACTIVE at 2m more use in 90d"

    @property
    def latest(self) -> JudgedInRun | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def found(self) -> bool:
        return bool(self.decisions or self.ledger)

    def events(self) -> list[tuple[datetime, JudgedInRun | LedgerEntry]]:
        """Decisions and ledger entries in the order they happened."""
        dated: list[tuple[datetime, JudgedInRun | LedgerEntry]] = [
            (d.run.started_at, d) for d in self.decisions
        ]
        dated += [(e.at, e) for e in self.ledger]
        return sorted(dated, key=lambda item: item[0])


def explain_user(ctx: Context, policy: Policy, user: str) -> UserExplanation:
    """Read-only; a user with no history gives an explanation whose `found` is False."""
    decisions, ledger = user_history(ctx, policy, user)
    runs = {r.id: r for r in ctx.store.runs(policy=policy.name)}
    judged = sorted(
        (JudgedInRun(runs[d.run_id], d) for d in decisions if d.run_id in runs),
        key=lambda j: (j.run.started_at, j.run.id),
    )
    changes: list[str] = []
    if judged:
        latest = judged[-1]
        d = latest.decision
        scenario = scenario_from_record(
            d.user, d.decision, d.evidence, policy, latest.run.started_at
        )
        changes = [c.describe() for c in what_would_change(scenario)] if scenario else []
    return UserExplanation(policy, user, judged, ledger, changes)

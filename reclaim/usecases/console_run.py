"""console_run: one recorded run's decisions, filtered by decision and by a text in the user.

Read-only, from the store alone: the decisions as the run recorded them, with their evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from reclaim.domain.policy import Policy
from reclaim.domain.records import DecisionRecord, RunRecord
from reclaim.domain.selection import DecisionKind
from reclaim.usecases.context import Context, InputError

MAX_SEARCH = 200  # characters of the user search: longer never names one person better


@dataclass(frozen=True)
class RunFilter:
    decision: str = ""  # a DecisionKind value; "" for every decision
    user: str = ""  # part of any identifier or the display name, case-insensitive; "" for all

    def validated(self) -> RunFilter:
        """The filter with its text trimmed; InputError for a decision that does not exist or a
        search text that is too long."""
        decision, user = self.decision.strip().upper(), self.user.strip()
        if decision and decision not in {k.value for k in DecisionKind}:
            kinds = ", ".join(k.value for k in DecisionKind)
            raise InputError(f"decision: expected one of {kinds}, got {self.decision[:40]!r}")
        if len(user) > MAX_SEARCH:
            raise InputError(f"user: at most {MAX_SEARCH} characters")
        return RunFilter(decision, user)

    def admits(self, record: DecisionRecord) -> bool:
        if self.decision and record.decision != self.decision:
            return False
        if not self.user:
            return True
        wanted = self.user.casefold()
        return any(wanted in value.casefold() for value in record.user.to_dict().values())


@dataclass(frozen=True)
class RunView:
    policy: Policy
    run: RunRecord
    shown: list[DecisionRecord]  # the decisions the filter admits, by user
    stored: int  # every decision the run still has (retention keeps only CANDIDATE ones)
    filter: RunFilter


def console_run(ctx: Context, policy_name: str, run_id: str, wanted: RunFilter) -> RunView | None:
    """None when the policy is not configured or has no run with this id."""
    wanted = wanted.validated()
    policy = ctx.policies.get(policy_name)
    if policy is None:
        return None
    run = next((r for r in ctx.store.runs(policy=policy_name) if r.id == run_id), None)
    if run is None:
        return None
    decisions = ctx.store.run_decisions(policy_name, run_id)
    shown = sorted(
        (d for d in decisions if wanted.admits(d)),
        key=lambda d: (d.user.label.casefold(), d.state_key),
    )
    return RunView(policy, run, shown, len(decisions), wanted)

"""A request's wait for its approver (policy key `escalation`): who may decide, since when, why.

Kept on the request (`Request.approval`) from the escalation on: the approvers are looked up and
asked by the expiry tick (usecases/ask_approvers.py); the approver's decision is recorded by
usecases/record_approval.py; the approver's silence past the request's deadline applies
escalation.on_no_response (usecases/escalation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reclaim.domain.model import User
from reclaim.domain.policy.escalation import EscalateOn


class ApproverDecision(StrEnum):
    KEEP = "keep"  # she keeps the licence: protected like a "yes" for keep_after_yes
    RELEASE = "release"  # the removal goes ahead, re-decided and capped like every other


@dataclass(frozen=True)
class Approval:
    trigger: EscalateOn  # what sent the request to the approver
    escalated_at: datetime  # the answers up to then are the ones the approver is shown
    approvers: tuple[User, ...] = ()  # looked up when asked; empty until then
    via: str = ""  # "manager" or "fallback": where the approvers came from
    asked_at: datetime | None = None  # when the channel took the ask; None: not asked (yet)

    def allows(self, identity: str) -> bool:
        """Whether `identity` (UPN, mail, object id...) is one of this request's approvers."""
        return any(approver.matches(identity) for approver in self.approvers)

    def overrules(self, yes_at: datetime) -> bool:
        """A "yes" her approver had before them when releasing her no longer protects her
        (DESIGN §8 (1)); one given after the escalation still does."""
        return yes_at <= self.escalated_at

    @property
    def approver_labels(self) -> str:
        return ", ".join(a.label for a in self.approvers) or "nobody yet"

"""What the answer page shows behind a signed link, and what following it did: shared by the
user's links (usecases/answer_link.py) and her approver's (usecases/approval_link.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reclaim.domain.answer_links import SignedLink
from reclaim.domain.lifecycle import Request
from reclaim.domain.messages import Choice  # keep, release, restore: what the links preselect
from reclaim.domain.model import Answer
from reclaim.domain.policy import Policy
from reclaim.usecases.context import Context
from reclaim.usecases.record_answer import AnswerStatus
from reclaim.usecases.record_approval import ApprovalStatus

SOURCE = "answer-page"


class LinkProblem(Exception):
    """A link that cannot be acted on: `status` (4xx) and a message safe to show its holder."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LinkView:
    """What the page shows: the request, why it was made, its deadline and the choices."""

    link: SignedLink
    request: Request
    policy: Policy
    closes_at: datetime  # the answer's deadline or the end of the appeal window
    reason: str = ""  # the decision that opened the request, in words
    evidence: dict[str, str] = field(default_factory=dict)
    answers: tuple[Answer, ...] = ()  # what she answered to this request so far
    choices: tuple[Choice, ...] = ()  # what she may choose now ("" when nothing is left)
    note: str = ""  # why there are no (or fewer) choices
    token: str = ""  # the link itself: the form posts it back
    decisions: tuple[Answer, ...] = ()  # approval links: what her approvers decided so far

    @property
    def justification_required(self) -> bool:
        return self.policy.campaign.require_justification_for_keep


@dataclass(frozen=True)
class LinkResult:
    view: LinkView  # as it was before the choice
    choice: Choice
    status: AnswerStatus | None = None  # answers: what record_answer did
    restored: bool = False  # appeals: the licence is back
    approval: ApprovalStatus | None = None  # approval links: what record_approval did


def decision_of(ctx: Context, request: Request) -> tuple[str, dict[str, str]]:
    """The reason and evidence of the decision that opened the request."""
    for record in ctx.store.user_decisions(request.policy, request.state_key):
        if record.run_id == request.run_id:
            return record.reason, {
                k: str(v) for k, v in record.evidence.items() if v not in ("", None)
            }
    return request.reason, {}

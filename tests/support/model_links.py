"""The answer page's paths in the invariant model (tests/support/model.py): answers, appeals and
approvers' decisions through signed links (reclaim.usecases.answer_link), with links that may
have expired. A refused
link must change nothing; an accepted one is what the person said, and the judge holds the
removals that follow to it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import rule

from reclaim.domain.answer_links import LinkPurpose, SignedLink, sign_link
from reclaim.domain.appeal import answer_link, appeal_link
from reclaim.domain.lifecycle import RequestState
from reclaim.errors import TransientError
from reclaim.usecases.answer_link import LinkProblem, follow_link
from reclaim.usecases.context import Context
from reclaim.usecases.record_approval import ApprovalCommand, NotApprover

if TYPE_CHECKING:
    from tests.support.model import ReclaimMachine

KEY = b"the model's link key, 32 bytes +"
LABELS = [f"u{i}@c.com" for i in range(8)]
DAY = timedelta(days=1)


def approve_by_link(ctx: Context, command: ApprovalCommand, now: datetime) -> bool:
    """The approver's decision through the answer page, with a link signed for command.approver:
    True when recorded, False when the page refused a decision no longer open; NotApprover (403)
    as the approvals route raises it."""
    link = SignedLink(
        command.request_id, command.policy, command.approver, LinkPurpose.APPROVE, now + DAY
    )
    try:
        follow_link(
            ctx, sign_link(link, KEY), KEY, command.decision.value, command.justification, now
        )
    except LinkProblem as refused:
        if refused.status == 403:
            raise NotApprover(refused.message) from None
        return False
    return True


class LinkRules:
    """Rules mixed into ReclaimMachine."""

    @rule(
        label=st.sampled_from(LABELS),
        keep=st.booleans(),
        reason=st.sampled_from(["", "needed for the quarterly audit"]),
        expired=st.booleans(),
    )
    def answer_by_link(
        self: ReclaimMachine, label: str, keep: bool, reason: str, expired: bool
    ) -> None:
        mine = [r for r in self.store.requests(self.policy.name) if r.user.label == label]
        if not mine:
            return
        request, now = mine[-1], self.world.now
        until = now - timedelta(seconds=1) if expired else (request.deadline or now)
        token = sign_link(answer_link(request, until), KEY)

        def answer() -> None:
            try:
                follow_link(self.ctx, token, KEY, "keep" if keep else "release", reason, now)
            except LinkProblem:
                return  # refused: nothing was recorded, so the judge must not count it
            (self.world.yes if keep else self.world.no).setdefault(label, []).append(now)

        self.step(answer)

    @rule(label=st.sampled_from(LABELS))
    def appeal_by_link(self: ReclaimMachine, label: str) -> None:
        removed = [
            r
            for r in self.store.requests(self.policy.name, [RequestState.REMOVED])
            if r.user.label == label
        ]
        window = self.policy.appeal_within
        if not removed or window is None or self.world.directory_down:
            return
        request, now = removed[-1], self.world.now
        token = sign_link(appeal_link(request, request.updated_at, window), KEY)
        try:
            follow_link(self.ctx, token, KEY, "restore", "", now)
        except (LinkProblem, TransientError):
            return
        self.world.yes.setdefault(label, []).append(now)  # an appeal counts as a "yes"
        self.world.restored.append((request.id, now))

"""appeal_within: after a removal, the user may take her licence back herself for this long.

The removal message carries a signed link (reclaim.domain.answer_links, purpose APPEAL) that
expires at the removal plus `appeal_within`; following it restores the licence without an admin,
counts as a "yes", and is recorded as APPEALED beside the RESTORED entry (the appeal rate of the
report: appeals / removals).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reclaim.domain.answer_links import LinkPurpose, SignedLink
from reclaim.domain.durations import parse_duration

if TYPE_CHECKING:  # reading.py reads appeal_window, and the request's module reads the policy
    from reclaim.domain.lifecycle import Request

# A link lives as long as the window; a year is far past any sensible appeal.
MAX_APPEAL_WITHIN = timedelta(days=365)


def appeal_window(value: Any) -> timedelta:
    """The policy's `appeal_within` (a duration like 14d), or ValueError saying why not."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 14d, got {value!r}")
    window = parse_duration(value)
    if not timedelta(0) < window <= MAX_APPEAL_WITHIN:
        raise ValueError(f"must be longer than 0s and at most 365d, got {value!r}")
    return window


def recipient(request: Request) -> str:
    """Who a user's links are sent to and who acts on them: her UPN, else her mail."""
    return request.user.label


def appeal_link(request: Request, removed_at: datetime, window: timedelta) -> SignedLink:
    """The link of the removal message: this request, its user, until removal + window."""
    return SignedLink(
        request.id, request.policy, recipient(request), LinkPurpose.APPEAL, removed_at + window
    )


def answer_link(request: Request, expires_at: datetime) -> SignedLink:
    """The one-click answer for the ask, a reminder or a notice, valid until `expires_at` (the
    deadline the message names)."""
    return SignedLink(
        request.id, request.policy, recipient(request), LinkPurpose.ANSWER, expires_at
    )

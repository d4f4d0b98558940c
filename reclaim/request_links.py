"""The addresses of the answer page that a channel puts in its messages.

The personal channels (email, Teams) sign every link of a Message through
reclaim.adapters.links.LinkSigner; these two functions give one address for a channel that builds
its own message (the webhook's receiver, a script): `answer_url` for an ask, a reminder or a
notice, `appeal_url` for the removal. Both need RECLAIM_PUBLIC_URL and the link key
(RECLAIM_LINK_SECRET_NAME, read through the Secrets port; rotating it voids every link sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reclaim.adapters.links import LinkSigner, link_key
from reclaim.domain.answer_links import link_url, sign_link
from reclaim.domain.appeal import answer_link, recipient
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.messages import removal
from reclaim.domain.policy import Policy
from reclaim.ports import Secrets
from reclaim.settings import Settings


def answer_url(
    settings: Settings, secrets: Secrets, request: Request, expires_at: datetime | None = None
) -> str:
    """The one-click answer page of `request` for its user, valid until `expires_at` (default:
    the request's deadline)."""
    until = expires_at or request.deadline
    if until is None:
        raise ValueError(f"request {request.id} has no deadline: give the link's expiry")
    signer = LinkSigner.from_settings(settings, secrets)
    token = sign_link(answer_link(request, until), link_key(settings, secrets))
    return link_url(signer.public_url, token)


def appeal_url(settings: Settings, secrets: Secrets, policy: Policy, request: Request) -> str:
    """The appeal page of a removed request (the link of its removal message, valid for the
    policy's appeal_within after the removal); "" when the policy offers no appeal or the
    request is not REMOVED."""
    message = removal(policy, request, recipient(request))
    if message is None or request.state is not RequestState.REMOVED:
        return ""
    ((_, url),) = LinkSigner.from_settings(settings, secrets).links(message)
    return url


def appeal_settings_problem(settings: Settings, policies: Sequence[Policy]) -> str:
    """What `validate` reports when a policy offers appeals but links cannot be made, or ""."""
    offering = [p.name for p in policies if p.appeal_within is not None]
    missing = [
        name
        for name, value in (
            ("RECLAIM_LINK_SECRET_NAME", settings.link_secret_name),
            ("RECLAIM_PUBLIC_URL", settings.public_url),
        )
        if not value
    ]
    if offering and missing:
        return (
            f"policy(ies) {', '.join(offering)} offer appeals (appeal_within) through signed "
            f"links: set {', '.join(missing)}"
        )
    return ""

"""The addresses the channels put in their messages: signed links to the answer page.

A channel (email, Teams, the webhook) calls `answer_url` for an ask, a reminder or a notice, and
`appeal_url` for the message that tells a user her licence was removed. Both need
RECLAIM_PUBLIC_URL (where the function app answers) and the link key, the secret named by
RECLAIM_LINK_SECRET_NAME (read through the Secrets port; rotating it voids every link sent).
"""

from __future__ import annotations

from datetime import datetime

from reclaim.domain.answer_links import MIN_KEY_BYTES, link_url, sign_link
from reclaim.domain.appeal import answer_link, appeal_link
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.policy import Policy
from reclaim.errors import ConfigurationError
from reclaim.ports import Secrets
from reclaim.settings import Settings


def link_key(settings: Settings, secrets: Secrets) -> bytes:
    """The HMAC key of the links; ConfigurationError naming what to set when it is missing."""
    if not settings.link_secret_name:
        raise ConfigurationError(
            "signed links need a key: set RECLAIM_LINK_SECRET_NAME to the name of a secret of at "
            f"least {MIN_KEY_BYTES} bytes"
        )
    key = secrets.get(settings.link_secret_name).encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"the link secret {settings.link_secret_name!r} is shorter than {MIN_KEY_BYTES} bytes"
        )
    return key


def _public_url(settings: Settings) -> str:
    if not settings.public_url:
        raise ConfigurationError(
            "signed links point at the function app: set RECLAIM_PUBLIC_URL (https://...)"
        )
    return settings.public_url


def answer_url(
    settings: Settings, secrets: Secrets, request: Request, expires_at: datetime | None = None
) -> str:
    """The one-click answer page of `request` for its user, valid until `expires_at` (default:
    the request's deadline)."""
    until = expires_at or request.deadline
    if until is None:
        raise ValueError(f"request {request.id} has no deadline: give the link's expiry")
    return link_url(
        _public_url(settings), sign_link(answer_link(request, until), link_key(settings, secrets))
    )


def appeal_url(settings: Settings, secrets: Secrets, policy: Policy, request: Request) -> str:
    """The appeal page of a removed request, valid for the policy's appeal_within after the
    removal; "" when the policy offers no appeal or the request is not REMOVED."""
    if policy.appeal_within is None or request.state is not RequestState.REMOVED:
        return ""
    link = appeal_link(request, request.updated_at, policy.appeal_within)
    return link_url(_public_url(settings), sign_link(link, link_key(settings, secrets)))


def appeal_settings_problem(settings: Settings, policies: list[Policy] | tuple[Policy, ...]) -> str:
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

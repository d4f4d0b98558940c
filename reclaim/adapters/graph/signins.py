"""The `entra-signins` usage source: /auditLogs/signIns.

Graph takes only $filter, $top and $skiptoken there: a $select is refused with 400 ("Query
option 'Select' is not allowed"), so each sign-in comes whole. $filter is on appId and
createdDateTime only. v1.0 lists interactive sign-ins only; with usage.non_interactive_beta the
non-interactive ones are read too, from the beta endpoint with
`signInEventTypes/any(t: t eq 'nonInteractiveUser')` (beta: unsupported in production, may change).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from reclaim.adapters.graph.client import GraphClient, shared_client
from reclaim.adapters.graph.errors import (
    READ_SIGNINS,
)
from reclaim.adapters.graph.pacing import RateLimiter
from reclaim.adapters.graph.pages import fetch_page, page_items
from reclaim.adapters.graph.paths import GUID, odata_string, query
from reclaim.domain.model import UsageRow, normalise_key
from reclaim.domain.policy import MatchOn, Policy
from reclaim.errors import (
    ConfigurationError,
    PermanentError,
    SourceError,
    TransientError,
)
from reclaim.ports import (
    Secrets,
    UsageExport,
)

if TYPE_CHECKING:
    from reclaim.settings import Settings

log = logging.getLogger(__name__)

SIGNINS_PAGE = 1000  # the largest page of /auditLogs/signIns


def beta_root(base_url: str) -> str:
    """Graph's beta endpoint beside the configured v1.0 one (same host, same prefix)."""
    if not base_url.endswith("/v1.0"):
        raise ConfigurationError(
            "usage.non_interactive_beta reads Graph's beta endpoint next to v1.0: "
            f"RECLAIM_GRAPH_BASE_URL must end in /v1.0, got {base_url!r}"
        )
    return base_url[: -len("/v1.0")] + "/beta"


def beta_url(base_url: str, path: str) -> str:
    """The absolute URL of `path` (written from the service root: /beta/...) on Graph's beta."""
    return beta_root(base_url) + path.removeprefix("/beta")


# ---- usage: Entra ID sign-in logs ---------------------------------------------------------------


def graph_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class EntraSignInsUsage:
    """reclaim.ports.UsageSource from /auditLogs/signIns: one row per sign-in to the policy's
    application within the look-back window (validation keeps it within the log's retention).
    The log records every sign-in, so a member absent from it signed in zero times."""

    KEY_FIELDS = {
        MatchOn.UPN: "userPrincipalName",
        MatchOn.MAIL: "userPrincipalName",  # the log has no mail; UPN equals mail in most tenants
        MatchOn.OBJECT_ID: "userId",
    }

    def __init__(self, client: GraphClient, limiter: RateLimiter | None = None) -> None:
        self._client = client
        self._limiter = limiter or RateLimiter()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> EntraSignInsUsage:
        return cls(shared_client(settings, secrets))

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        spec = policy.usage
        if not GUID.match(spec.app_id or ""):
            raise ConfigurationError(
                f"policy {policy.name}: usage.app_id must be the application's appId (a GUID) "
                "for source entra-signins"
            )
        key_field = self.KEY_FIELDS.get(spec.match_on)
        if key_field is None:
            raise ConfigurationError(
                f"policy {policy.name}: entra-signins matches users by upn, mail or object_id, "
                f"not {spec.match_on.value}"
            )
        since = (now - spec.lookback).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = f"appId eq {odata_string(spec.app_id)} and createdDateTime ge {since}"
        # No $select on either: Graph refuses it on the sign-in log.
        listings = [
            (
                "/auditLogs/signIns?" + query(filter=condition, top=SIGNINS_PAGE),
                f"read sign-ins of app {spec.app_id}",
            )
        ]
        if spec.non_interactive_beta:
            beta = f"{condition} and signInEventTypes/any(t: t eq 'nonInteractiveUser')"
            listings.append(
                (
                    beta_url(
                        self._client.base_url,
                        "/beta/auditLogs/signIns?" + query(filter=beta, top=SIGNINS_PAGE),
                    ),
                    f"read non-interactive sign-ins of app {spec.app_id} (Graph beta)",
                )
            )
        rows: list[Iterator[UsageRow]] = []
        for path, what in listings:
            try:  # the first page eagerly: a permission problem shows before the run goes on
                first = self._page(path, what)
            except (TransientError, PermanentError) as error:
                raise SourceError(f"{what} failed, the run stops: {error}") from error
            rows.append(self._rows(first, key_field, what))
        # The log's own clock: its newest sign-in (rows carry their createdDateTime).
        kinds = "sign-in" if spec.non_interactive_beta else "interactive sign-in"
        clock = f"newest {kinds} to app {spec.app_id} in the Entra sign-in log"
        return UsageExport(observed_at=None, rows=chain.from_iterable(rows), clock=clock)

    def _page(self, path: str, what: str) -> dict[str, Any]:
        self._limiter.acquire()
        return fetch_page(self._client, path, permission=READ_SIGNINS, what=what)

    def _rows(self, page: dict[str, Any], key_field: str, what: str) -> Iterator[UsageRow]:
        for item in page_items(page, lambda link: self._page(link, what), what):
            key = normalise_key(str(item.get(key_field) or ""))
            if key:
                yield UsageRow(key, 1.0, at=graph_time(item.get("createdDateTime")))

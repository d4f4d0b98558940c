"""The `entra-signins` usage source: /auditLogs/signIns."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reclaim.adapters.graph.client import GraphClient, shared_client
from reclaim.adapters.graph.errors import (
    READ_SIGNINS,
)
from reclaim.adapters.graph.pacing import RateLimiter
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

# the largest $top Graph allows for directory collections
SIGNINS_PAGE = 1000  # the largest page of /auditLogs/signIns


# ---- usage: Entra ID sign-in logs ---------------------------------------------------------------


def _signed_in_at(value: Any) -> datetime | None:
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
        path = "/auditLogs/signIns?" + query(
            filter=f"appId eq {odata_string(spec.app_id)} and createdDateTime ge {since}",
            select="userPrincipalName,userId,createdDateTime",
            top=SIGNINS_PAGE,
        )
        what = f"read sign-ins of app {spec.app_id}"
        try:  # the first page eagerly: a permission problem shows before the run goes on
            first = self._page(path, what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed, the run stops: {error}") from error
        # The log's own clock: its newest sign-in (rows carry their createdDateTime).
        clock = f"newest sign-in to app {spec.app_id} in the Entra sign-in log"
        return UsageExport(observed_at=None, rows=self._rows(first, key_field, what), clock=clock)

    def _page(self, path: str, what: str) -> dict[str, Any]:
        self._limiter.acquire()
        reply = self._client.call("GET", path, permission=READ_SIGNINS, what=what)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise SourceError(f"Graph {what}: unexpected {reply.describe()}")
        if not isinstance(reply.body.get("value"), list):
            raise SourceError(f"Graph {what}: a page without a value list")
        return reply.body

    def _rows(self, page: dict[str, Any], key_field: str, what: str) -> Iterator[UsageRow]:
        try:
            while True:
                for item in page["value"]:
                    key = normalise_key(str(item.get(key_field) or ""))
                    if key:
                        yield UsageRow(key, 1.0, at=_signed_in_at(item.get("createdDateTime")))
                link = page.get("@odata.nextLink")
                if not link:
                    return
                page = self._page(link, what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed part-way, the run stops: {error}") from error

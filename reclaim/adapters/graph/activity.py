"""The `entra-activity` usage source: each user's signInActivity, tenant-wide.

`GET /users?$select=id,userPrincipalName,mail,createdDateTime,signInActivity&$top=999`, every
page followed (with signInActivity Graph may answer pages smaller than $top). signInActivity is
the date of the last sign-in to any application, not to the policy's: what the "inactive users"
reviews of Access Reviews use. It needs AuditLog.Read.All and User.Read.All, and Entra ID P1/P2.

The date judged is lastSuccessfulSignInDateTime (interactive or not); it exists from December
2023 on and was not backfilled, so where it is null lastSignInDateTime (the last interactive
attempt) stands in, and the evidence says which one was used. A user with neither never signed
in (or not since April 2020): a row with no date, judged against the account's age.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reclaim.adapters.graph.client import GraphClient, shared_client
from reclaim.adapters.graph.pages import fetch_page, page_items
from reclaim.adapters.graph.paths import MEMBERS_PAGE, query
from reclaim.adapters.graph.signins import graph_time
from reclaim.domain.model import UsageRow, normalise_key
from reclaim.domain.policy import MatchOn, Policy
from reclaim.errors import ConfigurationError, PermanentError, SourceError, TransientError
from reclaim.ports import Secrets, UsageExport

if TYPE_CHECKING:
    from reclaim.settings import Settings

READ_ACTIVITY = "AuditLog.Read.All and User.Read.All (signInActivity also needs Entra ID P1 or P2)"
ACTIVITY_FIELDS = "id,userPrincipalName,mail,createdDateTime,signInActivity"
SUCCESSFUL = "lastSuccessfulSignInDateTime"
FALLBACK = (
    "lastSignInDateTime, as lastSuccessfulSignInDateTime is null (not kept before December 2023)"
)


def last_sign_in(activity: Any) -> tuple[datetime | None, str]:
    """The date judged and which property it came from (see the module docstring)."""
    if not isinstance(activity, dict):
        return None, ""
    successful = graph_time(activity.get(SUCCESSFUL))
    if successful is not None:
        return successful, SUCCESSFUL
    fallback = graph_time(activity.get("lastSignInDateTime"))
    return (fallback, FALLBACK) if fallback is not None else (None, "")


class EntraActivityUsage:
    """reclaim.ports.UsageSource from user.signInActivity: one row per user of the tenant,
    dated by their last sign-in (no date: never signed in)."""

    KEY_FIELDS = {MatchOn.UPN: "userPrincipalName", MatchOn.MAIL: "mail", MatchOn.OBJECT_ID: "id"}

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> EntraActivityUsage:
        return cls(shared_client(settings, secrets))

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        key_field = self.KEY_FIELDS.get(policy.usage.match_on)
        if key_field is None:
            raise ConfigurationError(
                f"policy {policy.name}: entra-activity matches users by upn, mail or object_id, "
                f"not {policy.usage.match_on.value}"
            )
        path = "/users?" + query(select=ACTIVITY_FIELDS, top=MEMBERS_PAGE)
        what = "read the users' sign-in activity"
        try:  # the first page eagerly: a permission problem shows before the run goes on
            first = self._page(path, what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed, the run stops: {error}") from error
        clock = "newest sign-in of any user in the tenant (user.signInActivity)"
        return UsageExport(observed_at=None, rows=self._rows(first, key_field, what), clock=clock)

    def _page(self, path: str, what: str) -> dict[str, Any]:
        return fetch_page(self._client, path, permission=READ_ACTIVITY, what=what)

    def _rows(self, page: dict[str, Any], key_field: str, what: str) -> Iterator[UsageRow]:
        for item in page_items(page, lambda link: self._page(link, what), what):
            key = normalise_key(str(item.get(key_field) or ""))
            if key:
                at, at_from = last_sign_in(item.get("signInActivity"))
                yield UsageRow(key, None, at=at, at_from=at_from)

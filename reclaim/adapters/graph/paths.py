"""Graph resource paths, OData literals and the user fields reclaim reads."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from reclaim.adapters.graph.errors import READ_USERS
from reclaim.domain.model import User
from reclaim.errors import PermissionDenied

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

USER_FIELDS = (
    "id,userPrincipalName,mail,displayName,onPremisesSamAccountName,onPremisesSecurityIdentifier"
)
GROUP_FIELDS = (
    "id,displayName,groupTypes,membershipRule,onPremisesSyncEnabled,securityEnabled,"
    "mailEnabled,assignedLicenses"
)
# Graph's JSON batching takes at most 20 requests per $batch
MEMBERS_PAGE = 999  # the largest $top Graph allows for directory collections
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# ---- paths and OData ---------------------------------------------------------------------------


def segment(value: str) -> str:
    """An id as one path segment: `/`, `?`, `#` and `..` cannot change which resource is hit."""
    if not value:
        raise ValueError("an empty id cannot name a Graph resource")
    return quote(value, safe="")


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, inner single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query(**params: str | int) -> str:
    """`$select=...&$top=...` from select=..., top=...; values percent-encoded."""
    return "&".join(f"${name}={quote(str(value), safe=',()=:$')}" for name, value in params.items())


def member_ref_path(group: str, object_id: str) -> str:
    """The DELETE path that removes a member. Without /$ref Graph deletes the user object."""
    return f"/groups/{segment(group)}/members/{segment(object_id)}/$ref"


def user_lookup_path(identifier: str) -> str:
    if GUID.match(identifier):
        return f"/users/{segment(identifier)}?{query(select=USER_FIELDS)}"
    literal = odata_string(identifier)
    return f"/users?{query(filter=f'userPrincipalName eq {literal} or mail eq {literal}', select=USER_FIELDS)}"


def listed_user(item: Mapping[str, Any], what: str) -> User:
    """A user from a listing; fails closed when Graph left out who it is. Without User.Read.All
    Graph still answers 200, with users whose userPrincipalName, mail, SAM and SID are null
    (only @odata.type and id): every user has a UPN, so a null one means the permission is
    missing, and such a listing must not be judged (nobody could be matched to usage)."""
    if not item.get("userPrincipalName"):
        raise PermissionDenied(
            f"Graph answered {what} with users whose userPrincipalName is null: the app lacks "
            f"{READ_USERS} (Graph then answers 200 with nameless users, not 403). Grant the "
            f"application permission {READ_USERS} with admin consent",
            READ_USERS,
        )
    return user_from(item)


def user_from(item: Mapping[str, Any]) -> User:
    return User(
        object_id=item.get("id") or "",
        upn=item.get("userPrincipalName") or "",
        mail=item.get("mail") or "",
        sam_account_name=item.get("onPremisesSamAccountName") or "",
        sid=item.get("onPremisesSecurityIdentifier") or "",
        display_name=item.get("displayName") or "",
    )

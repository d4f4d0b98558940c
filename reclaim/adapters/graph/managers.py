"""Who manages a user, from Entra ID: GET /users/{id}/manager (escalation.approver: manager).

Graph answers the manager as a directoryObject carrying its @odata.type (a user, or an
organisational contact, which has a mail address but no UPN), and 404 Request_ResourceNotFound
when no manager is set (or the user is unknown: she has no manager either), which sends the
request to escalation.fallback. Needs User.Read.All, which the Graph path already asks for.
"""

from __future__ import annotations

from typing import Any

from reclaim.adapters.graph.client import GraphClient, final_throttle
from reclaim.adapters.graph.errors import READ_USERS
from reclaim.adapters.graph.paths import query, segment
from reclaim.domain.model import User
from reclaim.errors import SourceError

FIELDS = "id,userPrincipalName,mail,displayName"


class GraphManagers:
    """reclaim.ports.Managers over Microsoft Graph."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    def manager(self, user: User) -> User | None:
        key = user.object_id or user.upn
        if not key:
            return None  # nothing Graph could look her up by: the fallback approvers decide
        reply = self._client.call(
            "GET",
            f"/users/{segment(key)}/manager?{query(select=FIELDS)}",
            permission=READ_USERS,
            what="read a user's manager",
        )
        if reply.status == 404:
            return None
        if throttled := final_throttle(reply, "read a user's manager"):
            raise throttled
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise SourceError(f"Graph read a user's manager: {reply.describe()}")
        return _manager(reply.body)


def _manager(body: dict[str, Any]) -> User:
    manager = User(
        object_id=str(body.get("id") or ""),
        upn=str(body.get("userPrincipalName") or ""),
        mail=str(body.get("mail") or ""),
        display_name=str(body.get("displayName") or ""),
    )
    if not (manager.upn or manager.mail):
        raise SourceError(
            f"Graph answered a manager ({body.get('@odata.type') or 'directoryObject'}) with "
            "neither userPrincipalName nor mail: nobody to ask"
        )
    return manager

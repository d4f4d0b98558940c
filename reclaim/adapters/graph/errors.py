"""Graph's refusals sorted by what they stop: the operation itself, or one object.

A 401/403 on the operation means the app lacks a permission (or its token belongs elsewhere):
every call of that kind would fail the same way, so it is PermissionDenied and the policy's
circuit breaker opens at the first one. A 403 about one object, such as a user in a restricted
management administrative unit, stops only that user's removal: PermanentError. Graph gives both
the code Authorization_RequestDenied; only the message tells them apart, so this is the second
place (after "already a member" on add) where reclaim reads Graph's wording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reclaim.errors import PermanentError, PermissionDenied

if TYPE_CHECKING:
    from reclaim.adapters.graph.client import GraphReply

WRITE_MEMBERS = "GroupMember.ReadWrite.All"
READ_GROUPS = "GroupMember.Read.All (or GroupMember.ReadWrite.All)"
READ_USERS = "User.Read.All"
# Older documentation of the sign-in log also asks for Directory.Read.All (api-facts.md section 8).
READ_SIGNINS = "AuditLog.Read.All and Directory.Read.All (the tenant also needs Entra ID P1 or P2)"
WRITE_LICENCES = "LicenseAssignment.ReadWrite.All (or User.ReadWrite.All)"
READ_LICENCE_HOLDERS = "User.Read.All (to list who holds a SKU and how it was assigned)"
# The start of what Graph says when the target object is protected by a restricted management
# administrative unit ("... can only be modified by administrators scoped to that administrative
# unit").
_RESTRICTED_OBJECT = "target object is a member of a restricted management administrative unit"


def denied(reply: GraphReply, permission: str, what: str) -> PermissionDenied | PermanentError:
    if reply.status == 401:
        return PermissionDenied(
            f"Graph refused the app's token for {what} ({reply.describe()}): check "
            "RECLAIM_TENANT_ID, RECLAIM_CLIENT_ID and RECLAIM_GRAPH_BASE_URL belong together",
            permission,
        )
    if _RESTRICTED_OBJECT in reply.error_message.lower():
        return PermanentError(
            f"Graph denied {what} for this object only ({reply.describe()}: it is in a "
            "restricted management administrative unit); an administrator scoped to that unit "
            "must make this change"
        )
    also = (
        " (role-assignable groups also need RoleManagement.ReadWrite.Directory)"
        if permission == WRITE_MEMBERS
        else ""
    )
    return PermissionDenied(
        f"Graph denied {what} ({reply.describe()}): grant the app registration the application "
        f"permission {permission} with admin consent{also}",
        permission,
    )

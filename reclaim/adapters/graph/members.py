"""Entra ID membership as selection needs it: join dates, nested groups, transitive members.

EntraDirectory is the Directory of `directory.kind: entra`: GraphDirectory's group check,
removals and restores, with a member listing that carries the evidence of when each member
joined, and the groups inside a group:

- join dates from the directory audit log: `GET /auditLogs/directoryAudits` filtered on
  activityDisplayName eq 'Add member to group' and targetResources/any(t: t/id eq '{group}'),
  newest add per user (the log keeps 30 days with Entra ID P1/P2, 7 without; older joins have no
  evidence there). It needs AuditLog.Read.All; without it the listing fails closed, because a
  member added yesterday would otherwise be judged like one of ten years;
- each user's createdDateTime: nobody joined before they existed (a lower bound);
- each user's accountEnabled (User.Read.All) and employeeLeaveDateTime (User-LifeCycleInfo.Read.All):
  leavers (selection's DISABLED). Graph answers 200 with null for a property the app may not
  read, so a null accountEnabled (always true or false when readable) makes the account's state
  unknown, saying which permission is missing, never "enabled"; a null leave date is no leave
  date, or a missing User-LifeCycleInfo.Read.All, which the answer cannot tell apart (README);
- nested groups: `/members/microsoft.graph.group`, and users at any depth through
  `/transitiveMembers/microsoft.graph.user` (for exclusion groups and nested licensing groups).
Every listing follows @odata.nextLink; a failure part-way raises SourceError (never a partial read).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reclaim.adapters.graph.client import shared_client
from reclaim.adapters.graph.directory import GraphDirectory
from reclaim.adapters.graph.errors import READ_GROUPS
from reclaim.adapters.graph.licences import HOLDING
from reclaim.adapters.graph.paths import (
    MEMBERS_PAGE,
    USER_FIELDS,
    listed_user,
    odata_string,
    query,
    segment,
)
from reclaim.domain.model import Account, Member, User
from reclaim.ports import GroupInfo, Secrets

if TYPE_CHECKING:
    from reclaim.settings import Settings

READ_AUDIT = "AuditLog.Read.All (the directory audit log gives members' join dates)"
ADD_MEMBER = "Add member to group"
# licenseAssignmentStates: who also holds a SKU directly (a removal from the group frees no seat)
ACCOUNT_FIELDS = "accountEnabled,employeeLeaveDateTime"  # leavers (see the module docstring)
MEMBER_FIELDS = f"{USER_FIELDS},createdDateTime,licenseAssignmentStates,{ACCOUNT_FIELDS}"
UNREAD_ENABLED = "accountEnabled not returned: the app needs User.Read.All"
JOINED_FROM = "Entra audit log: Add member to group"


def direct_skus(user: Mapping[str, Any]) -> frozenset[str]:
    """The SKUs assigned to the user directly (assignedByGroup null) that hold a seat."""
    states = user.get("licenseAssignmentStates")
    if not states:
        return frozenset()  # the shared empty set: most members hold no direct licence
    return frozenset(
        str(s.get("skuId") or "").lower()
        for s in (states if isinstance(states, list) else [])
        if isinstance(s, dict) and not s.get("assignedByGroup") and s.get("state") in HOLDING
    )


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None  # a date Graph would not write: no evidence rather than a wrong one


def account_from(item: dict[str, Any]) -> Account:
    """accountEnabled and employeeLeaveDateTime, each read on its own (see the module docstring)."""
    enabled = item.get("accountEnabled")
    known = isinstance(enabled, bool)
    return Account(
        enabled=enabled if known else None,
        left_at=_time(item.get("employeeLeaveDateTime")),
        source="Entra accountEnabled: false" if enabled is False else "",
        leave_source="Entra employeeLeaveDateTime",
        unread="" if known else UNREAD_ENABLED,
    )


class EntraDirectory(GraphDirectory):
    """reclaim.ports.Directory for Entra ID (see the module docstring)."""

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> EntraDirectory:
        return cls(shared_client(settings, secrets))

    def members(self, group: str) -> Iterator[Member]:
        """Direct user members with their join evidence; the audit log is read first."""
        joined = self.join_dates(group)
        path = (
            f"/groups/{segment(group)}/members/microsoft.graph.user?"
            f"{query(select=MEMBER_FIELDS, top=MEMBERS_PAGE)}"
        )
        what = f"list members of group {group}"
        for item in self._pages(path, READ_GROUPS, what, group):
            user = listed_user(item, what)
            added = joined.get(user.object_id)
            yield Member(
                user,
                added_at=added,
                added_from=JOINED_FROM if added else "",
                created_at=_time(item.get("createdDateTime")),
                direct_skus=direct_skus(item),
                account=account_from(item),
            )

    def member_groups(self, group: str) -> list[GroupInfo]:
        path = (
            f"/groups/{segment(group)}/members/microsoft.graph.group?"
            f"{query(select='id,displayName', top=MEMBERS_PAGE)}"
        )
        return [
            GroupInfo(id=str(item.get("id") or ""), display_name=str(item.get("displayName") or ""))
            for item in self._pages(path, READ_GROUPS, f"list groups in group {group}", group)
        ]

    def transitive_users(self, group: str) -> Iterator[User]:
        path = (
            f"/groups/{segment(group)}/transitiveMembers/microsoft.graph.user?"
            f"{query(select=USER_FIELDS, top=MEMBERS_PAGE)}"
        )
        what = f"list users in group {group} and its nested groups"
        for item in self._pages(path, READ_GROUPS, what, group):
            yield listed_user(item, what)

    def join_dates(self, group: str) -> dict[str, datetime]:
        """User id -> the newest "Add member to group" of that user to `group` in the log."""
        condition = (
            f"activityDisplayName eq {odata_string(ADD_MEMBER)} and "
            f"targetResources/any(t: t/id eq {odata_string(group)})"
        )
        path = f"/auditLogs/directoryAudits?{query(filter=condition)}"
        newest: dict[str, datetime] = {}
        for entry in self._pages(path, READ_AUDIT, f"read who was added to group {group}", group):
            at = _time(entry.get("activityDateTime"))
            if at is None or (entry.get("result") not in (None, "success")):
                continue
            for target in entry.get("targetResources") or []:
                if not isinstance(target, dict) or target.get("type") != "User":
                    continue  # the other target is the group itself
                user_id = str(target.get("id") or "")
                if user_id and (user_id not in newest or at > newest[user_id]):
                    newest[user_id] = at
        return newest

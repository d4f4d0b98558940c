"""The Directory of `directory.kind: entra-licence`: a SKU assigned directly to users.

The policy's "group" is the SKU: its members are the users who hold it, and a removal takes the
direct assignment away (Graph: user assignLicense, LicenseAssignment.ReadWrite.All or
User.ReadWrite.All):

- who holds it: `GET /users?$filter=assignedLicenses/any(x:x/skuId eq {sku})` with
  `ConsistencyLevel: eventual` and `$count=true` (an advanced query), selecting
  licenseAssignmentStates to tell a direct assignment (assignedByGroup null) from one inherited
  from a group. assignedLicenses counts both, so users holding it only through a group are
  listed too: they are decided NESTED ("licence inherited from group X; use a group policy"),
  and so are users holding it both ways, since removing the direct one would free no seat;
- the direct assignment's lastUpdatedDateTime is its join date (a change of its plans moves it
  later, which only makes the user count as new for longer: never removed sooner);
- remove: read the user's licence states (the decision may be hours old), then
  `POST /users/{id}/assignLicense {"addLicenses": [], "removeLicenses": [sku]}`; the plans that
  were disabled go in the removal's detail, so that
- restore: `{"addLicenses": [{"skuId": sku, "disabledPlans": [as before, else none]}],
  "removeLicenses": []}` gives the same assignment back.
Graph's own refusal of an inherited licence (400 "User license is inherited from a group
membership ...") is an error of that user, naming the group policy to use instead.
Exclusion groups are Entra groups, read as by `entra` (transitive members).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reclaim.adapters.graph.client import GraphClient, GraphReply, final_throttle, shared_client
from reclaim.adapters.graph.errors import READ_LICENCE_HOLDERS, READ_USERS, WRITE_LICENCES
from reclaim.adapters.graph.licences import HOLDING
from reclaim.adapters.graph.members import ACCOUNT_FIELDS, EntraDirectory, account_from
from reclaim.adapters.graph.paths import (
    GUID,
    MEMBERS_PAGE,
    USER_FIELDS,
    listed_user,
    query,
    segment,
)
from reclaim.domain.model import Member, User
from reclaim.errors import GroupRefused, PermanentError, TransientError, UserNotFound
from reclaim.ports import (
    AddOutcome,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    Secrets,
    Sending,
    unmarked,
)

if TYPE_CHECKING:
    from reclaim.settings import Settings

LICENCE_FIELDS = "assignedLicenses,licenseAssignmentStates"
HOLDER_FIELDS = f"{USER_FIELDS},createdDateTime,{LICENCE_FIELDS},{ACCOUNT_FIELDS}"
ADVANCED_QUERY = {"ConsistencyLevel": "eventual"}  # with $count=true: an advanced query
JOINED_FROM = "the direct assignment's lastUpdatedDateTime"
# Graph's 400 for a licence that comes from a group: the only signal its code does not carry.
_INHERITED = "inherited from a group membership"
_NOT_HELD = "does not have a corresponding license"
_PLANS = re.compile(r"disabledPlans: ([0-9a-fA-F,-]*)")


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class EntraLicenceDirectory:
    """reclaim.ports.Directory over one SKU's direct assignments (see the module docstring)."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client
        self._groups = EntraDirectory(client)  # exclusion groups, users by UPN, paging

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> EntraLicenceDirectory:
        return cls(shared_client(settings, secrets))

    def check_group(self, group: str) -> GroupInfo:
        if not GUID.match(group):
            raise GroupRefused(f"entra-licence needs the SKU's skuId (a GUID), not {group!r}")
        return GroupInfo(id=group, display_name=f"SKU {group}")

    def members(self, group: str) -> Iterator[Member]:
        """Every user holding the SKU, with how it was assigned (page by page, 999 each)."""
        sku = group.lower()
        what = f"list the users holding SKU {group}"
        condition = f"assignedLicenses/any(x:x/skuId eq {sku})"
        path = (
            f"/users?{query(filter=condition, select=HOLDER_FIELDS, top=MEMBERS_PAGE)}&$count=true"
        )
        pages = self._groups._pages(path, READ_LICENCE_HOLDERS, what, group, ADVANCED_QUERY)
        for item in pages:
            states = _states(item, sku)
            inherited = next((s["assignedByGroup"] for s in states if s.get("assignedByGroup")), "")
            direct = next((s for s in states if not s.get("assignedByGroup")), None)
            added = _time(direct.get("lastUpdatedDateTime")) if direct else None
            yield Member(
                listed_user(item, what),
                added_at=added,
                added_from=JOINED_FROM if added else "",
                created_at=_time(item.get("createdDateTime")),
                inherited_from=str(inherited),
                account=account_from(item),  # leavers holding the SKU (see members.py)
            )

    def member_groups(self, group: str) -> list[GroupInfo]:
        return []  # a SKU has no nested groups

    def transitive_users(self, group: str) -> Iterator[User]:
        return self._groups.transitive_users(group)

    def remove(
        self, group: str, user: User, *, sending: Sending = unmarked, **_: str
    ) -> RemovalResult:
        """Take the direct assignment away, after reading it again (two requests)."""
        sku = group.lower()
        object_id = self._groups._object_id(user)
        what = f"remove SKU {group} from {user.label}"
        held = self._read(object_id, user, what)
        states = _states(held, sku)
        inherited = next((s["assignedByGroup"] for s in states if s.get("assignedByGroup")), "")
        if inherited:
            raise PermanentError(_inherited(user, group, inherited))
        direct = next((s for s in states if not s.get("assignedByGroup")), None)
        if direct is None and sku not in _assigned(held):
            return RemovalResult(RemovalOutcome.NOT_MEMBER, f"no longer holds SKU {group}")
        plans = [str(p) for p in (direct or {}).get("disabledPlans") or []]
        sending()
        reply = self._client.call(
            "POST",
            f"/users/{segment(object_id)}/assignLicense",
            json={"addLicenses": [], "removeLicenses": [sku]},
            permission=WRITE_LICENCES,
            what=what,
        )
        if reply.status == 200:
            return RemovalResult(
                RemovalOutcome.REMOVED,
                f"direct assignment of {group} removed; disabledPlans: {','.join(plans)}",
            )
        if reply.status == 400 and _NOT_HELD in reply.error_message:
            return RemovalResult(
                RemovalOutcome.NOT_MEMBER, reply.describe(), after_own_write=reply.after_unanswered
            )
        raise _refused(reply, user, group, what)

    def add(self, group: str, user: User, *, removed: str = "", **_: str) -> AddOutcome:
        """Assign the SKU directly again, with the plans disabled as they were when removed."""
        sku = group.lower()
        object_id = self._groups._object_id(user)
        what = f"assign SKU {group} to {user.label} again"
        if sku in _assigned(self._read(object_id, user, what)):
            return AddOutcome.ALREADY_MEMBER
        found = _PLANS.search(removed)
        plans = [p for p in (found.group(1) if found else "").split(",") if GUID.match(p)]
        reply = self._client.call(
            "POST",
            f"/users/{segment(object_id)}/assignLicense",
            json={"addLicenses": [{"skuId": sku, "disabledPlans": plans}], "removeLicenses": []},
            permission=WRITE_LICENCES,
            what=what,
        )
        if reply.status == 200:
            return AddOutcome.ADDED
        raise _refused(reply, user, group, what)

    def _read(self, object_id: str, user: User, what: str) -> dict[str, Any]:
        reply = self._client.call(
            "GET",
            f"/users/{segment(object_id)}?{query(select=LICENCE_FIELDS)}",
            permission=READ_USERS,
            what=f"read the licences of {user.label}",
        )
        if reply.status == 404:
            raise UserNotFound(f"Entra ID has no user {user.label}")
        if reply.status != 200:
            raise _refused(reply, user, "", what)
        if not isinstance(reply.body, dict):
            raise TransientError(f"Graph {what}: answered 200 without a JSON object")
        return reply.body


def _states(user: Mapping[str, Any], sku: str) -> list[Mapping[str, Any]]:
    """The user's assignments of `sku` that hold a seat (Active or ActiveWithError)."""
    states = user.get("licenseAssignmentStates") or []
    return [
        s
        for s in states
        if isinstance(s, dict)
        and str(s.get("skuId") or "").lower() == sku
        and s.get("state") in HOLDING
    ]


def _assigned(user: Mapping[str, Any]) -> set[str]:
    licences = user.get("assignedLicenses") or []
    return {str(a.get("skuId") or "").lower() for a in licences if isinstance(a, dict)}


def _inherited(user: User, sku: str, group: str) -> str:
    source = f"group {group}" if group else "a group"
    return (
        f"licence {sku} of {user.label} is inherited from {source}; use a group policy "
        f"(directory.kind entra) for {source}: removing a direct assignment frees no seat"
    )


def _refused(reply: GraphReply, user: User, sku: str, what: str) -> Exception:
    if reply.status == 404:
        return UserNotFound(f"cannot {what}: Entra ID has no such user")
    if reply.status == 400 and _INHERITED in reply.error_message:
        return PermanentError(f"{_inherited(user, sku, '')} ({reply.describe()})")
    return final_throttle(reply, what) or PermanentError(
        f"Graph refused to {what} ({reply.describe()})"
    )

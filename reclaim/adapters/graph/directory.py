"""reclaim.ports.Directory for Entra ID groups with assigned membership."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from reclaim.adapters.graph.client import (
    BatchItem,
    GraphClient,
    GraphReply,
    final_throttle,
    shared_client,
)
from reclaim.adapters.graph.errors import (
    READ_GROUPS,
    READ_USERS,
    WRITE_MEMBERS,
    denied,
)
from reclaim.adapters.graph.paths import (
    GROUP_FIELDS,
    MEMBERS_PAGE,
    USER_FIELDS,
    listed_user,
    member_ref_path,
    query,
    segment,
    user_from,
    user_lookup_path,
)
from reclaim.domain.model import Member, User, normalise_key
from reclaim.errors import (
    GroupRefused,
    PermanentError,
    ReclaimError,
    SourceError,
    TransientError,
    UserNotFound,
)
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

log = logging.getLogger(__name__)

# ---- the directory -----------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class BulkOutcome(Generic[T]):
    """What happened to one user of a bulk operation: an outcome, or the error for that user."""

    user: User
    outcome: T | None = None
    error: ReclaimError | None = None


class GraphDirectory:
    """reclaim.ports.Directory for Entra ID groups with assigned membership."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> GraphDirectory:
        return cls(shared_client(settings, secrets))

    # -- groups and members

    def check_group(self, group: str) -> GroupInfo:
        """Refuse groups whose members reclaim cannot (or must not) remove in the cloud."""
        path = f"/groups/{segment(group)}?{query(select=GROUP_FIELDS)}"
        reply = self._client.call("GET", path, permission=READ_GROUPS, what=f"read group {group}")
        if reply.status == 404 or (
            reply.status == 400 and reply.error_code == "Request_BadRequest"
        ):
            raise GroupRefused(
                f"Entra group {group!r} was not found ({reply.describe()}): the policy's "
                "directory.group must be the group's object id in this tenant"
            )
        data = self._expect_object(reply, f"read group {group}")
        name = data.get("displayName") or group
        if "DynamicMembership" in (data.get("groupTypes") or []):
            raise GroupRefused(
                f"Entra group {name!r} ({group}) has dynamic membership: its members cannot be "
                "removed. Reclaim from an assigned-membership licensing group instead, or change "
                "the group's membership rule"
            )
        # A Microsoft 365 group ("Unified") is mail-enabled too, and Graph does change its members.
        if data.get("mailEnabled") and "Unified" not in (data.get("groupTypes") or []):
            raise GroupRefused(
                f"Entra group {name!r} ({group}) is mail-enabled (a mail-enabled security group "
                "or a distribution list): Graph cannot change its members (every write fails "
                "with 400). Change it in Exchange Online, or reclaim from a security group that "
                "is not mail-enabled"
            )
        if data.get("onPremisesSyncEnabled"):
            raise GroupRefused(
                f"Entra group {name!r} ({group}) is synced from on-premises Active Directory and "
                "cannot be changed in the cloud: use directory kind 'ad' (LDAP) or "
                "'nexthink-remote-action' with the AD group instead"
            )
        return GroupInfo(id=str(data.get("id") or group), display_name=str(name))

    def members(self, group: str) -> Iterator[Member]:
        """Every user member, page by page (999 per request); a failure part-way raises
        SourceError so no partial membership is ever acted on."""
        what = f"list members of group {group}"
        path: str | None = (
            f"/groups/{segment(group)}/members/microsoft.graph.user?"
            f"{query(select=USER_FIELDS, top=MEMBERS_PAGE)}"
        )
        for item in self._pages(path, READ_GROUPS, what, group):
            yield Member(user=listed_user(item, what))

    def _pages(
        self,
        path: str | None,
        permission: str,
        what: str,
        group: str,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The objects of every page from `path` on, following nextLink (each page sent with
        `headers`); a failure part-way raises SourceError, so nothing partial is acted on."""
        try:
            while path:
                reply = self._client.call(
                    "GET", path, permission=permission, what=what, headers=headers
                )
                if reply.status == 404:
                    raise GroupRefused(f"Entra group {group!r} was not found ({reply.describe()})")
                page = self._expect_object(reply, what)
                values = page.get("value")
                if not isinstance(values, list):
                    raise SourceError(f"Graph {what}: a page without a value list")
                yield from (v for v in values if isinstance(v, dict))
                path = page.get("@odata.nextLink")
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed part-way, nothing is acted on: {error}") from error

    # -- one user

    def remove(
        self, group: str, user: User, *, sending: Sending = unmarked, **_: str
    ) -> RemovalResult:
        """DELETE the membership reference: one request. Whether a seat was freed is checked
        minutes later, after licence processing (reclaim.adapters.graph.licences)."""
        object_id = self._object_id(user)
        sending()
        reply = self._client.call(
            "DELETE",
            member_ref_path(group, object_id),
            permission=WRITE_MEMBERS,
            what=f"remove {user.label} from group {group}",
        )
        return _removal_result(reply, group, user)

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        object_id = self._object_id(user)
        reply = self._client.call(
            "POST",
            f"/groups/{segment(group)}/members/$ref",
            json=self._reference(object_id),
            permission=WRITE_MEMBERS,
            what=f"add {user.label} to group {group}",
        )
        return _add_outcome(reply, group, user)

    # -- many users

    def resolve(self, identifiers: Iterable[str]) -> dict[str, User]:
        """Users by UPN, mail or object id, looked up through $batch (20 per request);
        identifiers Entra ID does not know are absent from the result."""
        wanted = list(dict.fromkeys(i.strip() for i in identifiers if i and i.strip()))
        replies = self._client.batch(
            [BatchItem("GET", user_lookup_path(i)) for i in wanted],
            permission=READ_USERS,
            what="resolve users",
        )
        found: dict[str, User] = {}
        for identifier, reply in zip(wanted, replies, strict=True):
            user = self._lookup_result(identifier, reply)
            if user is not None:
                found[identifier] = user
        return found

    def remove_many(self, group: str, users: Sequence[User]) -> list[BulkOutcome[RemovalResult]]:
        """Remove several users through $batch; one outcome per user, in order."""

        def classify(reply: GraphReply, user: User) -> RemovalResult:
            return _removal_result(reply, group, user)

        return self._bulk(
            group,
            users,
            lambda object_id: BatchItem("DELETE", member_ref_path(group, object_id)),
            classify,
            "remove members",
        )

    def add_many(self, group: str, users: Sequence[User]) -> list[BulkOutcome[AddOutcome]]:
        """Add several users back through $batch (bulk restore); one outcome per user."""

        def classify(reply: GraphReply, user: User) -> AddOutcome:
            return _add_outcome(reply, group, user)

        return self._bulk(
            group,
            users,
            lambda object_id: BatchItem(
                "POST", f"/groups/{segment(group)}/members/$ref", self._reference(object_id)
            ),
            classify,
            "add members",
        )

    def _bulk(
        self,
        group: str,
        users: Sequence[User],
        request_for: Callable[[str], BatchItem],
        classify: Callable[[GraphReply, User], T],
        what: str,
    ) -> list[BulkOutcome[T]]:
        resolved = self.resolve(u.upn or u.mail for u in users if not u.object_id)
        outcomes: list[BulkOutcome[T] | None] = [None] * len(users)
        to_send: list[int] = []
        ids: list[str] = []
        for index, user in enumerate(users):
            object_id = user.object_id or (resolved.get(user.upn or user.mail) or User()).object_id
            if object_id:
                to_send.append(index)
                ids.append(object_id)
            else:
                outcomes[index] = BulkOutcome(
                    user, error=UserNotFound(f"Entra ID has no user {user.label}")
                )
        replies = self._client.batch(
            [request_for(i) for i in ids], permission=WRITE_MEMBERS, what=f"{what} of {group}"
        )
        for index, reply in zip(to_send, replies, strict=True):
            user = users[index]
            if reply.status in (401, 403):
                raise denied(reply, WRITE_MEMBERS, f"{what} of group {group}")
            try:
                outcomes[index] = BulkOutcome(user, outcome=classify(reply, user))
            except ReclaimError as error:
                outcomes[index] = BulkOutcome(user, error=error)
        return [o for o in outcomes if o is not None]

    # -- helpers

    def _object_id(self, user: User) -> str:
        if user.object_id:
            return user.object_id
        identifier = user.upn or user.mail
        if not identifier:
            raise UserNotFound(
                f"user {user.label or '(no identifier)'} has no object id, UPN or mail"
            )
        reply = self._client.call(
            "GET", user_lookup_path(identifier), permission=READ_USERS, what=f"find {identifier}"
        )
        found = self._lookup_result(identifier, reply)
        if found is None:
            raise UserNotFound(f"Entra ID has no user with UPN or mail {identifier}")
        return found.object_id

    def _lookup_result(self, identifier: str, reply: GraphReply) -> User | None:
        if reply.status == 404:
            return None
        if reply.status in (401, 403):
            raise denied(reply, READ_USERS, f"find {identifier}")
        throttled = final_throttle(reply, f"find {identifier}")
        if throttled:
            raise throttled
        data = self._expect_object(reply, f"find {identifier}")
        if "value" not in data:
            return user_from(data)
        matches = [user_from(item) for item in data.get("value") or []]
        # A UPN match wins over a mail match: mail is not unique in every tenant.
        exact = [m for m in matches if normalise_key(m.upn) == normalise_key(identifier)]
        return next(iter(exact or matches), None)

    def _reference(self, object_id: str) -> dict[str, str]:
        return {"@odata.id": f"{self._client.base_url}/directoryObjects/{segment(object_id)}"}

    @staticmethod
    def _expect_object(reply: GraphReply, what: str) -> dict[str, Any]:
        if reply.status != 200:
            raise PermanentError(f"Graph {what}: unexpected {reply.describe()}")
        if not isinstance(reply.body, dict):
            raise TransientError(f"Graph {what}: answered 200 without a JSON object")
        return reply.body


def _removal_result(reply: GraphReply, group: str, user: User) -> RemovalResult:
    what = f"remove {user.label} from group {group}"
    if reply.status == 204:
        return RemovalResult(RemovalOutcome.REMOVED)
    if reply.status == 404 and reply.error_code == "Request_ResourceNotFound":
        # Graph answers the same for a missing group; the run's pre-flight check catches that.
        # After an unanswered attempt of this same DELETE, the 404 is that attempt's work.
        return RemovalResult(
            RemovalOutcome.NOT_MEMBER,
            detail=reply.error_code,
            after_own_write=reply.after_unanswered,
        )
    throttled = final_throttle(reply, what)
    if throttled:
        raise throttled
    raise PermanentError(f"Graph refused to {what} ({reply.describe()})")


def _add_outcome(reply: GraphReply, group: str, user: User) -> AddOutcome:
    what = f"add {user.label} to group {group}"
    if reply.status == 204:
        return AddOutcome.ADDED
    # Graph gives "already a member" no code of its own: it is 400 Request_BadRequest like any
    # other bad add, so this one case also reads the message ("... references already exist ...").
    if (
        reply.status == 400
        and reply.error_code == "Request_BadRequest"
        and "already exist" in reply.error_message
    ):
        return AddOutcome.ALREADY_MEMBER
    if reply.status == 404 and reply.error_code == "Request_ResourceNotFound":
        raise UserNotFound(f"cannot {what}: the user or the group does not exist")
    throttled = final_throttle(reply, what)
    if throttled:
        raise throttled
    raise PermanentError(f"Graph refused to {what} ({reply.describe()})")

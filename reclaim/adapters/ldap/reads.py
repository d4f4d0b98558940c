"""Reading groups and their members: group lookups, paged member searches, nested groups and
users at any depth, and the join dates of msDS-ReplValueMetaData (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from reclaim.adapters.ldap.connection import LdapClient
from reclaim.adapters.ldap.members import (
    ACCOUNT_ATTRIBUTES,
    IN_CHAIN_MEMBER_OF,
    JOINED_FROM,
    VALUE_METADATA,
    account_from,
    join_dates,
    metadata_values,
)
from reclaim.adapters.ldap.results import (
    MEMBER_ATTRIBUTES,
    NO_SUCH_OBJECT,
    REFERRAL,
    USER_FILTER,
    _entries,
    _text,
    _user,
)
from reclaim.domain.model import Member, User
from reclaim.errors import ConfigurationError, GroupRefused, TransientError
from reclaim.ports import GroupInfo

PAGED_RESULTS_CONTROL = "1.2.840.113556.1.4.319"
GROUP_ATTRIBUTES = ["sAMAccountName", "displayName", "cn"]


class LdapReader(LdapClient):
    """The reads of reclaim.ports.Directory, and the group lookup the writes share."""

    # ---- Directory -----------------------------------------------------------------------------

    def check_group(self, group: str) -> GroupInfo:
        """The group as AD knows it; GroupRefused when it is missing or not a group.

        member_count stays None: counting needs the full member read that members() does.
        """
        entry = self._run(f"reading group {group}", lambda c: self._find_group(c, group))
        name = _text(entry, "displayName") or _text(entry, "cn") or group
        return GroupInfo(id=entry["dn"], display_name=name)

    def members(self, group: str) -> Iterator[Member]:
        """Direct members that are users, page by page (see the module docstring), each with
        the join date msDS-ReplValueMetaData gives (Windows AD; Samba gives none)."""
        group_dn = self._run(f"reading group {group}", lambda c: self._find_group(c, group))["dn"]
        joined = join_dates(
            self._run(f"reading when members joined {group}", lambda c: self._metadata(c, group_dn))
        )
        search_filter = f"(&{USER_FILTER}(memberOf={escape_filter_chars(group_dn)}))"
        attributes = MEMBER_ATTRIBUTES + ACCOUNT_ATTRIBUTES
        for found in self._paged(search_filter, attributes, f"the members of {group}"):
            added = joined.get(found["dn"].lower())
            yield Member(
                _user(found),
                added_at=added,
                added_from=JOINED_FROM if added else "",
                account=account_from(found["raw_attributes"]),
            )

    def member_groups(self, group: str) -> list[GroupInfo]:
        """Groups that are direct members of `group`."""
        group_dn = self._run(f"reading group {group}", lambda c: self._find_group(c, group))["dn"]
        search_filter = f"(&(objectClass=group)(memberOf={escape_filter_chars(group_dn)}))"
        return [
            GroupInfo(id=e["dn"], display_name=_text(e, "cn") or _text(e, "sAMAccountName"))
            for e in self._paged(search_filter, GROUP_ATTRIBUTES, f"the groups in {group}")
        ]

    def transitive_users(self, group: str) -> Iterator[User]:
        """Users in `group` at any depth: the in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN),
        which the DC evaluates, cycles included."""
        group_dn = self._run(f"reading group {group}", lambda c: self._find_group(c, group))["dn"]
        search_filter = f"(&{USER_FILTER}({IN_CHAIN_MEMBER_OF}{escape_filter_chars(group_dn)}))"
        what = f"the users in {group} and its nested groups"
        return (_user(e) for e in self._paged(search_filter, MEMBER_ATTRIBUTES, what))

    def _paged(self, search_filter: str, attributes: list[str], what: str) -> Iterator[dict]:
        """Entries of a paged subtree search; only the first page may be retried, because a
        paging cookie dies with its connection."""
        what = f"listing {what}"
        listing: list[Connection] = []  # the connection the paging cookie belongs to
        cookie: bytes | None = None
        while True:

            def page(conn: Connection, cookie: bytes | None = cookie) -> tuple[list, bytes | None]:
                if listing and conn is not listing[0]:
                    raise TransientError(
                        f"the connection to {self._url} was renewed while {what}; list again"
                    )
                conn.search(
                    self._base_dn,
                    search_filter,
                    SUBTREE,
                    attributes=attributes,
                    paged_size=self._page_size,
                    paged_cookie=cookie,
                )
                self._check(conn, what)
                listing[:] = [conn]
                control = conn.result.get("controls", {}).get(PAGED_RESULTS_CONTROL, {})
                return _entries(conn), control.get("value", {}).get("cookie") or None

            entries, cookie = self._run(what, page, retry=not listing)
            yield from entries
            if not cookie:
                return

    # ---- lookups -------------------------------------------------------------------------------

    def _metadata(self, conn: Connection, group_dn: str) -> list[bytes]:
        """The group's msDS-ReplValueMetaData: constructed, so read with a base search (ldap3
        follows AD's ranged retrieval of a large group by itself)."""
        conn.search(group_dn, "(objectClass=group)", BASE, attributes=[VALUE_METADATA])
        self._check(conn, f"reading {VALUE_METADATA} of {group_dn}")
        found = _entries(conn)
        return metadata_values(found[0]["raw_attributes"]) if found else []

    def _find_group(
        self, conn: Connection, group: str, missing: type[ConfigurationError] = GroupRefused
    ) -> dict[str, Any]:
        """The group's entry, by DN or sAMAccountName; `missing` is raised when there is none."""
        if "=" in group:
            try:
                parse_dn(group)
            except LDAPInvalidDnError as error:
                raise missing(f"group {group!r} is not a valid distinguished name") from error
            conn.search(group, "(objectClass=group)", BASE, attributes=GROUP_ATTRIBUTES)
            if conn.result["result"] in (NO_SUCH_OBJECT, REFERRAL):
                raise missing(f"group {group} does not exist in the directory")
            self._check(conn, f"reading group {group}")
            found = _entries(conn)
            if not found:
                raise missing(f"{group} exists but is not a group")
            return found[0]
        search_filter = f"(&(objectClass=group)(sAMAccountName={escape_filter_chars(group)}))"
        conn.search(self._base_dn, search_filter, SUBTREE, attributes=GROUP_ATTRIBUTES)
        self._check(conn, f"looking up group {group}")
        found = _entries(conn)
        if len(found) != 1:
            raise missing(
                f"group {group!r} does not exist under {self._base_dn} (by sAMAccountName)"
                if not found
                else f"more than one group has sAMAccountName {group!r} under {self._base_dn}"
            )
        return found[0]

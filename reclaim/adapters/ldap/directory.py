"""LdapDirectory: reclaim.ports.Directory (and Managers) for AD, the member writes (remove, add)
and how their results are classified, on top of LdapReader's reads."""

from __future__ import annotations

from typing import Any

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from reclaim.adapters.ldap.managers import read_manager
from reclaim.adapters.ldap.reads import LdapReader
from reclaim.adapters.ldap.results import (
    ATTRIBUTE_OR_VALUE_EXISTS,
    ENTRY_ALREADY_EXISTS,
    NO_ATTRIBUTES,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    SIZE_LIMIT_EXCEEDED,
    SUCCESS,
    UNWILLING_TO_PERFORM,
    USER_FILTER,
    _entries,
    _server_says,
)
from reclaim.domain.model import User
from reclaim.errors import ConfigurationError, PermanentError, TransientError, UserNotFound
from reclaim.ports import AddOutcome, RemovalOutcome, RemovalResult, Secrets, Sending, unmarked
from reclaim.settings import Settings


class LdapDirectory(LdapReader):
    """reclaim.ports.Directory for Active Directory (or any AD-compatible DC, such as Samba)."""

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> LdapDirectory:
        return cls(
            url=settings.ldap_url,
            base_dn=settings.ldap_base_dn,
            bind_dn=settings.ldap_bind_dn,
            secrets=secrets,
            password_secret_name=settings.ldap_password_secret_name,
            ca_file=settings.ldap_ca_file,
            server_name=settings.ldap_server_name,
            start_tls=settings.ldap_start_tls,
            insecure=settings.ldap_insecure,
            connect_timeout=settings.ldap_timeout,
            receive_timeout=settings.ldap_timeout,
        )

    # ---- writes --------------------------------------------------------------------------------

    def remove(
        self, group: str, user: User, *, sending: Sending = unmarked, **_: str
    ) -> RemovalResult:
        """MODIFY_DELETE of the user's DN from the group's `member`.

        A removal that reached the server just before the connection dropped is retried; its
        "already deleted" then reports NOT_MEMBER after_own_write: our write took the user out.
        """
        what = f"removing {user.label} from {group}"
        sent: list[bool] = []  # a modify went out on a connection that was lost before its answer

        def change(conn: Connection) -> RemovalResult:
            group_dn = self._group_dn_for_change(conn, group)
            user_dn = self._user_dn(conn, user)
            ours = bool(sent)
            sending()
            sent.append(True)
            conn.modify(group_dn, {"member": [(MODIFY_DELETE, [user_dn])]})
            result = dict(conn.result)  # later searches replace conn.result
            if result["result"] == SUCCESS:
                return RemovalResult(RemovalOutcome.REMOVED)
            absent = RemovalResult(
                RemovalOutcome.NOT_MEMBER, detail=_server_says(result), after_own_write=ours
            )
            if result["result"] == NO_SUCH_ATTRIBUTE:  # e.g. only the user's primary group
                return absent
            if result["result"] == UNWILLING_TO_PERFORM and not self._is_member(
                conn, group_dn, user_dn
            ):
                # AD answers 53 ("already deleted" / 0x561) for a value that is not there; 53
                # can also be a real refusal, so membership is read back before saying so.
                return absent
            raise self._change_failed(conn, result, group, what)

        try:
            return self._run(what, change)
        except TransientError as error:
            if sent:
                raise
            # The DC was never asked to change anything (no connection, no bind, lookup failed).
            raise type(error)(str(error), error.retry_after, unsent=True) from error

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        what = f"adding {user.label} to {group}"

        def change(conn: Connection) -> AddOutcome:
            group_dn = self._group_dn_for_change(conn, group)
            user_dn = self._user_dn(conn, user)
            conn.modify(group_dn, {"member": [(MODIFY_ADD, [user_dn])]})
            result = dict(conn.result)  # later searches replace conn.result
            if result["result"] == SUCCESS:
                return AddOutcome.ADDED
            if result["result"] in (ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS):
                return AddOutcome.ALREADY_MEMBER
            raise self._change_failed(conn, result, group, what)

        return self._run(what, change)

    def manager(self, user: User) -> User | None:
        """reclaim.ports.Managers: her `manager` attribute's entry (managers.py)."""
        return self._run(
            f"reading the manager of {user.label}",
            lambda conn: read_manager(conn, self._base_dn, user, self._check),
        )

    # ---- lookups -------------------------------------------------------------------------------

    def _user_dn(self, conn: Connection, user: User) -> str:
        name = user.sam_account_name
        if not name:
            raise PermanentError(
                f"{user.label or 'a user'} has no sAMAccountName, which the AD path needs"
            )
        # Escaped, so `*)(objectClass=*` or `*` match only an account literally named so.
        search_filter = f"(&{USER_FILTER}(sAMAccountName={escape_filter_chars(name)}))"
        conn.search(self._base_dn, search_filter, SUBTREE, attributes=NO_ATTRIBUTES, size_limit=2)
        if conn.result["result"] != SIZE_LIMIT_EXCEEDED:
            self._check(conn, f"looking up user {name}")
        found = _entries(conn)
        if not found:
            raise UserNotFound(f"no user with sAMAccountName {name!r} under {self._base_dn}")
        if len(found) > 1:
            raise PermanentError(
                f"more than one user has sAMAccountName {name!r} under {self._base_dn}"
            )
        return found[0]["dn"]

    def _group_dn_for_change(self, conn: Connection, group: str) -> str:
        """A DN is used as given (the modify reports a missing group); a name is looked up once."""
        if "=" in group:
            return group
        key = group.lower()
        if key not in self._group_dns:
            self._group_dns[key] = self._find_group(conn, group, ConfigurationError)["dn"]
        return self._group_dns[key]

    def _change_failed(
        self, conn: Connection, result: dict[str, Any], group: str, what: str
    ) -> Exception:
        if result["result"] == NO_SUCH_OBJECT:
            self._group_dns.pop(group.lower(), None)  # renamed or deleted since it was looked up
            return ConfigurationError(f"{what}: group {group} does not exist in the directory")
        return self._failure(conn, result, what)

    def _is_member(self, conn: Connection, group_dn: str, user_dn: str) -> bool:
        conn.search(
            group_dn, f"(member={escape_filter_chars(user_dn)})", BASE, attributes=NO_ATTRIBUTES
        )
        self._check(conn, f"reading the members of {group_dn}")
        return bool(_entries(conn))

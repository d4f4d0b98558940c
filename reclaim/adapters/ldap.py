"""On-premises Active Directory over LDAP (ldap3): the Directory of `directory.kind: ad`.

Users are identified by sAMAccountName, as in Nexthink's on-premises reclamation workflow. Groups
are named by distinguished name (anything containing "=", a character sAMAccountName cannot hold)
or by sAMAccountName.

Connection: LDAPS, or StartTLS on ldap://, with the server certificate validated against
RECLAIM_LDAP_CA_FILE (the system trust store when empty) and the name RECLAIM_LDAP_SERVER_NAME
(DCs are often reached by an address or alias their certificate does not carry). An unvalidated or
plain connection needs RECLAIM_LDAP_INSECURE=true and logs a warning each time the adapter starts.
One connection is reused by every call, behind a lock; the bind password is read from the Secrets
port at each (re)connect, so a rotated password is picked up.

Members are read with a paged search for `(memberOf=<group DN>)` rather than a ranged read of the
group's `member` attribute: each page of up to 1,000 users carries their attributes (ranged
retrieval yields DNs only, and each would cost another lookup), the server filters out computers,
contacts and groups, and groups of any size are read completely. Consequences, by design:
- members() lists direct members only, because only a direct membership can be removed from this
  group; member_groups() names the groups nested in it and transitive_users() lists users at any
  depth with the in-chain matching rule (for exclusion groups, and the plan's NESTED members);
- users outside RECLAIM_LDAP_BASE_DN, and members through their primary group (primaryGroupID,
  which never appears in `member`), are not listed;
- a member's join date is the `ftimeCreated` of its value in the group's msDS-ReplValueMetaData
  (Windows AD); whenChanged is not a join date, and Samba returns no metadata values, so there
  Member.added_at stays None;
- a member's account is disabled when userAccountControl has ACCOUNTDISABLE (0x2), and past its
  leave date after accountExpires (see ldap_members.account_from).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPInvalidDnError,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)
from ldap3.protocol.formatters.formatters import format_sid
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from reclaim.adapters.ldap_managers import read_manager
from reclaim.adapters.ldap_members import (
    ACCOUNT_ATTRIBUTES,
    IN_CHAIN_MEMBER_OF,
    JOINED_FROM,
    VALUE_METADATA,
    account_from,
    join_dates,
    metadata_values,
)
from reclaim.domain.model import Member, User
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    GroupRefused,
    PermanentError,
    PermissionDenied,
    ReclaimError,
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
from reclaim.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# LDAP result codes (RFC 4511) this adapter tells apart.
SUCCESS = 0
TIME_LIMIT_EXCEEDED = 3
SIZE_LIMIT_EXCEEDED = 4
STRONGER_AUTH_REQUIRED = 8
REFERRAL = 10
NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
BUSY = 51
UNAVAILABLE = 52
UNWILLING_TO_PERFORM = 53
ENTRY_ALREADY_EXISTS = 68

PAGED_RESULTS_CONTROL = "1.2.840.113556.1.4.319"
# Users only: computers are users too in AD's schema; groups and contacts are not users.
USER_FILTER = "(objectClass=user)(!(objectClass=computer))"
MEMBER_ATTRIBUTES = [
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "objectSid",
    "objectGUID",
    "displayName",
]
GROUP_ATTRIBUTES = ["sAMAccountName", "displayName", "cn"]
NO_ATTRIBUTES = ["1.1"]  # RFC 4511: return no attributes, only the DN


class _ConnectionLost(Exception):
    """The server said it is going away (result 52): reconnect like after a dropped socket."""


# What a dropped connection looks like: reconnect and try once more.
_LOST = (LDAPCommunicationError, LDAPResponseTimeoutError, _ConnectionLost)


class LdapDirectory:
    """reclaim.ports.Directory for Active Directory (or any AD-compatible DC, such as Samba)."""

    def __init__(
        self,
        *,
        url: str,
        base_dn: str,
        bind_dn: str,
        secrets: Secrets,
        password_secret_name: str,
        ca_file: str = "",
        server_name: str = "",
        start_tls: bool = False,
        insecure: bool = False,
        connect_timeout: int = 10,
        receive_timeout: int = 30,  # whole seconds: ldap3 packs it into SO_RCVTIMEO
        page_size: int = 1000,
    ) -> None:
        problems = _setting_problems(url, base_dn, bind_dn, password_secret_name, ca_file)
        encrypted = url.startswith("ldaps://") or start_tls
        if url.startswith("ldaps://") and start_tls:
            problems.append("RECLAIM_LDAP_START_TLS=true needs an ldap:// RECLAIM_LDAP_URL")
        if not encrypted and not insecure:
            problems.append(
                f"RECLAIM_LDAP_URL {url} is unencrypted: use ldaps:// or "
                "RECLAIM_LDAP_START_TLS=true (RECLAIM_LDAP_INSECURE=true only for a test lab)"
            )
        if problems:
            raise ConfigurationError("LDAP directory: " + "; ".join(problems))
        self._url = url
        self._base_dn = base_dn
        self._bind_dn = bind_dn
        self._secrets = secrets
        self._password_secret_name = password_secret_name
        self._ca_file = ca_file
        self._server_name = server_name or (urlsplit(url).hostname or "")
        self._start_tls = start_tls
        self._receive_timeout = receive_timeout
        self._page_size = page_size
        if insecure:
            # Logged at every start so an insecure production setting cannot go unnoticed.
            log.warning(
                "LDAP connection to %s is %s (RECLAIM_LDAP_INSECURE=true): the bind password "
                "and directory data can be read or altered on the network; use only in a lab",
                url,
                "not certificate-validated" if encrypted else "unencrypted",
            )
        tls = Tls(
            validate=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED,
            ca_certs_file=None if insecure or not ca_file else ca_file,
            valid_names=[server_name] if server_name and not insecure else None,
            sni=server_name or None,
        )
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._group_dns: dict[str, str] = {}  # sAMAccountName (lower-cased) -> DN

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
        """reclaim.ports.Managers: her `manager` attribute's entry (ldap_managers.py)."""
        return self._run(
            f"reading the manager of {user.label}",
            lambda conn: read_manager(
                conn, self._base_dn, user, self._check, USER_FILTER, MEMBER_ATTRIBUTES, _user
            ),
        )

    def close(self) -> None:
        with self._lock:
            self._discard()

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

    # ---- connection ------------------------------------------------------------------------

    def _run(self, what: str, operation: Callable[[Connection], T], *, retry: bool = True) -> T:
        """Run `operation` on the shared connection; a dropped one is renewed and tried once more.
        A timeout is not: the DC that did not answer in time would only cost another one."""
        with self._lock:
            if retry:
                try:
                    return self._attempt(what, operation)
                except _LOST as error:
                    self._discard()
                    if isinstance(error, TimeoutError):
                        raise self._timed_out(what, error) from error
                    log.info("LDAP connection to %s lost (%s); reconnecting", self._url, error)
            try:
                return self._attempt(what, operation)
            except _LOST as error:
                self._discard()
                if isinstance(error, TimeoutError):
                    raise self._timed_out(what, error) from error
                raise DirectoryOutage(
                    f"{what}: the connection to {self._url} failed: {error}"
                ) from error

    def _timed_out(self, what: str, error: Exception) -> DirectoryOutage:
        return DirectoryOutage(
            f"{what}: {self._url} did not answer within {self._receive_timeout} s "
            f"(RECLAIM_LDAP_TIMEOUT): {error}"
        )

    def _attempt(self, what: str, operation: Callable[[Connection], T]) -> T:
        if self._connection is None:
            self._connection = self._open()
        try:
            return operation(self._connection)
        except _LOST:
            raise
        except LDAPException as error:  # a malformed request or answer: not worth repeating
            raise PermanentError(f"{what}: {error}") from error

    def _open(self) -> Connection:
        """A bound connection, or a ConfigurationError / TransientError that says what to fix."""
        password = self._secrets.get(self._password_secret_name)
        # A new Server each time: ldap3's Server remembers an address that failed as unavailable
        # (so a restarted DC would stay unreachable), and this resolves the name again.
        server = Server(
            self._url, tls=self._tls, get_info=NONE, connect_timeout=self._connect_timeout
        )
        conn = Connection(
            server,
            user=self._bind_dn,
            password=password,
            raise_exceptions=False,
            auto_referrals=False,  # referrals would lead to other servers, unvalidated names
            receive_timeout=self._receive_timeout,
        )
        bound = False
        try:
            conn.open()
            if self._start_tls and not conn.start_tls():
                raise ConfigurationError(
                    f"StartTLS with {self._url} failed: {_server_says(conn.result)}"
                )
            bound = conn.bind()
            if bound:
                return conn
            code = conn.result["result"]
            if code == INVALID_CREDENTIALS:
                raise ConfigurationError(
                    f"the bind for {self._bind_dn} was rejected by {self._url} (invalidCredentials):"
                    f" check the account and the password in secret {self._password_secret_name}"
                )
            if code == STRONGER_AUTH_REQUIRED:
                raise ConfigurationError(
                    f"{self._url} refuses a simple bind without encryption (strongerAuthRequired):"
                    " use ldaps:// or RECLAIM_LDAP_START_TLS=true"
                )
            if code in (BUSY, UNAVAILABLE):
                raise DirectoryOutage(f"{self._url} is not available: {_server_says(conn.result)}")
            raise ConfigurationError(
                f"the bind for {self._bind_dn} failed: {_server_says(conn.result)}"
            )
        except (LDAPCommunicationError, LDAPStartTLSError, LDAPResponseTimeoutError) as error:
            raise self._connection_problem(error) from error
        finally:
            if not bound:
                _close(conn)

    def _connection_problem(self, error: LDAPException) -> ReclaimError:
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            reason = re.search(r"certificate verify failed: ([^(']+)", text)
            trust = f"CA file {self._ca_file}" if self._ca_file else "the system trust store"
            return ConfigurationError(
                f"the certificate of {self._url} was not trusted with {trust}"
                f"{f' ({reason.group(1).strip()})' if reason else ''}: set RECLAIM_LDAP_CA_FILE "
                "to the CA that issued the domain controller's certificate"
            )
        if "doesn't match any name" in text:
            named = re.search(r"\('commonName', '([^']+)'\)", text)
            return ConfigurationError(
                f"the certificate of {self._url} does not name {self._server_name}"
                f"{f' (it names {named.group(1)})' if named else ''}: set "
                "RECLAIM_LDAP_SERVER_NAME to the name in the certificate"
            )
        return DirectoryOutage(f"cannot reach the LDAP server {self._url}: {text}")

    def _check(self, conn: Connection, what: str) -> None:
        """Return on success; otherwise raise what the result means."""
        if conn.result["result"] != SUCCESS:
            raise self._failure(conn, conn.result, what)

    def _failure(self, conn: Connection, result: dict[str, Any], what: str) -> Exception:
        code = result["result"]
        if code == UNAVAILABLE:
            return _ConnectionLost(_server_says(result))
        if code in (TIME_LIMIT_EXCEEDED, BUSY):
            return DirectoryOutage(f"{what}: {_server_says(result)}")
        if code == INSUFFICIENT_ACCESS_RIGHTS:
            return PermissionDenied(
                f"{what}: {self._bind_dn} lacks the right to do this ({_server_says(result)}); "
                "grant it read access, and write access to the groups' member attribute",
                "write access to the member attribute of the group",
            )
        if code == NO_SUCH_OBJECT and not self._base_dn_exists(conn):
            return ConfigurationError(f"RECLAIM_LDAP_BASE_DN {self._base_dn} does not exist")
        return PermanentError(f"{what}: {_server_says(result)}")

    def _base_dn_exists(self, conn: Connection) -> bool:
        conn.search(self._base_dn, "(objectClass=*)", BASE, attributes=NO_ATTRIBUTES)
        return conn.result["result"] != NO_SUCH_OBJECT

    def _discard(self) -> None:
        if self._connection is not None:
            _close(self._connection)
            self._connection = None


def _setting_problems(
    url: str, base_dn: str, bind_dn: str, password_secret_name: str, ca_file: str
) -> list[str]:
    required = {
        "RECLAIM_LDAP_URL": url,
        "RECLAIM_LDAP_BASE_DN": base_dn,
        "RECLAIM_LDAP_BIND_DN": bind_dn,
        "RECLAIM_LDAP_PASSWORD_SECRET_NAME": password_secret_name,
    }
    problems = [f"{name} is not set" for name, value in required.items() if not value]
    if ca_file and not Path(ca_file).is_file():
        problems.append(f"RECLAIM_LDAP_CA_FILE {ca_file} is not a readable file")
    return problems


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except LDAPException:  # already broken: nothing left to close politely
        log.debug("closing an LDAP connection failed", exc_info=True)


def _server_says(result: dict[str, Any] | None) -> str:
    """The server's answer in a message: name, code and its own text (never a secret)."""
    result = result or {}
    said = f"{result.get('description', 'no answer')} ({result.get('result')})"
    message = str(result.get("message") or "").strip()
    return f"{said}: {message}" if message else said


def _entries(conn: Connection) -> list[dict[str, Any]]:
    """Search result entries, without the continuation references AD adds at a domain root."""
    return [item for item in conn.response or [] if item.get("type") == "searchResEntry"]


def _text(entry: dict[str, Any], name: str) -> str:
    values = entry["raw_attributes"].get(name) or []
    return values[0].decode("utf-8") if values else ""


def _user(entry: dict[str, Any]) -> User:
    sid = entry["raw_attributes"].get("objectSid") or []
    guid = entry["raw_attributes"].get("objectGUID") or []
    return User(
        # objectGUID is stored little-endian; AD tools show it in this (uuid) form.
        object_id=str(uuid.UUID(bytes_le=guid[0])) if guid else "",
        upn=_text(entry, "userPrincipalName"),
        mail=_text(entry, "mail"),
        sam_account_name=_text(entry, "sAMAccountName"),
        sid=format_sid(sid[0]) if sid else "",
        display_name=_text(entry, "displayName"),
    )

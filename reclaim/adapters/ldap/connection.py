"""The shared LDAP connection: settings checks, TLS, bind, reconnecting once after a drop,
timeouts, and what a failed result means (see the package docstring)."""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)

from reclaim.adapters.ldap.results import (
    BUSY,
    INSUFFICIENT_ACCESS_RIGHTS,
    INVALID_CREDENTIALS,
    NO_ATTRIBUTES,
    NO_SUCH_OBJECT,
    STRONGER_AUTH_REQUIRED,
    SUCCESS,
    TIME_LIMIT_EXCEEDED,
    UNAVAILABLE,
    _server_says,
)
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    PermanentError,
    PermissionDenied,
    ReclaimError,
)
from reclaim.ports import Secrets

log = logging.getLogger(__name__)

T = TypeVar("T")


class _ConnectionLost(Exception):
    """The server said it is going away (result 52): reconnect like after a dropped socket."""


# What a dropped connection looks like: reconnect and try once more.
_LOST = (LDAPCommunicationError, LDAPResponseTimeoutError, _ConnectionLost)


class LdapClient:
    """One bound connection to the DC, reused by every call behind a lock; LdapDirectory's base."""

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

    def close(self) -> None:
        with self._lock:
            self._discard()

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

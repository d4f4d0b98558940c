"""A real Samba Active Directory domain controller on 127.0.0.1 for tests, and its pytest fixture.

Register it with `pytest_plugins = ["tests.support.samba"]`; tests then ask for `samba_dc`
(session-scoped: one domain controller for the whole run, stopped at the end).

How (facts from /work/shared/ENVIRONMENT.md):
- The domain is provisioned once into .samba/dc (git-ignored; 5-7 s) and a pristine copy is kept
  in .samba/pristine. Every session restores the pristine copy (under a second), so each run starts
  from an empty domain without provisioning again.
- `ldb:nosync = true` halves write times (test data only). Samba listens on the fixed ports 389
  and 636 of 127.0.0.1, so a file lock serialises sessions and a samba left over from an earlier
  run (found through its pid file) is stopped before starting.
- Samba writes its own CA to private/tls/ca.pem; the server certificate names DC1.<realm> (no SAN).
- Without a samba binary the fixture skips, except in CI (CI=true) where it fails.
  Install it with tests/support/system_packages.sh.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPEntryAlreadyExistsResult, LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from tests.support.components import missing

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMBA_HOME = REPO_ROOT / ".samba"
SESSION_LOCK = Path("/tmp/reclaim-samba.lock")
SETUP_SCRIPT = Path(__file__).with_name("system_packages.sh")

REALM = "EXAMPLE.TEST"
NETBIOS_DOMAIN = "EXAMPLE"
BASE_DN = "DC=example,DC=test"
SERVER_NAME = "DC1.example.test"  # the CN Samba puts in its self-made server certificate
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Reclaim-Test-Adm1n!"  # a throwaway lab domain; never a real secret
HOST = "127.0.0.1"
LDAPS_PORT = 636
LDAP_PORT = 389
TEST_OU = f"OU=reclaim-tests,{BASE_DN}"

START_TIMEOUT = 60.0  # seconds; LDAPS normally answers 1.5-5 s after start
STOP_TIMEOUT = 15.0
LOCK_TIMEOUT = 1800.0  # other checkouts on this machine may hold it for a whole suite
MEMBERS_PER_MODIFY = 500  # member values per modify request when filling big groups
# userAccountControl bits (MS-ADTS 2.2.16)
ACCOUNTDISABLE, PASSWD_NOTREQD, NORMAL_ACCOUNT = 0x2, 0x20, 0x200


def _samba_binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def _missing(reason: str) -> None:
    missing(f"{reason}; install it with: sh {SETUP_SCRIPT.relative_to(REPO_ROOT)}")


def _provision_command(samba_tool: str, target: Path) -> list[str]:
    options = {
        "interfaces": HOST,
        "bind interfaces only": "yes",
        "server services": "ldap",
        "disable netbios": "yes",
        "pid directory": f"{target}/run",
        "log file": f"{target}/log/log.%m",
        "winbindd socket directory": f"{target}/run/winbindd",
        "ntp signd socket directory": f"{target}/run/ntp_signd",
    }
    return [
        samba_tool,
        "domain",
        "provision",
        f"--realm={REALM}",
        f"--domain={NETBIOS_DOMAIN}",
        "--server-role=dc",
        "--dns-backend=NONE",
        f"--adminpass={ADMIN_PASSWORD}",
        f"--targetdir={target}",
        "--host-name=dc1",
        f"--host-ip={HOST}",
        *(f"--option={key} = {value}" for key, value in options.items()),
    ]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _terminate(pid: int) -> None:
    """SIGTERM, then SIGKILL if it does not go within STOP_TIMEOUT."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class SambaDC:
    """The running domain controller: where it is, how to reach it, and helpers for test data."""

    directory: Path
    url: str = f"ldaps://{HOST}:{LDAPS_PORT}"
    start_tls_url: str = f"ldap://{HOST}:{LDAP_PORT}"
    server_name: str = SERVER_NAME
    base_dn: str = BASE_DN
    bind_dn: str = ADMIN_DN
    admin_password: str = ADMIN_PASSWORD
    realm: str = REALM
    test_ou: str = TEST_OU
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _admin: Connection | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def ca_file(self) -> str:
        return str(self.directory / "private" / "tls" / "ca.pem")

    @property
    def config_file(self) -> Path:
        return self.directory / "etc" / "smb.conf"

    @property
    def pid_file(self) -> Path:
        return self.directory / "run" / "samba.pid"

    def settings_env(self, **overrides: str) -> dict[str, str]:
        """RECLAIM_* variables for Settings.from_env that point at this domain controller."""
        env = {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_LDAP_URL": self.url,
            "RECLAIM_LDAP_BASE_DN": self.base_dn,
            "RECLAIM_LDAP_BIND_DN": self.bind_dn,
            "RECLAIM_LDAP_PASSWORD_SECRET_NAME": "ldap-bind-password",
            "RECLAIM_LDAP_CA_FILE": self.ca_file,
            "RECLAIM_LDAP_SERVER_NAME": self.server_name,
        }
        env.update(overrides)
        return env

    # ---- process ---------------------------------------------------------------------------

    def start(self) -> None:
        samba = _samba_binary("samba")
        assert samba, "checked by the fixture"
        (self.directory / "run").mkdir(parents=True, exist_ok=True)
        (self.directory / "log").mkdir(parents=True, exist_ok=True)
        self._log = (self.directory / "log" / "samba.out").open("ab")
        # -i: stay in the foreground (clean pid); -M single: one process; the maximum runtime
        # ends a samba that a killed test run could not stop.
        self._process = subprocess.Popen(
            [samba, "-i", "-M", "single", "-s", str(self.config_file), "--maximum-runtime=3600"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def stop(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(LDAPException):
                self._admin.unbind()
            self._admin = None
        if self._process is not None:
            _terminate(self._process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start the server (connections made before are dropped)."""
        self.stop()
        self.start()

    def _wait_ready(self) -> None:
        """Ready when an administrator can bind over validated LDAPS."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"samba exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if Path(self.ca_file).exists() and _port_open(LDAPS_PORT):
                try:
                    self._admin = self._connect()
                    return
                except LDAPException as error:
                    last_error = str(error)
            time.sleep(0.2)
        raise RuntimeError(f"samba did not answer LDAPS within {START_TIMEOUT}s ({last_error})")

    def log_tail(self, lines: int = 30) -> str:
        log = self.directory / "log" / "samba.out"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    # ---- test data through LDAP ------------------------------------------------------------

    def _connect(self) -> Connection:
        tls = Tls(ca_certs_file=self.ca_file, validate=ssl.CERT_REQUIRED, valid_names=[SERVER_NAME])
        server = Server(self.url, tls=tls, get_info=NONE, connect_timeout=5)
        return Connection(
            server,
            self.bind_dn,
            self.admin_password,
            auto_bind=True,
            raise_exceptions=True,
            auto_referrals=False,
            receive_timeout=30,
        )

    @property
    def admin(self) -> Connection:
        """An administrator's connection (raises on any LDAP error), renewed after a restart."""
        if self._admin is None or self._admin.closed:
            self._admin = self._connect()
        return self._admin

    def ensure_ou(self, dn: str) -> str:
        with contextlib.suppress(LDAPException):  # entryAlreadyExists
            self.admin.add(dn, ["top", "organizationalUnit"])
        return dn

    def _add(self, dn: str, classes: list[str], attributes: dict[str, str]) -> str:
        """Add an entry; an entry left with the same DN is replaced, so helpers can be rerun."""
        try:
            self.admin.add(dn, classes, attributes)
        except LDAPEntryAlreadyExistsResult:
            self.admin.delete(dn)
            self.admin.add(dn, classes, attributes)
        return dn

    def create_user(
        self,
        sam_account_name: str,
        *,
        display_name: str = "",
        mail: str = "",
        upn: str = "",
        ou: str = "",
        enabled: bool = True,
    ) -> str:
        """A user; returns its DN. Samba creates users disabled (no password): an enabled one
        is a normal account that needs no password (reclaim reads only ACCOUNTDISABLE)."""
        attributes = {
            "sAMAccountName": sam_account_name,
            "userPrincipalName": upn or f"{sam_account_name}@{self.realm.lower()}",
            "displayName": display_name or sam_account_name,
        }
        if enabled:
            attributes["userAccountControl"] = str(NORMAL_ACCOUNT | PASSWD_NOTREQD)
        if mail:
            attributes["mail"] = mail
        dn = f"CN={escape_rdn(sam_account_name)},{ou or self.test_ou}"
        return self._add(dn, ["top", "person", "organizationalPerson", "user"], attributes)

    def set_account(
        self, dn: str, *, enabled: bool | None = None, expires: int | None = None
    ) -> None:
        """Disable or enable an account (userAccountControl), or set accountExpires (FILETIME)."""
        changes: dict[str, list] = {}
        if enabled is not None:
            control = NORMAL_ACCOUNT | PASSWD_NOTREQD | (0 if enabled else ACCOUNTDISABLE)
            changes["userAccountControl"] = [(MODIFY_REPLACE, [str(control)])]
        if expires is not None:
            changes["accountExpires"] = [(MODIFY_REPLACE, [str(expires)])]
        self.admin.modify(dn, changes)

    def set_manager(self, dn: str, manager_dn: str | None) -> None:
        """Set the user's `manager` (a DN), or clear it with None."""
        values = [manager_dn] if manager_dn else []
        self.admin.modify(dn, {"manager": [(MODIFY_REPLACE, values)]})

    def create_users(self, sam_account_names: Iterable[str], *, ou: str = "") -> list[str]:
        return [self.create_user(name, ou=ou) for name in sam_account_names]

    def create_computer(self, name: str, *, ou: str = "") -> str:
        dn = f"CN={escape_rdn(name)},{ou or self.test_ou}"
        classes = ["top", "person", "organizationalPerson", "user", "computer"]
        return self._add(dn, classes, {"sAMAccountName": f"{name}$"})

    def create_group(self, sam_account_name: str, *, cn: str = "", ou: str = "") -> str:
        """A global security group; `cn` may differ from the sAMAccountName (e.g. odd characters)."""
        dn = f"CN={escape_rdn(cn or sam_account_name)},{ou or self.test_ou}"
        attributes = {"sAMAccountName": sam_account_name, "displayName": cn or sam_account_name}
        return self._add(dn, ["top", "group"], attributes)

    def add_members(self, group_dn: str, member_dns: Iterable[str]) -> None:
        members = list(member_dns)
        for start in range(0, len(members), MEMBERS_PER_MODIFY):
            batch = members[start : start + MEMBERS_PER_MODIFY]
            self.admin.modify(group_dn, {"member": [(MODIFY_ADD, batch)]})

    def remove_members(self, group_dn: str, member_dns: Iterable[str]) -> None:
        self.admin.modify(group_dn, {"member": [(MODIFY_DELETE, list(member_dns))]})

    def is_member(self, group_dn: str, member_dn: str) -> bool:
        """Direct membership, read from the group's `member` attribute by the server."""
        self.admin.search(
            group_dn, f"(member={escape_filter_chars(member_dn)})", BASE, attributes=["1.1"]
        )
        return any(entry["type"] == "searchResEntry" for entry in self.admin.response)

    def delete(self, dn: str) -> None:
        self.admin.delete(dn)


# ---- provisioning and the fixture ------------------------------------------------------------


def _provision_signature(samba_tool: str) -> str:
    """Changes when the provision options or the Samba version change: then provision again."""
    version = subprocess.run(
        [samba_tool, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    command = " ".join(_provision_command("samba-tool", SAMBA_HOME / "dc"))
    return hashlib.sha256(f"{version}\n{command}\nnosync".encode()).hexdigest()


def _provision(samba_tool: str, live: Path, pristine: Path, signature: str) -> None:
    shutil.rmtree(live, ignore_errors=True)
    shutil.rmtree(pristine, ignore_errors=True)
    live.mkdir(parents=True)
    result = subprocess.run(
        _provision_command(samba_tool, live), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        pytest.fail(f"samba-tool domain provision failed ({result.returncode}):\n{output}")
    config = live / "etc" / "smb.conf"
    # Test data only: skip fsync on every write (halves write times).
    config.write_text(
        config.read_text().replace("[global]\n", "[global]\n\tldb:nosync = true\n", 1)
    )
    (live / "run").mkdir(exist_ok=True)
    (live / "log").mkdir(exist_ok=True)
    shutil.copytree(live, pristine, symlinks=True)
    (pristine / ".signature").write_text(signature)


def _stop_stale(dc: SambaDC) -> None:
    """Stop a samba an earlier run left behind (we hold the lock: nobody else runs ours)."""
    if dc.pid_file.exists():
        try:
            pid = int(dc.pid_file.read_text().split()[0])
        except (ValueError, IndexError):
            pid = 0
        if pid > 0 and _alive(pid) and "samba" in _command_line(pid):
            _terminate(pid)
    for port in (LDAPS_PORT, LDAP_PORT):
        if _port_open(port):
            pytest.fail(
                f"{HOST}:{port} is taken by a process that is not the test samba of "
                f"{dc.directory} (see `ss -ltnp 'sport = :{port}'`); stop it and run again",
                pytrace=False,
            )


@contextlib.contextmanager
def _session_lock() -> Iterator[None]:
    SAMBA_HOME.mkdir(parents=True, exist_ok=True)
    # One lock per machine, not per checkout: every checkout's samba needs the same fixed ports.
    with SESSION_LOCK.open("w") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"another test session has held {SESSION_LOCK} for "
                        f"{LOCK_TIMEOUT:.0f}s (its samba owns ports 389/636)",
                        pytrace=False,
                    )
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_dc() -> Iterator[SambaDC]:
    """A running Samba AD DC with an empty domain (restored from a pristine provision), held
    under the machine-wide lock; the fixture below and bench/ad_removals.py use it."""
    samba_tool = _samba_binary("samba-tool")
    if not (_samba_binary("samba") and samba_tool):
        _missing("samba (the Active Directory domain controller) is not installed")
    assert samba_tool
    live, pristine = SAMBA_HOME / "dc", SAMBA_HOME / "pristine"
    with _session_lock():
        dc = SambaDC(directory=live)
        _stop_stale(dc)
        signature = _provision_signature(samba_tool)
        marker = pristine / ".signature"
        if not marker.exists() or marker.read_text() != signature:
            _provision(samba_tool, live, pristine, signature)
        else:
            shutil.rmtree(live, ignore_errors=True)
            shutil.copytree(pristine, live, symlinks=True)
        try:
            dc.start()
        except RuntimeError as error:
            dc.stop()
            pytest.fail(str(error), pytrace=False)
        try:
            dc.ensure_ou(dc.test_ou)
            yield dc
        finally:
            dc.stop()


@pytest.fixture(scope="session")
def samba_dc() -> Iterator[SambaDC]:
    """A running Samba AD DC with an empty domain, for the whole test session."""
    with running_dc() as dc:
        yield dc

"""Azurite, the real Azure Storage emulator, for tests: a pytest plugin.

Register it with `pytest_plugins = ["tests.support.azurite"]`; tests then ask for:
- `azurite` (session): one emulator for the whole run, started from node_modules on free ports of
  127.0.0.1, in memory (`--inMemoryPersistence`), stopped at the end;
- `storage_env`: the variables a test's code reads (AzureWebJobsStorage as a connection string,
  plus a table prefix and queue name of its own, so tests share the emulator, not their data).

Facts (ENVIRONMENT.md): `--skipApiVersionCheck` is required (the SDKs send newer API versions),
`--loose` accepts headers Azurite does not implement. If Azurite dies, azure-core's retries make
the next call hang, so readiness checks watch the process as well as the port.
Without Azurite the fixture skips, except in CI (CI=true) where it fails. Install it with
tests/support/azurite_setup.sh.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.support.components import missing

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_JS = REPO_ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
SETUP_SCRIPT = Path(__file__).with_name("azurite_setup.sh")
HOST = "127.0.0.1"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_names = itertools.count()


def _missing(reason: str) -> None:
    missing(f"{reason}; install it with: sh {SETUP_SCRIPT.relative_to(REPO_ROOT)}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


@dataclass
class Azurite:
    """A running emulator: its ports, connection string, and stop/start/restart for fault tests
    (in memory: a restart loses every queue and table, as a storage outage with data loss)."""

    blob_port: int
    queue_port: int
    table_port: int
    workdir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{HOST}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://{HOST}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://{HOST}:{self.table_port}/{ACCOUNT};"
        )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        node = shutil.which("node")
        assert node, "checked by the fixture"
        self._log = (self.workdir / "azurite.out").open("ab")
        endpoints = [
            (f"--{service}Host", HOST, f"--{service}Port", str(port))
            for service, port in (
                ("blob", self.blob_port),
                ("queue", self.queue_port),
                ("table", self.table_port),
            )
        ]
        self._process = subprocess.Popen(
            [
                node,
                str(AZURITE_JS),
                "--inMemoryPersistence",
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                *(argument for endpoint in endpoints for argument in endpoint),
            ],
            cwd=self.workdir,  # Azurite writes its debug and extent files beside it
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"azurite exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if all(_port_open(p) for p in (self.blob_port, self.queue_port, self.table_port)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"azurite did not listen within {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start on the same ports; every queue and table is gone afterwards."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        log = self.workdir / "azurite.out"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )


def unique_name(prefix: str) -> str:
    """Letters and digits only: valid as a table prefix and as a queue name."""
    return f"{prefix}{next(_names)}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    if not shutil.which("node"):
        _missing("node (Node.js, to run Azurite) is not installed")
    if not AZURITE_JS.exists():
        _missing(f"Azurite is not installed ({AZURITE_JS.relative_to(REPO_ROOT)} is missing)")
    workdir = Path(tempfile.mkdtemp(prefix="reclaim-azurite-"))
    emulator = Azurite(_free_port(), _free_port(), _free_port(), workdir)
    try:
        emulator.start()
    except RuntimeError as error:
        emulator.stop()
        pytest.fail(str(error), pytrace=False)
    try:
        yield emulator
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def storage_env(azurite: Azurite) -> dict[str, str]:
    """AzureWebJobsStorage for this emulator, and a table prefix and queue of this test's own."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "RECLAIM_STATE_BACKEND": "tables",
        "RECLAIM_TABLE_PREFIX": unique_name("t"),
        "RECLAIM_REMOVAL_QUEUE": unique_name("q"),
    }

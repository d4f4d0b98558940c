"""The one way the tests start Chromium (Debian's, headless). Besides the flags that stop its
background networking, it always passes the host-resolver rules of ENVIRONMENT.md: every name
resolves to nothing except localhost, 127.0.0.1 and the loopback addresses a test serves on, so a
page under test cannot reach, or even look up, any other host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.components import missing

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("chromium is not installed (tests/support/system_packages.sh installs it)")
    return found


def resolver_rules(*serving: str) -> str:
    """Chromium's --host-resolver-rules value; `serving` adds loopback addresses beyond 127.0.0.1."""
    excluded = ("localhost", "127.0.0.1", *serving)
    return ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {host}" for host in excluded)])


def headless(
    profile: Path, *args: str, serving: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile directory and `args` (e.g. --dump-dom URL)."""
    flags = [
        *FLAGS,
        f"--host-resolver-rules={resolver_rules(*serving)}",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [binary(), *flags, *args], capture_output=True, text=True, timeout=90, check=False
    )

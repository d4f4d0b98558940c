"""The one way the tests start Chromium (Debian's, headless). Besides the flags that stop its
background networking, it always passes the host-resolver rules of ENVIRONMENT.md: every name
resolves to nothing except localhost, 127.0.0.1 and the loopback addresses a test serves on, so a
page under test cannot reach, or even look up, any other host."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

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


# Screenshots of the pages a person sees, kept with the test output (gitignored).
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"


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


@contextmanager
def browser(*, serving: tuple[str, ...] = ()) -> Iterator[Browser]:
    """Playwright driving Debian's Chromium (never a downloaded browser), with the same flags and
    host-resolver rules as `headless`; `serving` adds loopback addresses beyond 127.0.0.1."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=binary(),
            headless=True,
            args=[*FLAGS[1:], f"--host-resolver-rules={resolver_rules(*serving)}"],
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as tests/output/screenshots/NAME.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

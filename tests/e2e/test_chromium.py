"""Every Chromium the tests start resolves no host but the loopback addresses the test serves on
(ENVIRONMENT.md's host-resolver rules), and every test starts it through tests/support/chromium.py.
Only loopback servers are involved: a page on 127.0.0.1 asks for an image on 127.0.0.2."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.chromium import browser, headless, screenshot

TESTS = Path(__file__).resolve().parents[1]
LAUNCHER = TESTS / "support" / "chromium.py"


class Recorder(BaseHTTPRequestHandler):
    """Serves a page that embeds an image from `self.server.image_url` and records each request."""

    server: Served

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = f'<p id="page">page</p><img src="{self.server.image_url}">'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return


class Served(ThreadingHTTPServer):
    requests: list[str]
    image_url: str


def serve(address: str) -> Served:
    server = Served((address, 0), Recorder)
    server.requests, server.image_url = [], ""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def page_and_image() -> Iterator[tuple[Served, Served]]:
    page, image = serve("127.0.0.1"), serve("127.0.0.2")
    page.image_url = f"http://127.0.0.2:{image.server_address[1]}/pixel.png"
    yield page, image
    for server in (page, image):
        server.shutdown()
        server.server_close()


def test_chromium_reaches_no_address_the_test_does_not_serve_on(
    page_and_image: tuple[Served, Served], tmp_path: Path
) -> None:
    page, image = page_and_image
    url = f"http://127.0.0.1:{page.server_address[1]}/"
    dom = headless(tmp_path / "profile", "--dump-dom", url).stdout
    assert 'id="page"' in dom and "/" in page.requests  # the page itself loads
    assert image.requests == []  # 127.0.0.2 is not excluded: never contacted


def test_an_address_the_test_serves_on_is_reachable_when_named(
    page_and_image: tuple[Served, Served], tmp_path: Path
) -> None:
    page, image = page_and_image
    url = f"http://127.0.0.1:{page.server_address[1]}/"
    headless(tmp_path / "profile", "--dump-dom", url, serving=("127.0.0.2",))
    assert image.requests == ["/pixel.png"]


def test_no_test_starts_chromium_but_through_the_shared_launcher() -> None:
    launches = re.compile(r"--headless|chromium\.launch|executable_path")
    elsewhere = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path not in (LAUNCHER, Path(__file__).resolve()) and launches.search(path.read_text())
    ]
    assert elsewhere == [], "start Chromium through tests/support/chromium.py"


def test_playwright_drives_the_same_chromium_with_the_same_resolver_rules(
    page_and_image: tuple[Served, Served],
) -> None:
    page, image = page_and_image
    with browser() as launched:
        tab = launched.new_page()
        tab.goto(f"http://127.0.0.1:{page.server_address[1]}/")
        assert tab.locator("#page").inner_text() == "page"
        saved = screenshot(tab, "chromium-self-test")
    assert saved.stat().st_size > 0
    assert image.requests == []  # the resolver rules hold under Playwright too

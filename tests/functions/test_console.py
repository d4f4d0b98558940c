"""The console's routes behind the admin identity: who gets a page, who gets which refusal (as a
page, never a 500), and that what a directory or a request supplies is escaped. The pages as a
person sees them are tested in Chromium (tests/e2e/test_console.py)."""

from __future__ import annotations

import html
import re

import azure.functions as func
import pytest

from reclaim.domain.model import Member, User
from tests.fakes.issuer import ADMIN, READER
from tests.functions.conftest import USERS, World
from tests.support.functions import call_http, registered

pytestmark = pytest.mark.azurite

HOSTILE = User(
    object_id="id-hostile",
    upn="<script>alert(1)</script>@c.com",
    display_name="=cmd|' /C calc'!A0 <img src=x onerror=alert(2)>",
)

# Every console page: (function, route params, query).
PAGES = [
    ("console_policies", {}, {}),
    ("console_policy", {"name": "salesforce"}, {}),
    ("console_run", {"name": "salesforce", "run_id": "id-000"}, {"decision": "CANDIDATE"}),
    ("console_user", {"name": "salesforce"}, {"user": "u0@c.com"}),
    ("console_what_if", {"name": "salesforce"}, {}),
    ("console_savings", {}, {}),
]


def get(name: str, route: dict[str, str], query: dict[str, str], headers: dict[str, str]):
    return call_http(name, method="GET", headers=headers, route_params=route, params=query)


def body(response: func.HttpResponse) -> str:
    return (response.get_body() or b"").decode()


def test_every_console_page_is_listed_here() -> None:
    console = {n for n in registered() if n.startswith("console_")}
    assert console == {name for name, *_ in PAGES}


def test_a_reader_sees_every_page_and_others_get_a_page_saying_why(world: World) -> None:
    world.run()  # run id-000: u0..u3 asked
    before = (world.state(), [r.id for r in world.ctx.store.runs()])
    for name, route, query in PAGES:
        page = get(name, route, query, world.admin(roles=[READER]))
        assert page.status_code == 200, (name, body(page)[:500])
        assert page.mimetype == "text/html" and page.charset == "utf-8"
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert '<html lang="en">' in body(page)
        assert get(name, route, query, world.admin(roles=[ADMIN])).status_code == 200

        refused = get(name, route, query, world.admin(roles=[]))
        assert refused.status_code == 403 and refused.mimetype == "text/html"
        assert "the Reclaim.Reader app role" in body(refused)
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
        anonymous = get(name, route, query, {})
        assert anonymous.status_code == 401 and "<h1>Sign in first</h1>" in body(anonymous)
    assert (world.state(), [r.id for r in world.ctx.store.runs()]) == before  # read-only


def test_unknown_policies_runs_and_users_are_404_pages(world: World) -> None:
    world.run()
    reader = world.admin(roles=[READER])
    cases = [
        ("console_policy", {"name": "visio"}, {}, "no policy named 'visio'"),
        ("console_what_if", {"name": "visio"}, {}, "no policy named 'visio'"),
        ("console_run", {"name": "visio", "run_id": "id-000"}, {}, "no policy named 'visio'"),
        ("console_run", {"name": "salesforce", "run_id": "nope"}, {}, "has no run 'nope'"),
        ("console_user", {"name": "visio"}, {"user": "u0@c.com"}, "no policy named 'visio'"),
        ("console_user", {"name": "salesforce"}, {"user": "nobody@c.com"}, "no history for"),
    ]
    for name, route, query, message in cases:
        page = get(name, route, query, reader)
        assert page.status_code == 404, (name, route)
        assert "<h1>Not found</h1>" in body(page) and html.escape(message) in body(page)


def test_a_filter_that_cannot_work_is_a_422_page(world: World) -> None:
    world.run()
    reader = world.admin(roles=[READER])
    run = {"name": "salesforce", "run_id": "id-000"}
    for query in ({"decision": "<b>BOGUS</b>"}, {"user": "x" * 201}):
        page = get("console_run", run, query, reader)
        assert page.status_code == 422 and "<b>BOGUS" not in body(page)
    assert "expected one of" in body(get("console_run", run, {"decision": "nope"}, reader))
    page = get("console_user", {"name": "salesforce"}, {"user": " "}, reader)
    assert page.status_code == 422 and "give one identifier" in body(page)


def test_what_the_directory_and_the_request_supply_is_escaped(world: World) -> None:
    world.directory.groups["SF"] = [Member(u) for u in USERS] + [Member(HOSTILE)]
    world.run()
    reader = world.admin(roles=[READER])
    pages = [
        get("console_run", {"name": "salesforce", "run_id": "id-000"}, {}, reader),
        get(
            "console_run", {"name": "salesforce", "run_id": "id-000"}, {"user": "<script>"}, reader
        ),
        get("console_user", {"name": "salesforce"}, {"user": HOSTILE.upn}, reader),
        get("console_user", {"name": "salesforce"}, {"user": "<i>nobody</i>"}, reader),
    ]
    for page in pages:
        text = body(page)
        assert "<script" not in text and "<img" not in text and "<i>nobody" not in text
        # nothing is fetched from anywhere: no script, no external stylesheet, font or image
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@c.com" in body(pages[0])
    assert "=cmd|&#x27; /C calc&#x27;!A0 &lt;img" in body(pages[0])
    assert "1 of 11 decisions shown" in body(pages[1])
    assert pages[2].status_code == 200 and pages[3].status_code == 404

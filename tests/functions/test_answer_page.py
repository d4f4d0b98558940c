"""The answer page (GET/POST /api/answer) over real Table storage: what a link shows, what its
form records, and a battery of forged, expired, replayed and malformed links, each answered 4xx
with nothing changed (requests, ledger, answers, queue compared before and after)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from reclaim import usecases
from reclaim.domain.answer_links import LinkPurpose, SignedLink, sign_link
from reclaim.domain.appeal import answer_link, appeal_link
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.limits import MAX_JUSTIFICATION_LENGTH
from reclaim.domain.policy.notice import NoticeSpec
from reclaim.domain.records import LedgerOutcome
from reclaim.request_links import answer_url, appeal_url
from tests.conftest import asking_policy
from tests.functions.conftest import World
from tests.support.functions import call_http, pump

pytestmark = pytest.mark.azurite

NAME = "answer_page"
LINK_SECRET_NAME = "reclaim-link-key"
KEY = b"k" * 32
OTHER_KEY = b"o" * 32
REASON = "I draw the floor plans in Visio every week"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
APPROVER = "licences@c.com"


@pytest.fixture
def asked(world: World) -> dict[str, Request]:
    """The idle users u0..u3 were asked; the links are signed with KEY."""
    world.app.settings = replace(
        world.app.settings, link_secret_name=LINK_SECRET_NAME, public_url="https://reclaim.test"
    )
    world.secrets.values[LINK_SECRET_NAME] = KEY.decode()
    world.use_policies(replace(world.policy, appeal_within=timedelta(days=14)))
    assert world.run().run.asked == 4
    return {r.user.upn: r for r in world.ctx.store.requests(states=[RequestState.PENDING])}


def token_of(request: Request, key: bytes = KEY, **changes: object) -> str:
    assert request.deadline is not None
    return sign_link(replace(answer_link(request, request.deadline), **changes), key)


@pytest.fixture
def escalated(world: World, asked: dict[str, Request]) -> Request:
    """u0 answered "keep" with REASON on the page; her "keep" waits for APPROVER, asked."""
    escalation = {"approver": "fallback", "fallback": [APPROVER], "when": "keep"}
    world.use_policies(replace(asking_policy(escalation=escalation), appeal_within=None))
    request = asked["u0@c.com"]
    assert post(token_of(request), "keep", REASON).status_code == 200
    assert usecases.expire_requests(world.ctx, world.clock()).approvals_asked == 1
    waiting = world.ctx.store.get_request(request.id)
    assert waiting.state is RequestState.AWAITING_APPROVAL and waiting.approval.asked_at
    return waiting


def approval_token(request: Request, recipient: str = APPROVER, **changes: object) -> str:
    assert request.deadline is not None
    link = SignedLink(request.id, request.policy, recipient, LinkPurpose.APPROVE, request.deadline)
    return sign_link(replace(link, **changes), KEY)


def token_in(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def get(token: str | None, **params: str):
    given = params if token is None else {"t": token, **params}
    return call_http(NAME, method="GET", params=given)


def post(token: str, choice: str, justification: str = ""):
    fields = {"t": token, "choice": choice, "justification": justification}
    body = urlencode(fields, errors="surrogatepass").encode()  # lone surrogates as %ED%A0%80
    return call_http(NAME, body, headers=FORM)


def text(response) -> str:
    body = re.sub(r"<style>.*?</style>", "", response.get_body().decode())
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def test_get_shows_the_application_the_evidence_the_deadline_and_the_choices(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u0@c.com"]
    before = world.state()
    response = get(token_of(request))

    assert response.status_code == 200 and world.state() == before  # a prefetch writes nothing
    page = response.get_body().decode()
    assert 'lang="en"' in page and "<script" not in page
    assert f"Do you still need {world.policy.application}?" in text(response)
    assert request.reason and request.reason.split(";")[0] in text(response)
    assert f"Answer by {request.deadline:%Y-%m-%d %H:%M} UTC" in text(response)
    assert 'value="keep"' in page and 'value="release"' in page
    assert f'maxlength="{MAX_JUSTIFICATION_LENGTH}"' in page
    headers = response.headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp


def test_keep_with_a_reason_is_recorded_like_a_webhook_answer_by_the_links_recipient(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u0@c.com"]
    response = post(token_of(request), "keep", f"  {REASON} ")

    assert response.status_code == 200 and "You keep your licence" in text(response)
    assert world.ctx.store.get_request(request.id).state is RequestState.KEPT
    (answer,) = world.ctx.store.answers("salesforce", request.state_key)
    assert (answer.source, answer.justification) == ("answer-page", REASON)
    (answered,) = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.ANSWERED]
    assert answered.detail == f"yes via answer-page by u0@c.com: {REASON}"

    before = world.state()  # the same answer twice changes nothing
    again = post(token_of(request), "keep", REASON)
    assert again.status_code == 200 and "already recorded" in text(again)
    assert world.state() == before


def test_release_then_keep_before_the_deadline_replaces_it_and_both_are_in_the_history(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u1@c.com"]
    assert "given back shortly" in text(post(token_of(request), "release"))
    assert world.ctx.store.get_request(request.id).state is RequestState.DUE
    world.clock.advance(timedelta(minutes=5))
    page = get(token_of(request))
    assert (
        "you can still keep it" in text(page) and 'value="release"' not in page.get_body().decode()
    )

    assert "the removal will not happen" in text(post(token_of(request), "keep", REASON))
    assert world.ctx.store.get_request(request.id).state is RequestState.CANCELLED
    values = [a.value.value for a in world.ctx.store.answers("salesforce", request.state_key)]
    assert values == ["no", "yes"]


def test_keep_then_release_is_refused_the_keep_stands(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u2@c.com"]
    post(token_of(request), "keep")
    before = world.state()
    response = post(token_of(request), "release")
    assert response.status_code == 409 and "that answer stands" in text(response)
    assert world.state() == before


def test_a_policy_requiring_a_reason_refuses_a_bare_keep_and_shows_the_form_again(
    world: World, asked: dict[str, Request]
) -> None:
    campaign = replace(world.policy.campaign, require_justification_for_keep=True)
    world.use_policies(replace(world.policy, campaign=campaign))
    request = asked["u0@c.com"]
    before = world.state()
    response = post(token_of(request), "keep", "   ")
    assert response.status_code == 422 and world.state() == before
    assert "give a reason" in text(response) and 'value="keep"' in response.get_body().decode()
    assert "required to keep the licence" in text(response)
    assert post(token_of(request), "keep", REASON).status_code == 200


def test_the_channels_link_builders_point_at_the_page(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u0@c.com"]
    url = answer_url(world.app.settings, world.secrets, request)
    assert url.startswith("https://reclaim.test/api/answer?t=")
    page = get(token_in(url), choice="release")  # a message's "release" button
    assert page.status_code == 200 and 'You chose "Release it' in text(page)
    body = page.get_body().decode()
    assert body.index('value="release"') < body.index('value="keep"')  # shown first
    assert appeal_url(world.app.settings, world.secrets, world.policy, request) == ""  # not removed


def test_an_approval_link_shows_her_evidence_and_answer_and_writes_nothing(
    world: World, escalated: Request
) -> None:
    before = world.state()
    page = get(approval_token(escalated), choice="release")
    assert page.status_code == 200 and world.state() == before  # a prefetch writes nothing
    shown = text(page)
    assert f"Does u0@c.com still need {world.policy.application}?" in shown
    assert escalated.reason.split(";")[0] in shown
    assert f"u0@c.com answered: keep on {world.clock():%Y-%m-%d %H:%M} UTC (“{REASON}”)" in shown
    assert f"Decide by {escalated.deadline:%Y-%m-%d %H:%M} UTC" in shown
    body = page.get_body().decode()
    assert body.index('value="release"') < body.index('value="keep"')  # the mail's button first
    assert "Keep the licence" in shown and "Release it" in shown


def test_the_approver_releases_from_the_page_once_and_may_still_keep(
    world: World, escalated: Request
) -> None:
    token = approval_token(escalated)
    done = post(token, "release", "she moved to sales")
    assert done.status_code == 200 and "licence will be given back" in text(done)
    released = world.ctx.store.get_request(escalated.id)
    assert released.state is RequestState.DUE
    (decided,) = [
        e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.APPROVER_RELEASED
    ]
    assert decided.detail == (
        f"release by {APPROVER} (fallback) via answer-page: she moved to sales"
    )

    before = world.state()  # the same decision twice changes nothing
    again = post(token, "release", "she moved to sales")
    assert again.status_code == 200 and "already recorded" in text(again)
    assert world.state() == before
    page = get(token)
    assert "you can still keep it" in text(page)
    assert 'value="release"' not in page.get_body().decode()

    kept = post(token, "keep", "she is back next week")
    assert kept.status_code == 200 and "removal will not happen" in text(kept)
    assert world.ctx.store.get_request(escalated.id).state is RequestState.CANCELLED


def test_during_the_notice_after_a_release_the_approver_may_still_keep(
    world: World, escalated: Request
) -> None:
    world.use_policies(replace(world.policy, notice=NoticeSpec(period=timedelta(days=3))))
    token = approval_token(escalated)
    assert post(token, "release").status_code == 200
    assert world.ctx.store.get_request(escalated.id).state is RequestState.NOTICE
    page = get(token)
    assert "you can still keep it" in text(page)
    assert 'value="release"' not in page.get_body().decode()
    assert "removal will not happen" in text(post(token, "keep"))
    assert world.ctx.store.get_request(escalated.id).state is RequestState.CANCELLED


def test_the_approver_keeps_and_that_stands(world: World, escalated: Request) -> None:
    token = approval_token(escalated)
    assert "The licence stays" in text(post(token, "keep"))
    assert world.ctx.store.get_request(escalated.id).state is RequestState.KEPT
    before = world.state()
    assert "already recorded" in text(post(token, "keep"))
    refused = post(token, "release")
    assert refused.status_code == 409 and "that decision stands" in text(refused)
    assert world.state() == before


def test_an_approver_keep_without_a_reason_is_refused_where_the_policy_asks_for_one(
    world: World, escalated: Request
) -> None:
    campaign = replace(world.policy.campaign, require_justification_for_keep=True)
    world.use_policies(replace(world.policy, campaign=campaign))
    before = world.state()
    response = post(approval_token(escalated), "keep")
    assert response.status_code == 422 and "give a reason" in text(response)
    assert world.state() == before and 'value="keep"' in response.get_body().decode()


def test_approval_links_that_cannot_decide_change_nothing(
    world: World, asked: dict[str, Request], escalated: Request
) -> None:
    past = world.clock() - timedelta(seconds=1)
    forged = SignedLink(
        escalated.id, "salesforce", APPROVER, LinkPurpose.APPROVE, escalated.deadline
    )
    cases = {  # name: (token, choice, GET status, POST status)
        "the user's own name": (approval_token(escalated, "u0@c.com"), "release", 403, 403),
        "a stranger": (approval_token(escalated, "mallory@c.com"), "keep", 403, 403),
        "another key": (sign_link(forged, OTHER_KEY), "release", 403, 403),
        "expired": (approval_token(escalated, expires_at=past), "release", 410, 410),
        "restore": (approval_token(escalated), "restore", 200, 400),
        "unknown choice": (approval_token(escalated), "delete", 200, 400),
        "unknown request": (approval_token(escalated, request_id="nope"), "keep", 410, 410),
        "not escalated": (approval_token(asked["u1@c.com"]), "keep", 403, 403),
    }
    before = world.state()
    for name, (token, choice, on_get, on_post) in cases.items():
        assert get(token).status_code == on_get, name
        response = post(token, choice)
        assert response.status_code == on_post, (name, text(response))
        assert world.state() == before, name
    world.clock.advance(timedelta(days=8))  # past the approver's (7 days), before the tick
    closed = post(approval_token(escalated, expires_at=world.clock() + timedelta(days=1)), "keep")
    assert closed.status_code == 410 and "deadline passed" in text(closed)
    assert world.state() == before


# ---- the battery: every bad link or request is 4xx and changes nothing -----------------------


def battery(asked: dict[str, Request], world: World) -> list[tuple[str, object]]:
    u0, u1 = asked["u0@c.com"], asked["u1@c.com"]
    good = token_of(u0)
    payload, mac = good.split(".")
    other_mac = token_of(u1).split(".")[1]
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    past = world.clock() - timedelta(seconds=1)
    return [
        ("forged: another key", lambda: post(token_of(u0, OTHER_KEY), "release")),
        ("altered payload", lambda: post(f"{flipped}.{mac}", "release")),
        ("another link's mac", lambda: post(f"{payload}.{other_mac}", "release")),
        ("expired", lambda: post(token_of(u0, expires_at=past), "release")),
        ("expired GET", lambda: get(token_of(u0, expires_at=past))),
        ("bad base64", lambda: post("abc!.def", "release")),
        ("bad base64 mac", lambda: post(f"{payload}.a", "release")),
        ("huge", lambda: post("A" * 5000 + "." + "B" * 5000, "release")),
        ("huge GET", lambda: get("A" * 100_000)),
        ("lone surrogate token", lambda: get("\ud800." + mac)),
        ("lone surrogate reason", lambda: post(good, "keep", "half \ud800 a pair")),
        ("control character reason", lambda: post(good, "keep", "line\nbreak")),
        ("reason too long", lambda: post(good, "keep", "x" * (MAX_JUSTIFICATION_LENGTH + 1))),
        ("no dots", lambda: get("justtext")),
        ("empty", lambda: get("")),
        ("missing token", lambda: get(None)),
        ("missing token POST", lambda: post("", "keep")),
        ("unknown choice", lambda: post(good, "delete-everything")),
        ("no choice", lambda: post(good, "")),
        ("appeal with an answer link", lambda: post(good, "restore")),
        (
            "appeal link before any removal",
            lambda: post(sign_link(appeal_link(u0, world.clock(), timedelta(days=14)), KEY), "restore"),
        ),
        (
            "another request's id, her name",
            lambda: post(token_of(u0, request_id=u1.id), "release"),
        ),
        ("unknown request", lambda: post(token_of(u0, request_id="no-such-request"), "release")),
        ("another policy", lambda: post(token_of(u0, policy="visio"), "release")),
        ("approval link, not escalated", lambda: post(token_of(u0, purpose=LinkPurpose.APPROVE), "release")),
        ("HEAD", lambda: call_http(NAME, method="HEAD", params={"t": good})),
        ("PUT", lambda: call_http(NAME, b"choice=release&t=" + good.encode(), method="PUT")),
        ("not a form", lambda: call_http(NAME, b'{"t": "x"}', headers={"Content-Type": "application/json"})),
        ("bad percent escape", lambda: call_http(NAME, b"t=%ZZ&choice=keep", headers=FORM)),
        ("invalid utf-8", lambda: call_http(NAME, b"t=" + good.encode() + b"&choice=keep&justification=%ff", headers=FORM)),
        ("raw bytes", lambda: call_http(NAME, b"t=\xff\xfe&choice=keep", headers=FORM)),
        ("two tokens", lambda: call_http(NAME, f"t={good}&t={good}&choice=release".encode(), headers=FORM)),
        ("huge body", lambda: call_http(NAME, b"t=" + b"A" * 100_000, headers=FORM)),
    ]  # fmt: skip


def test_the_battery_changes_nothing_and_never_answers_5xx(
    world: World, asked: dict[str, Request]
) -> None:
    cases = battery(asked, world)
    before = world.state()
    statuses = {}
    for name, attempt in cases:
        response = attempt()  # type: ignore[operator]
        statuses[name] = response.status_code
        assert 400 <= response.status_code < 500, (name, response.status_code, text(response))
        assert "cannot" in text(response) or "reason" in text(response), name
        assert world.state() == before, name
    assert statuses["forged: another key"] == 403 and statuses["expired"] == 410
    assert statuses["HEAD"] == 405 and statuses["approval link, not escalated"] == 403
    assert statuses["missing token"] == 400 and statuses["huge body"] == 413


def test_replays_after_the_deadline_change_nothing(world: World, asked: dict[str, Request]) -> None:
    request = asked["u3@c.com"]
    token = token_of(request)
    assert post(token, "keep").status_code == 200
    world.clock.advance(timedelta(days=8))  # past the deadline and the link's expiry
    before = world.state()
    for choice in ("keep", "release"):
        response = post(token, choice)
        assert response.status_code == 410 and "expired" in text(response)
    assert get(token).status_code == 410
    assert world.state() == before


def test_a_pending_request_past_its_deadline_refuses_a_link_that_outlives_it(
    world: World, asked: dict[str, Request]
) -> None:
    request = asked["u0@c.com"]
    token = token_of(request, expires_at=request.deadline + timedelta(days=30))
    world.clock.advance(timedelta(days=8))
    before = world.state()
    response = post(token, "keep")
    assert response.status_code == 410 and "The deadline passed on" in text(response)
    assert world.state() == before


def test_an_appeal_restores_the_removed_user_once(world: World, asked: dict[str, Request]) -> None:
    request = asked["u1@c.com"]
    post(token_of(request), "release")
    world.clock.advance(timedelta(minutes=15))
    usecases.expire_requests(world.ctx, world.clock())
    assert pump(world.app).drain().processed == 1
    removed = world.ctx.store.get_request(request.id)
    assert removed.state is RequestState.REMOVED
    assert not world.directory.holds(request.group, "u1@c.com")
    url = appeal_url(world.app.settings, world.secrets, world.policy, removed)
    assert url.endswith("&choice=restore")  # the removal message's button
    token = token_in(url)

    before = world.state()
    page = get(token)
    assert page.status_code == 200 and world.state() == before
    assert f"Get your {world.policy.application} licence back" in text(page)
    assert "without waiting for an administrator" in text(page)
    expires = removed.updated_at + timedelta(days=14)
    assert f"until {expires:%Y-%m-%d %H:%M} UTC" in text(page)
    assert post(token, "keep").status_code == 400 and world.state() == before  # wrong choice

    done = post(token, "restore")
    assert done.status_code == 200 and "licence is back" in text(done)
    assert world.ctx.store.get_request(request.id).state is RequestState.RESTORED
    assert world.directory.holds(request.group, "u1@c.com")
    outcomes = [e.outcome for e in world.ctx.store.ledger() if e.request_id == request.id]
    assert outcomes[-2:] == [LedgerOutcome.RESTORED, LedgerOutcome.APPEALED]
    (appealed,) = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.APPEALED]
    assert "u1@c.com" in appealed.detail

    before = world.state()  # replayed: nothing left to do
    again = post(token, "restore")
    assert again.status_code == 410 and "given back already" in text(again)
    assert world.state() == before
    (line,) = usecases.report(world.ctx)
    assert (line.removed, line.appealed, line.appeal_rate) == (1, 1, 1.0)


def test_an_appeal_link_expires_with_the_window(world: World, asked: dict[str, Request]) -> None:
    request = asked["u1@c.com"]
    link = SignedLink(
        request.id,
        request.policy,
        "u1@c.com",
        LinkPurpose.APPEAL,
        world.clock() + timedelta(days=14),
    )
    world.clock.advance(timedelta(days=15))
    before = world.state()
    assert post(sign_link(link, KEY), "restore").status_code == 410
    assert world.state() == before


def test_every_value_on_the_page_is_escaped(world: World, asked: dict[str, Request]) -> None:
    hostile = '<script>alert(1)</script> & "Visio"'
    world.use_policies(replace(world.policy, application=hostile))
    page = get(token_of(asked["u0@c.com"])).get_body().decode()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in page

"""Issue 17's journey, as Ada and her manager Grace live it: headless Chromium against the local
host, real Azurite storage and the Graph fake, the campaign on the `email` channel. Ada is asked
(the link comes out of the mail the fake received), reminded, keeps her licence with a reason;
Grace, her manager in Graph, gets the approval mail and releases it; Ada is mailed the removal
date (a 3-day notice); after it the removal takes her out of the group and mails her the appeal
link; she appeals and is back in the group. `explain` shows
every step, and every page is saved as a screenshot (tests/output/screenshots/)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page

from reclaim.cli import main
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.messages import when
from reclaim.host import LocalHost
from reclaim.settings import Settings
from tests.e2e.test_answer_page_chromium import free_port
from tests.e2e.test_host_e2e import MONDAY, START, Clock, write_usage
from tests.fakes import graph_mail
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_mail import SentMail
from tests.support.chromium import SCREENSHOTS, browser, screenshot
from tests.support.functions import binding_settings
from tests.support.messages import html_links

pytestmark = pytest.mark.azurite

ADA, GRACE, SENDER = "ada@contoso.test", "grace@contoso.test", "licences@contoso.test"
REASON = "I draw the floor plans in Visio every week"
RELEASE_REASON = "she moved to sales: the plans are done by the agency now"
LINK_KEY = "a link key for the journey test, at least 32 bytes"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


def mails_to(graph: FakeGraph, address: str) -> list[SentMail]:
    return [m for m in graph.mail.sent if address in m.to]


def link(mail: SentMail, choice: str) -> str:
    """The mail's button for `choice`, as a mail client opens it (the button and the plain
    address under it are the same link)."""
    (found,) = {u for u in html_links(mail.content) if u.endswith(f"&choice={choice}")}
    return found


def shot(page: Page, name: str) -> None:
    saved = screenshot(page, name)
    assert saved.stat().st_size > 0 and saved.parent == SCREENSHOTS


def explain(env: dict[str, str], policies: Path) -> str:
    out, err = io.StringIO(), io.StringIO()
    args = ["explain", "--policies", str(policies), "--policy", "visio", "--user", ADA]
    assert main(args, env=env, out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


def test_asked_reminded_kept_released_by_her_manager_removed_appealed_restored(
    graph: FakeGraph, storage_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = graph.add_user(ADA, display_name="Ada Lovelace")
    grace = graph.add_user(GRACE, display_name="Grace Hopper")
    graph.set_manager(ada, grace)
    graph_mail.enable(graph, graph.add_user(SENDER, display_name="Licences"))
    busy = [graph.add_user(f"user{n}@contoso.test") for n in range(3)]
    group = graph.add_group("Visio-Plan2")
    graph.add_member(group, ada, *busy)
    usage = {ADA: 1, **{f"user{n}@contoso.test": 600 for n in range(3)}}
    write_usage(tmp_path / "usage.csv", usage, START)
    policies = tmp_path / "policies.yaml"
    policies.write_text(f"""policies:
  - name: visio
    application: Microsoft Visio
    mode: enforce
    schedule: "0 0 6 * * 1"
    directory: {{kind: entra, group: {group}}}
    usage: {{source: csv, file: usage.csv, match_on: upn, user_column: user,
            usage_column: focus_minutes, threshold: 5m, max_age: 30d}}
    ask_permission: true
    campaign: {{channel: email, respond_within: 7d, reminders: [2d]}}
    escalation: {{approver: manager, fallback: ["{SENDER}"], when: keep, respond_within: 3d}}
    notice: {{period: 3d}}
    appeal_within: 14d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
    licence: {{monthly_cost: 12.0, currency: EUR}}
""")  # fmt: skip
    port = free_port()
    env = {
        **binding_settings(),
        **storage_env,
        **graph.settings_env(),
        "RECLAIM_POLICIES_FILE": str(policies),
        "RECLAIM_MAIL_SENDER": SENDER,
        "RECLAIM_LOCAL_FUNCTION_KEY": "local-key",
        "RECLAIM_LINK_SECRET_NAME": "link-key",
        "RECLAIM_SECRET_LINK_KEY": LINK_KEY,
        "RECLAIM_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clock = Clock(START)
    host = LocalHost(Settings.from_env(env), port=port, clock=clock)
    host.start()
    try:
        store = host.app.ctx.store
        # -- Asked: the Monday run mails Ada; the link comes out of that mail.
        clock.now = MONDAY - timedelta(minutes=5)
        host.tick()  # the scheduler sees the policy first, then runs it when due
        clock.now = MONDAY + timedelta(seconds=5)
        assert "scheduler" in host.tick()
        (request,) = store.requests(states=[RequestState.PENDING])
        assert request.user.upn == ADA and request.deadline is not None
        (ask,) = mails_to(graph, ADA)
        assert ask.subject == "Do you still need Microsoft Visio?"

        # -- Reminded: two days before the deadline the expiry tick mails her again.
        clock.now = request.deadline - timedelta(days=2) + timedelta(minutes=1)
        assert "expiry" in host.tick()
        reminder = mails_to(graph, ADA)[-1]
        assert reminder.subject == "Reminder: do you still need Microsoft Visio?"
        assert store.get_request(request.id).deadline == request.deadline  # never moved

        with browser() as launched:
            tab = launched.new_page()
            # -- Ada keeps it with a reason, from the reminder's button.
            clock.now += timedelta(hours=1)
            tab.goto(link(reminder, "keep"))
            assert tab.locator("h1").inner_text() == "Do you still need Microsoft Visio?"
            assert "1m" in tab.locator("#reason").inner_text()  # her usage, as decided
            shot(tab, "journey-1-question")
            tab.get_by_role("textbox", name="Why (optional)").fill(REASON)
            tab.get_by_role("button", name="Keep my licence").click()
            assert "Your approver decides now" in tab.locator("#result").inner_text()
            shot(tab, "journey-2-kept")
            assert store.get_request(request.id).state is RequestState.AWAITING_APPROVAL

            # -- Escalated: the next expiry tick asks her manager (Graph /manager) by mail.
            clock.now += timedelta(minutes=10)
            assert "expiry" in host.tick()
            (approval_ask,) = mails_to(graph, GRACE)
            assert approval_ask.subject == "Approve Microsoft Visio for someone on your team"
            clock.now += timedelta(hours=2)
            tab.goto(link(approval_ask, "release"))
            assert tab.locator("h1").inner_text() == "Does Ada Lovelace still need Microsoft Visio?"
            assert REASON in tab.locator("#their-answer").inner_text()
            assert "1m" in tab.locator("#reason").inner_text()
            assert tab.locator("#preselected").count() == 1  # the mail's "release" first
            shot(tab, "journey-3-approval")
            tab.get_by_role("textbox", name="Why (optional)").fill(RELEASE_REASON)
            tab.get_by_role("button", name="Release it").click()
            assert "the licence will be given back" in tab.locator("#result").inner_text()
            shot(tab, "journey-4-released")
            assert store.get_request(request.id).state is RequestState.NOTICE

            # -- Notice: the next tick mails Ada the removal date, three days on.
            clock.now += timedelta(minutes=10)
            assert "expiry" in host.tick()
            notice = mails_to(graph, ADA)[-1]
            told = store.get_request(request.id)
            assert told.not_before == clock.now + timedelta(days=3)
            assert notice.subject == (
                f"Your Microsoft Visio licence will be removed on {when(told.not_before)}"
            )
            clock.now += timedelta(days=1)
            assert "expiry" in host.tick() and host.drain().processed == 0  # not before the date
            assert graph.is_member(group, ada)

            # -- Removed: after the notice the tick re-decides and releases it, the worker
            # removes her and the removal mail carries the appeal link.
            clock.now = told.not_before + timedelta(minutes=10)
            assert "expiry" in host.tick()
            assert host.drain().processed == 1
            assert not graph.is_member(group, ada)
            assert store.get_request(request.id).state is RequestState.REMOVED
            removal = mails_to(graph, ADA)[-1]
            assert removal.subject == "Your Microsoft Visio licence was removed"

            # -- Appealed: two days later she takes it back from the removal mail.
            clock.now += timedelta(days=2)
            tab.goto(link(removal, "restore"))
            assert tab.locator("h1").inner_text() == "Get your Microsoft Visio licence back"
            shot(tab, "journey-5-appeal")
            tab.get_by_role("button", name="Give me my licence back").click()
            assert tab.locator("h1").inner_text() == "Your Microsoft Visio licence is back"
            shot(tab, "journey-6-restored")
    finally:
        host.stop()

    assert graph.is_member(group, ada)
    assert store.get_request(request.id).state is RequestState.RESTORED
    story = explain(env, policies)
    steps = [
        "ASKED",
        "REMINDED",
        f"ANSWERED: yes via answer-page by {ADA}: {REASON}",
        "ESCALATED",
        "APPROVAL_ASKED",
        f"APPROVER_RELEASED: release by {GRACE} (manager) via answer-page: {RELEASE_REASON}",
        "NOTICE_SENT",
        "REMOVED",
        "REMOVAL_SENT",
        f"RESTORED: restored by {ADA}'s appeal (answer page)",
        f"APPEALED: appealed by {ADA} via the answer page",
    ]
    for step in steps:
        assert step in story, (step, story)
    assert [story.index(s) for s in steps] == sorted(story.index(s) for s in steps), story

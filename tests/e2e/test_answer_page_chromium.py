"""The answer page as people use it: headless Chromium (Playwright) against the local host, real
Azurite storage and the Graph fake. Ada opens her link, reads the evidence, keeps her licence
with a reason; Bob's licence is removed, he opens the appeal link of the removal message and gets
it back. The requests, the ledger, `explain` and the group's members are checked after each, and
every page is saved as a screenshot (tests/output/screenshots/)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from reclaim.cli import main
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import LedgerOutcome
from reclaim.host import LocalHost
from reclaim.request_links import answer_url, appeal_url
from reclaim.settings import Settings
from tests.e2e.test_host_e2e import (
    INBOUND_SECRET,
    MONDAY,
    OUTBOUND_SECRET,
    START,
    CampaignReceiver,
    Clock,
    answer,
    write_usage,
)
from tests.fakes.graph import FakeGraph
from tests.support.chromium import SCREENSHOTS, browser, screenshot
from tests.support.functions import binding_settings

pytestmark = pytest.mark.azurite

REASON = "I build the quarterly forecasts in Salesforce"
LINK_KEY = "a link key for the answer page test, 32+ bytes"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[CampaignReceiver]:
    campaign = CampaignReceiver()
    with campaign.server:
        yield campaign


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shot(page: Page, name: str) -> None:
    """A screenshot with the test output (README shows copies kept in examples/screenshots/)."""
    saved = screenshot(page, name)
    assert saved.stat().st_size > 0 and saved.parent == SCREENSHOTS


def explain(env: dict[str, str], policies: Path, user: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["explain", "--policies", str(policies), "--policy", "salesforce", "--user", user],
        env=env,
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    return out.getvalue()


def through_the_host_bad_requests_change_nothing(host: LocalHost, link: str) -> None:
    """What the Functions front end refuses before the function (methods, a URL over 4 KB)
    and what the function refuses, over real HTTP: 4xx, and nothing stored changes."""
    store = host.app.ctx.store
    before = (store.requests(), [e.id for e in store.ledger()])
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    token = link.split("?t=", 1)[1]
    attempts = [
        ("HEAD", link, b""),
        ("PUT", link, b"choice=release&t=" + token.encode()),
        ("DELETE", link, b""),
        ("GET", f"{host.url}/api/answer?t={'A' * 5000}", b""),
        ("GET", f"{host.url}/api/answer?t=%ED%A0%80.{token.split('.')[1]}", b""),
        ("POST", f"{host.url}/api/answer", b"t=" + token[:-2].encode() + b"&choice=release"),
    ]
    for method, url, body in attempts:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = session.request(method, url, data=body, headers=headers, timeout=30)
        assert 400 <= response.status_code < 500, (method, url[:80], response.status_code)
    assert (store.requests(), [e.id for e in store.ledger()]) == before


def test_keep_with_a_reason_then_an_appeal_restores_a_removed_user(
    graph: FakeGraph,
    receiver: CampaignReceiver,
    storage_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = {upn: graph.add_user(upn) for upn in ("ada@contoso.test", "bob@contoso.test")}
    busy = {f"user{n}@contoso.test": graph.add_user(f"user{n}@contoso.test") for n in range(4)}
    group = graph.add_group("Salesforce users")
    graph.add_member(group, *users.values(), *busy.values())
    write_usage(
        tmp_path / "usage.csv", {**dict.fromkeys(users, 1), **dict.fromkeys(busy, 600)}, START
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(f"""policies:
  - name: salesforce
    application: Salesforce
    mode: enforce
    schedule: "0 0 6 * * 1"
    directory: {{kind: entra, group: {group}}}
    usage: {{source: csv, file: usage.csv, match_on: upn, user_column: user,
            usage_column: focus_minutes, threshold: 5m, max_age: 30d}}
    ask_permission: true
    campaign: {{channel: webhook, url: "{receiver.server.url}/ask", respond_within: 7d,
               require_justification_for_keep: true}}
    appeal_within: 14d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
    licence: {{monthly_cost: 20.0, currency: EUR}}
""")  # fmt: skip
    port = free_port()
    env = {
        **binding_settings(),
        **storage_env,
        **graph.settings_env(),
        "RECLAIM_POLICIES_FILE": str(policies),
        "RECLAIM_WEBHOOK_SECRET_NAME": "inbound-webhook",
        "RECLAIM_SECRET_INBOUND_WEBHOOK": INBOUND_SECRET,
        "RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME": "outbound-webhook",
        "RECLAIM_SECRET_OUTBOUND_WEBHOOK": OUTBOUND_SECRET,
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
        store, secrets = host.app.ctx.store, host.app.secrets()
        assert host.app.ctx.policies["salesforce"].appeal_within == timedelta(days=14)
        clock.now = MONDAY - timedelta(minutes=5)
        host.tick()  # the scheduler sees the policy first, then runs it when due
        clock.now = MONDAY + timedelta(seconds=5)
        assert "scheduler" in host.tick()
        asked = {r.user.upn: r for r in store.requests(states=[RequestState.PENDING])}
        assert set(asked) == set(users)
        clock.now += timedelta(hours=1)
        through_the_host_bad_requests_change_nothing(
            host, answer_url(host.app.settings, secrets, asked["ada@contoso.test"])
        )

        with browser() as launched:
            tab = launched.new_page()
            # -- Ada: the question, its evidence, keep with a reason.
            ada = asked["ada@contoso.test"]
            tab.goto(answer_url(host.app.settings, secrets, ada))
            assert tab.locator("h1").inner_text() == "Do you still need Salesforce?"
            assert "1m" in tab.locator("#reason").inner_text()  # her usage, as decided
            assert "under the threshold of 5m" in tab.locator("#reason").inner_text()
            assert tab.locator("dl dt").count() > 0  # the evidence, item by item
            assert f"{ada.deadline:%Y-%m-%d %H:%M} UTC" in tab.locator("#deadline").inner_text()
            assert tab.get_by_role("button", name="Keep my licence").is_visible()
            assert tab.get_by_role("button", name="Release it: I do not need it").is_visible()
            assert "required to keep" in tab.get_by_label("Why (required").evaluate(
                "e => e.labels[0].innerText"
            )
            assert store.get_request(ada.id).state is RequestState.PENDING  # GET wrote nothing
            shot(tab, "answer-page-question")
            tab.get_by_label("Why (required").fill(REASON)
            tab.get_by_role("button", name="Keep my licence").click()
            assert tab.locator("#result").inner_text() == (
                "You keep your licence. Thank you for answering."
            )
            shot(tab, "answer-page-kept")
            assert store.get_request(ada.id).state is RequestState.KEPT
            (kept,) = [e for e in store.ledger() if e.outcome is LedgerOutcome.ANSWERED]
            assert kept.detail == f"yes via answer-page by ada@contoso.test: {REASON}"
            assert f"ANSWERED: yes via answer-page by ada@contoso.test: {REASON}" in explain(
                env, policies, "ada@contoso.test"
            )

            # -- Bob says no (by webhook); the expiry tick releases it, the worker removes it.
            bob = asked["bob@contoso.test"]
            assert answer(host, clock, {"request_id": bob.id, "answer": "no"})[1]["queued"] == 1
            clock.now += timedelta(minutes=15)
            assert "expiry" in host.tick()
            assert host.drain().processed == 1
            assert not graph.is_member(group, users["bob@contoso.test"])
            removed = store.get_request(bob.id)
            assert removed.state is RequestState.REMOVED

            # -- The removal message's appeal link: what will happen, then the licence is back.
            clock.now += timedelta(days=2)
            link = appeal_url(
                host.app.settings, secrets, host.app.ctx.policies["salesforce"], removed
            )
            tab.goto(link)
            assert tab.locator("h1").inner_text() == "Get your Salesforce licence back"
            assert (
                "without waiting for an administrator" in tab.locator("#what-happens").inner_text()
            )
            until = removed.updated_at + timedelta(days=14)
            assert f"{until:%Y-%m-%d %H:%M} UTC" in tab.locator("#deadline").inner_text()
            assert store.get_request(bob.id).state is RequestState.REMOVED  # GET wrote nothing
            shot(tab, "appeal-page")
            tab.get_by_role("button", name="Give me my licence back").click()
            assert tab.locator("h1").inner_text() == "Your Salesforce licence is back"
            shot(tab, "appeal-page-restored")
            # Opened again: the page says it is done, and nothing changes.
            tab.goto(link)
            assert "given back already" in tab.locator("#problem").inner_text()
            shot(tab, "answer-page-refused")
    finally:
        host.stop()

    assert graph.is_member(group, users["bob@contoso.test"])
    assert store.get_request(bob.id).state is RequestState.RESTORED
    outcomes = [e.outcome for e in store.ledger() if e.request_id == bob.id]
    assert outcomes[-2:] == [LedgerOutcome.RESTORED, LedgerOutcome.APPEALED]
    story = explain(env, policies, "bob@contoso.test")
    assert "RESTORED: restored by bob@contoso.test's appeal (answer page)" in story
    assert "APPEALED: appealed by bob@contoso.test via the answer page" in story

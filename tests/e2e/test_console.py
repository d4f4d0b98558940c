"""The console as an administrator sees it: headless Chromium (Playwright, tests/support/
chromium.py) against `python -m reclaim host`'s LocalHost on real Azurite, over a recorded state:
an enforcing policy that asked its idle members (one answered yes, one no and was removed, its
seat verified freed), a dry-run policy with two runs, and one whose run the caps halted.

Every figure a page shows is read from the DOM and compared with what the CLI prints as JSON
for the same state (`report`, `plan`, `plan --what-if`, `explain`), so the console cannot drift
from the command line. Each page is saved under tests/output/screenshots/ (README shows them: run
with RECLAIM_UPDATE_SCREENSHOTS=1 to refresh examples/screenshots/).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from reclaim import cli, usecases
from reclaim.domain.model import AnswerValue, Member
from reclaim.domain.policy import DirectoryKind, Policy
from reclaim.functions import app_context
from reclaim.host import LocalHost
from reclaim.settings import Settings
from reclaim.wiring import Wiring
from tests.fakes.issuer import READER, FakeIssuer
from tests.support.azurite import Azurite, unique_name
from tests.support.chromium import browser, screenshot
from tests.support.functions import binding_settings
from tests.support.memory import MemoryCampaign, MemoryDirectory, MemoryLicences

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)  # the second round of runs; the CLI and the pages read then
HOSTILE_UPN = "<script>window.pwned=1</script>@northwind.example"
HOSTILE_NAME = "=cmd|' /C calc'!A0"
MEMBERS = [  # (upn, display name, minutes used)
    ("ada@northwind.example", "Ada Lovelace", 1),
    ("bob@northwind.example", "Bob Marley", 2),
    ("cy@northwind.example", "Cy Twombly", 0),
    ("dee@northwind.example", "Dee Dee", 3),
    ("eve@northwind.example", "Eve Arden", 300),
    ("fay@northwind.example", "Fay Wray", 45),
    (HOSTILE_UPN, HOSTILE_NAME, 0),
]

POLICIES = """
policies:
  - name: sales
    application: Salesforce Lightning
    mode: enforce
    schedule: "0 0 6 * * 1"
    directory: {kind: ad, group: SF}
    usage: {source: csv, file: usage.csv, match_on: upn, user_column: user,
            usage_column: minutes, threshold: 5m, max_age: 30d}
    ask_permission: true
    campaign: {channel: webhook, url: "https://survey.invalid/ask", respond_within: 7d}
    limits: {max_removals_per_run: 20, max_percent_of_group: 100}
    licence: {monthly_cost: 20.0, currency: EUR,
              entra_sku_id: 6fd2c87f-b296-42f0-b197-1e91e994b900}
  - name: visio
    application: Visio Plan 2
    schedule: "0 30 6 1 * *"
    directory: {kind: csv, group: SF, file: members.csv}
    usage: {source: csv, file: usage.csv, match_on: upn, user_column: user,
            usage_column: minutes, threshold: 10m, max_age: 30d}
    limits: {max_removals_per_run: 20, max_percent_of_group: 100}
    licence: {monthly_cost: 10.0, currency: EUR}
  - name: tight
    application: Project
    directory: {kind: csv, group: SF, file: members.csv}
    usage: {source: csv, file: usage.csv, match_on: upn, user_column: user,
            usage_column: minutes, threshold: 5m, max_age: 30d}
    limits: {max_removals_per_run: 1, max_percent_of_group: 100}
    licence: {monthly_cost: 5.0, currency: EUR}
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ConsoleAdapters:
    """The example files for what the CLI reads too (members, usage); in memory what only the
    app writes to: the AD group the enforcing policy removes from, the campaign, Entra's seats."""

    def __init__(self, wiring: Wiring, group: MemoryDirectory) -> None:
        self.wiring, self.group = wiring, group
        self.asks, self.seats = MemoryCampaign(), MemoryLicences()

    def directory(self, policy: Policy) -> Any:
        return (
            self.group
            if policy.directory.kind is DirectoryKind.AD
            else self.wiring.directory(policy)
        )

    def usage_source(self, policy: Policy) -> Any:
        return self.wiring.usage_source(policy)

    def campaign(self, policy: Policy) -> MemoryCampaign:
        return self.asks

    def licences(self, policy: Policy) -> MemoryLicences:
        return self.seats


@dataclass
class Console:
    url: str
    folder: Path
    env: dict[str, str]
    issuer: FakeIssuer
    runs: dict[str, list[str]]  # policy -> run ids, oldest first

    def cli(self, *args: str) -> Any:
        out, err = io.StringIO(), io.StringIO()
        policies = str(self.folder / "policies.yaml")
        with patch.dict(os.environ, self.env):  # the CLI finds its storage in the environment
            code = cli.main(
                [*args, "--policies", policies], now=LATER, env=self.env, out=out, err=err
            )
        assert code in (0, 1), err.getvalue()
        return json.loads(out.getvalue())


def write_tenant(folder: Path) -> list[Member]:
    import csv

    rows = [("group", "object_id", "upn", "mail", "sam_account_name", "sid", "display_name",
             "added_at")]  # fmt: skip
    rows += [("SF", f"oid-{i}", upn, upn, f"user{i}", f"S-1-5-21-9-{i}", name, "")
             for i, (upn, name, _) in enumerate(MEMBERS)]  # fmt: skip
    with (folder / "members.csv").open("w", newline="") as file:
        csv.writer(file).writerows(rows)
    with (folder / "usage.csv").open("w", newline="") as file:
        csv.writer(file).writerows([("user", "minutes"), *((u, m) for u, _, m in MEMBERS)])
    os.utime(folder / "usage.csv", (T0.timestamp(), T0.timestamp()))  # the export's age
    (folder / "policies.yaml").write_text(POLICIES)
    from reclaim.adapters.files import CsvDirectory

    return list(CsvDirectory(folder / "members.csv").members("SF"))


@pytest.fixture(scope="module")
def console(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    members = write_tenant(folder)
    with FakeIssuer() as issuer:
        env = {
            **binding_settings(),
            **issuer.settings(),
            "AzureWebJobsStorage": azurite.connection_string,
            "RECLAIM_STATE_BACKEND": "tables",
            "RECLAIM_TABLE_PREFIX": unique_name("t"),
            "RECLAIM_REMOVAL_QUEUE": unique_name("q"),
            "RECLAIM_SECRETS_SOURCE": "env",
        }
        settings, clock = Settings.from_env(env), Clock(T0)
        adapters = ConsoleAdapters(Wiring(settings, folder), MemoryDirectory({"SF": members}))
        app = app_context.build(
            settings,
            env=env,
            policies_file=folder / "policies.yaml",
            adapters=adapters,
            clock=clock,
        )
        host = LocalHost(settings, app=app, port=0, env=env, function_key="")
        host.start()
        try:
            runs = record_history(app.ctx, host, clock)
            yield Console(host.url, folder, env, issuer, runs)
        finally:
            host.stop()


def record_history(ctx: usecases.Context, host: LocalHost, clock: Clock) -> dict[str, list[str]]:
    sales, visio, tight = (ctx.policies[n] for n in ("sales", "visio", "tight"))
    usecases.run_policy(ctx, visio, T0)
    asked = usecases.run_policy(ctx, sales, T0)
    assert asked.run.asked == 5  # ada, bob, cy, dee and the hostile name
    for user, value in (("bob@northwind.example", AnswerValue.YES),
                        ("cy@northwind.example", AnswerValue.NO)):  # fmt: skip
        usecases.record_answer(
            ctx,
            usecases.AnswerCommand(
                value,
                T0 + timedelta(minutes=30),
                policy="sales",
                user=user,
                justification="weekly pipeline review",
            ),
            T0 + timedelta(minutes=30),
        )
    clock.now = T0 + timedelta(hours=1)
    usecases.expire_requests(ctx, clock.now)  # cy's "no" is re-decided and queued
    assert host.drain().processed == 1  # the worker removes cy
    clock.now = LATER
    usecases.expire_requests(ctx, clock.now)  # Entra ID confirms cy's seat freed
    usecases.run_policy(ctx, visio, LATER)
    assert usecases.run_policy(ctx, tight, LATER).halted
    return {p: [r.id for r in ctx.store.runs(policy=p) if r.mode != "expiry"] for p in ctx.policies}


@pytest.fixture(scope="module")
def reader(console: Console) -> Iterator[BrowserContext]:
    with browser() as chromium:
        context = chromium.new_context(
            extra_http_headers=console.issuer.bearer(roles=[READER]),
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def page(reader: BrowserContext) -> Iterator[Page]:
    opened = reader.new_page()
    yield opened
    opened.close()


# What a page must be for everyone (WCAG 2.2 AA where it can be measured): the contrast of every
# text against the background it is drawn on, a label for every control, a scope on every table
# header, a language, and no script at all.
AUDIT = """() => {
  const parse = c => { const p = c.match(/[\\d.]+/g).map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = ({r, g, b}) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || ![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const [hi, lo] = [lum(parse(getComputedStyle(el).color)), lum(background(el))].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) low.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return {
    low,
    unlabelled: [...document.querySelectorAll("input, select, textarea")].filter(c => !c.labels.length).map(c => c.id),
    unscoped: document.querySelectorAll("th:not([scope])").length,
    lang: document.documentElement.lang,
    scripts: document.scripts.length,
  };
}"""


def keep(page: Page, name: str) -> None:
    """Check the page's accessibility, then save its screenshot."""
    audit = page.evaluate(AUDIT)
    assert audit == {"low": [], "unlabelled": [], "unscoped": 0, "lang": "en", "scripts": 0}, name
    shot = screenshot(page, f"console-{name}")
    if os.environ.get("RECLAIM_UPDATE_SCREENSHOTS"):
        target = REPO / "examples" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)


def cells(page: Page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def row(page: Page, table: str, first: str) -> Any:
    return page.locator(f"#{table} tbody tr").filter(
        has=page.get_by_role("rowheader", name=first, exact=True)
    )


def test_the_policies_page_shows_what_report_prints(console: Console, page: Page) -> None:
    report = {r["policy"]: r for r in console.cli("report", "--format", "json")}
    page.goto(console.url + "/api/console")
    expect(page.locator("h1")).to_have_text("Policies")
    assert (
        sorted(cells(page, "#policies tbody th")) == sorted(report) == ["sales", "tight", "visio"]
    )
    for name, figures in report.items():
        line = row(page, "policies", name)
        assert line.locator("[data-field=members]").inner_text() == str(figures["members"])
        assert line.locator("[data-field=candidates]").inner_text() == str(figures["candidates"])
        assert line.locator("[data-field=halts]").inner_text() == str(len(figures["halted_runs"]))
        # asked, less who answered yes and who was removed after a no: still waiting
        pending = figures["asked"] - figures["kept"] - figures["removed"]
        assert line.locator("[data-field=pending]").inner_text() == str(pending)
    assert row(page, "policies", "sales").locator("[data-field=pending]").inner_text() == "3"
    assert row(page, "policies", "sales").locator("[data-field=mode]").inner_text() == "enforce"
    assert row(page, "policies", "visio").locator("[data-field=mode]").inner_text() == "dry-run"
    assert "exceed max_removals_per_run 1" in row(page, "policies", "tight").inner_text()
    expect(page.locator("#kill-switch")).to_have_text("Kill switch: off; never set")
    keep(page, "policies")


def test_keyboard_alone_reaches_every_link_with_a_visible_focus(
    console: Console, page: Page
) -> None:
    page.goto(console.url + "/api/console")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "sales"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Policy sales")
    # the search form by keyboard: its field is labelled, Enter submits it
    page.get_by_label("User (UPN, mail, sAMAccountName, SID or object id)").focus()
    page.keyboard.type("ada@northwind.example")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("ada@northwind.example under sales")


def test_links_lead_from_a_policy_to_its_runs_asks_and_back(console: Console, page: Page) -> None:
    page.goto(console.url + "/api/console")
    page.get_by_role("link", name="sales", exact=True).click()
    expect(page.locator("h1")).to_have_text("Policy sales")
    assert page.locator("#asks tbody tr").count() == 3
    assert HOSTILE_UPN in cells(page, "#asks tbody th")  # shown as text, never run
    assert page.evaluate("window.pwned") is None
    keep(page, "policy")
    page.locator("#runs tbody tr th a").first.click()
    expect(page.locator("h1")).to_contain_text("of sales")
    assert page.url.endswith(console.runs["sales"][-1])
    page.get_by_role("link", name="bob@northwind.example").click()
    expect(page.locator("h1")).to_have_text("bob@northwind.example under sales")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Savings").click()
    expect(page.locator("h1")).to_have_text("Savings")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Policies").click()
    expect(page.locator("h1")).to_have_text("Policies")


def test_a_runs_decisions_match_the_plan_and_filter_by_get_forms(
    console: Console, page: Page
) -> None:
    (plan,) = console.cli("plan", "--policy", "visio", "--format", "json")
    page.goto(console.url + "/api/console/policies/visio")
    page.locator("#runs tbody tr th a").first.click()  # the latest run, at LATER like the plan
    assert page.url.endswith(console.runs["visio"][-1])
    for kind, count in plan["counts"].items():
        if count:
            assert page.locator(f'[data-count="{kind}"]').inner_text() == str(count)
    assert page.locator("[data-field=members]").inner_text() == str(len(plan["decisions"]))
    shown = dict(zip(cells(page, "#decisions tbody th"),
                     cells(page, "#decisions [data-field=decision]"), strict=True))  # fmt: skip
    assert shown == {d["user"]: d["decision"] for d in plan["decisions"]}
    keep(page, "run")

    page.get_by_label("Decision", exact=True).select_option("CANDIDATE")
    page.get_by_role("button", name="Filter").click()
    assert "decision=CANDIDATE" in page.url
    candidates = [d["user"] for d in plan["decisions"] if d["decision"] == "CANDIDATE"]
    assert sorted(cells(page, "#decisions tbody th")) == sorted(candidates)
    assert set(cells(page, "#decisions [data-field=decision]")) == {"CANDIDATE"}
    expect(page.locator("#shown")).to_have_text(
        f"{len(candidates)} of {len(plan['decisions'])} decisions shown."
    )
    page.get_by_label("User contains").fill("<script>")
    page.get_by_label("User contains").press("Enter")
    assert cells(page, "#decisions tbody th") == [HOSTILE_UPN]
    assert HOSTILE_NAME in page.locator("#decisions tbody td").first.inner_text()
    assert page.evaluate("window.pwned") is None
    expect(page.get_by_label("User contains")).to_have_value("<script>")
    page.get_by_label("User contains").fill("nobody-at-all")
    page.get_by_label("User contains").press("Enter")
    expect(page.locator("#decisions-empty")).to_have_text("no decision matches the filters")
    page.get_by_role("link", name="Clear the filters").click()
    assert page.locator("#decisions tbody tr").count() == len(plan["decisions"])


def test_with_javascript_off_the_filters_and_links_still_work(
    console: Console, reader: BrowserContext
) -> None:
    chromium = reader.browser
    assert chromium is not None
    context = chromium.new_context(
        java_script_enabled=False, extra_http_headers=console.issuer.bearer(roles=[READER])
    )
    page = context.new_page()
    page.goto(console.url + "/api/console")
    page.get_by_role("link", name="visio", exact=True).click()
    page.locator("#runs tbody tr th a").first.click()
    page.get_by_label("Decision", exact=True).select_option("ACTIVE")
    page.get_by_role("button", name="Filter").click()
    assert "decision=ACTIVE" in page.url
    assert cells(page, "#decisions tbody th") == ["eve@northwind.example", "fay@northwind.example"]
    context.close()


def test_a_users_history_matches_explain(console: Console, page: Page) -> None:
    explained = console.cli(
        "explain", "--policy", "sales", "--user", "bob@northwind.example", "--format", "json"
    )
    page.goto(console.url + "/api/console/policies/sales")
    page.get_by_label("User (UPN, mail, sAMAccountName, SID or object id)").fill(
        "bob@northwind.example"
    )
    page.get_by_role("button", name="Show history").click()
    expect(page.locator("h1")).to_have_text("bob@northwind.example under sales")
    assert page.locator("[data-field=decisions]").inner_text() == str(len(explained["decisions"]))
    assert page.locator("[data-field=ledger]").inner_text() == str(len(explained["ledger"]))
    assert (
        page.locator("[data-field=latest]").inner_text() == explained["decisions"][-1]["decision"]
    )
    history = page.locator("#history tbody tr")
    assert history.count() == len(explained["decisions"]) + len(explained["ledger"])
    assert [e["outcome"] for e in explained["ledger"]] == ["ASKED", "ANSWERED"]
    assert "ANSWERED: yes" in page.locator("#history").inner_text()
    assert cells(page, "#what-would-change li") == explained["what_would_change"]
    keep(page, "user")


def test_the_savings_page_shows_what_report_prints(console: Console, page: Page) -> None:
    from reclaim.reporting import money

    report = console.cli("report", "--format", "json")
    page.goto(console.url + "/api/console/savings")
    for figures in report:
        line = row(page, "savings", figures["policy"])
        for key in ("monthly_savings", "yearly_savings", "unverified_monthly", "potential_monthly"):
            shown = line.locator(f"[data-field={key}]").inner_text()
            assert shown == money(figures[key], figures["currency"]), key
        for key in ("seats_freed", "unverified", "candidates", "removed", "restored"):
            assert line.locator(f"[data-field={key}]").inner_text() == str(figures[key]), key
    sales = next(r for r in report if r["policy"] == "sales")
    assert (sales["seats_freed"], sales["monthly_savings"]) == (1, 20.0)  # cy's verified seat
    total = sum(r["monthly_savings"] for r in report)
    assert page.locator("#total-monthly_savings").inner_text() == money(total, "EUR")
    expect(page.locator("svg#savings-chart rect")).to_have_count(1)
    # Savings by month: the same month table the HTML report shows, equal to the JSON's months.
    from reclaim.domain.savings import Amount
    from reclaim.savings_output import FIGURES, amount_text

    for figures in report:
        section = page.locator(f'section.by-month[data-policy="{figures["policy"]}"]')
        assert figures["months"], figures["policy"]
        for month in figures["months"]:
            cells = section.locator(f'tr[data-month="{month["month"]}"]')
            for figure in FIGURES:
                data = month[figure]
                amount = None if data is None else Amount(data["count"], data["monthly"])
                shown = cells.locator(f'td[data-figure="{figure}"]').inner_text()
                assert shown == amount_text(amount, figures["currency"]), (month, figure)
    keep(page, "savings")


def test_the_what_if_page_shows_what_plan_what_if_prints(console: Console, page: Page) -> None:
    (curve,) = console.cli("plan", "--what-if", "--policy", "visio", "--format", "json")
    page.goto(console.url + "/api/console/policies/visio")
    page.get_by_role("link", name="What-if curve for visio").click()
    expect(page.locator("h1")).to_have_text("What-if for visio")
    assert page.locator("#plan-candidates").inner_text() == str(curve["plan_candidates"])
    assert cells(page, "#curve tbody th") == [p["label"] for p in curve["curve"]]
    shown = cells(page, "#curve [data-field=candidates]")
    assert shown == [str(p["candidates"]) for p in curve["curve"]]
    today = next(p for p in curve["curve"] if p["today"])
    assert today["candidates"] == curve["plan_candidates"]
    expect(page.locator("svg[role=img] polyline.candidates")).to_have_count(1)
    keep(page, "what-if")


def test_without_the_reader_role_a_page_says_which_role_is_needed(
    console: Console, reader: BrowserContext
) -> None:
    chromium = reader.browser
    assert chromium is not None
    without_role = console.issuer.bearer(roles=["Some.Other.Role"])
    for headers, status, heading in (
        (without_role, 403, "Not allowed"),
        ({}, 401, "Sign in first"),
    ):
        context = chromium.new_context(extra_http_headers=headers)
        page = context.new_page()
        response = page.goto(console.url + "/api/console/savings")
        assert response is not None and response.status == status
        expect(page.locator("h1")).to_have_text(heading)
        if status == 403:
            expect(page.locator("#error-message")).to_contain_text("Reclaim.Reader app role")
            keep(page, "forbidden")
        assert "EUR" not in page.content()  # nothing of the state is shown
        context.close()


def test_an_unknown_policy_run_or_user_is_a_clear_404_page(console: Console, page: Page) -> None:
    for path, message in (
        ("/api/console/policies/nope", "no policy named 'nope'"),
        ("/api/console/policies/sales/runs/nope", "policy 'sales' has no run 'nope'"),
        ("/api/console/policies/sales/user?user=%3Cscript%3E", "no history for '<script>'"),
    ):
        response = page.goto(console.url + path)
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text("Not found")
        expect(page.locator("#error-message")).to_contain_text(message)

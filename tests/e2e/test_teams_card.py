"""The Teams channel end to end: the expiry tick's reminder goes through the channel to the
Workflows fake over HTTPS, the card carries the user's UPN for the flow's 1:1 chat, its buttons
open that request's signed links, and a preview of the card (tests/support/card_preview.py, not
Teams' renderer) is drawn in headless Chromium: DOM text checked, screenshot saved
(examples/screenshots/ holds a copy for the README)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

from reclaim import usecases
from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.sqlite import SqliteStore
from reclaim.adapters.teams_channel import TeamsWorkflowChannel
from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.records import LedgerOutcome
from reclaim.settings import Settings
from tests.fakes.teams import FakeTeamsWorkflow
from tests.support.card_preview import preview_html
from tests.support.chromium import browser, screenshot
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage
from tests.support.messages import T0, carries_no_link, link_env, policy, read


def test_ask_and_reminder_reach_the_user_as_cards_whose_buttons_open_her_links(
    tmp_path: Path,
) -> None:
    visio = policy("teams", reminders=["2d"])
    ada = User(object_id="oid-ada", upn="ada@contoso.test", display_name="Ada Lovelace")
    with FakeTeamsWorkflow() as workflow:
        env = {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_CA_BUNDLE": str(workflow.ca_file),
            "RECLAIM_TEAMS_WEBHOOK_SECRET_NAME": "teams-workflow-url",
            variable_for("teams-workflow-url"): workflow.webhook_url,
            **link_env(),
        }
        teams = TeamsWorkflowChannel.from_settings(Settings.from_env(env), EnvironmentSecrets(env))
        adapters = MemoryAdapters(
            MemoryDirectory({"SF": [Member(ada)]}),
            MemoryUsage([UsageRow(ada.upn, 1.0)], T0),
            teams,  # type: ignore[arg-type]
        )
        ids = (f"req-{n}" for n in itertools.count())
        store = SqliteStore(tmp_path / "s.sqlite3")
        ctx = usecases.Context(
            store, MemoryQueue(), adapters, {visio.name: visio}, new_id=lambda: next(ids)
        )
        usecases.run_policy(ctx, visio, T0)
        (pending,) = store.requests()
        assert pending.deadline is not None
        assert usecases.expire_requests(ctx, pending.deadline - timedelta(days=1)).reminded == 1

        ask, reminder = workflow.cards
        assert {ask.recipient, reminder.recipient} == {"ada@contoso.test"}
        assert reminder.card["body"][0]["text"] == "Reminder: do you still need Microsoft Visio?"
        for posted in (ask, reminder):
            for action in posted.card["actions"]:
                link, _ = read(action["url"])
                assert (link.request_id, link.recipient, link.purpose) == (
                    pending.id,
                    "ada@contoso.test",
                    LinkPurpose.ANSWER,
                )
        outcomes = [e.outcome for e in store.ledger()]
        assert LedgerOutcome.ASKED in outcomes and LedgerOutcome.REMINDED in outcomes
        assert all(carries_no_link(e.detail) for e in store.ledger())

        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 600, "height": 520})
            page.set_content(preview_html(ask.card))
            text = page.inner_text("body")
            for expected in (
                "Do you still need Microsoft Visio?",
                "Hello Ada Lovelace",
                "What we found",
                "Keep my licence",
                "Release it",
                "Preview of the Adaptive Card",
            ):
                assert expected in text
            keep = page.locator("a", has_text="Keep my licence").get_attribute("href")
            assert keep == ask.card["actions"][0]["url"]
            screenshot(page, "teams-card-ask")

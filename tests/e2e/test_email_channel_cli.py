"""`python -m reclaim run` on an Entra ID policy whose campaign channel is `email`, against the
Graph fake: each unused seat's user gets one mail from the configured mailbox, the keep/release
links in its HTML are signed for that request and that recipient, `explain` shows the ask, and
the mail as the user sees it is rendered in headless Chromium (DOM text checked, screenshot
saved; examples/screenshots/ holds a copy for the README)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.answer_links import LinkPurpose, read_link
from reclaim.domain.lifecycle import RequestState
from tests.fakes import graph_mail
from tests.fakes.graph import FakeGraph
from tests.support.chromium import browser, screenshot
from tests.support.cli import reclaim
from tests.support.messages import LINK_SECRET, PUBLIC_URL, carries_no_link, html_links, link_env

SENDER = "licences@contoso.test"
POLICY = """policies:
  - name: visio
    application: Microsoft Visio
    mode: enforce
    ask_permission: true
    campaign: {{channel: email, respond_within: 7d, reminders: [2d]}}
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: csv, file: usage.csv, user_column: upn, usage_column: minutes, match_on: upn}}
    limits: {{max_removals_per_run: 5, max_percent_of_group: 100}}
"""
USAGE = {"ada": 0.0, "bo": 2.0, "cy": 600.0}


def test_a_run_mails_each_user_signed_links_that_open_for_that_request(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        graph_mail.enable(graph, graph.add_user(SENDER, display_name="Licences"))
        group = graph.add_group("Visio-Plan2")
        for name in USAGE:
            graph.add_member(
                group,
                graph.add_user(f"{name}@contoso.test", display_name=f"{name.title()} Lovelace"),
            )
        (tmp_path / "usage.csv").write_text(
            "upn,minutes\n" + "".join(f"{n}@contoso.test,{m}\n" for n, m in USAGE.items())
        )
        policies = tmp_path / "policies.yaml"
        policies.write_text(POLICY.format(group=group))
        state = tmp_path / "state.sqlite3"
        env = {
            **os.environ,
            **graph.settings_env(),
            **link_env(),
            "RECLAIM_MAIL_SENDER": SENDER,
            "RECLAIM_STATE_DB": str(state),
        }
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 0, run.stderr + run.stdout
        assert carries_no_link(run.stdout + run.stderr)

        mails = {mail.to[0]: mail for mail in graph.mail.sent}
        assert sorted(mails) == ["ada@contoso.test", "bo@contoso.test"]  # cy uses it
        assert {m.sender for m in mails.values()} == {SENDER}
        store = SqliteStore(state)
        requests = {r.user.upn: r for r in store.requests()}
        assert {r.state for r in requests.values()} == {RequestState.PENDING}
        ada = requests["ada@contoso.test"]
        keep, release = html_links(mails["ada@contoso.test"].content)[:2]
        for url, choice in ((keep, "keep"), (release, "release")):
            assert url.startswith(f"{PUBLIC_URL}/api/answer?t=") and url.endswith(choice)
            token = url.split("?t=")[1].split("&")[0]
            assert ada.deadline is not None
            link = read_link(token, LINK_SECRET.encode(), ada.created_at)
            assert (link.request_id, link.policy, link.recipient, link.purpose) == (
                ada.id,
                "visio",
                "ada@contoso.test",
                LinkPurpose.ANSWER,
            )
            # whole seconds, rounded up: never before the deadline
            assert timedelta(0) <= link.expires_at - ada.deadline < timedelta(seconds=1)

        explained = reclaim(
            env, "explain", "--policies", str(policies), "--policy", "visio", "--user", ada.user.upn
        )
        assert explained.returncode == 0, explained.stderr
        assert f"email: mail from {SENDER} accepted by Exchange" in explained.stdout
        assert carries_no_link(explained.stdout)

        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 760, "height": 900})
            page.set_content(mails["ada@contoso.test"].content)
            text = page.inner_text("body")
            for expected in (
                "Do you still need Microsoft Visio?",
                "Hello Ada Lovelace",
                "What we found",
                "Keep my licence",
                "Release it",
            ):
                assert expected in text
            assert page.locator("a", has_text="Keep my licence").get_attribute("href") == keep
            screenshot(page, "email-ask")

"""Justifications over the real SQLite store: any channel's answer is checked the same way, a
pulled "yes" without the reason a policy requires does not protect, and `explain` and
`report --answers` show the reason (the CSV with formulas neutralised)."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import Policy, PolicyError
from reclaim.domain.records import LedgerOutcome
from reclaim.ports import ChannelAnswer
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)
from tests.unit.test_cli import cli

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(4)]
USAGE = [UsageRow(u.upn, 1.0) for u in USERS]  # all four barely used it: all four are asked
REASON = '=HYPERLINK("https://evil.example") I design the rack layouts'

# The same policy as asking_policy() as far as explain and report need it: its name and keys.
POLICIES = """
policies:
  - name: salesforce
    application: Salesforce Lightning
    directory: {kind: csv, group: SF, file: members.csv}
    usage: {source: csv, file: usage.csv, match_on: upn, threshold: 5m}
    ask_permission: true
    campaign: {channel: webhook, url: "https://survey.example/ask"}
"""


def context(tmp_path: Path, policy: Policy, campaign: MemoryCampaign) -> usecases.Context:
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    ids = (f"id-{n:03d}" for n in itertools.count())
    return usecases.Context(
        SqliteStore(tmp_path / "state.sqlite3"),
        MemoryQueue(),
        MemoryAdapters(directory, MemoryUsage(USAGE, NOW), campaign),
        {policy.name: policy},
        new_id=lambda: next(ids),
    )


def pending(ctx: usecases.Context) -> dict[str, str]:
    return {r.user.upn: r.id for r in ctx.store.requests(states=[RequestState.PENDING])}


def test_explain_and_the_answers_csv_show_the_reason(tmp_path: Path) -> None:
    ctx = context(tmp_path, asking_policy(), MemoryCampaign())
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    asked = pending(ctx)
    later = NOW + timedelta(hours=2)
    usecases.record_answer(
        ctx,
        usecases.AnswerCommand(
            AnswerValue.YES, later, request_id=asked["u0@c.com"], justification=REASON
        ),
        later,
    )
    no = usecases.AnswerCommand(AnswerValue.NO, later, request_id=asked["u1@c.com"])
    usecases.record_answer(ctx, no, later)
    (tmp_path / "policies.yaml").write_text(POLICIES)
    env = {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}
    policies = str(tmp_path / "policies.yaml")

    code, out, err = cli(
        "explain", "--policies", policies, "--policy", "salesforce", "--user", "u0@c.com", env=env
    )
    assert code == 0, err
    assert f"ANSWERED: yes via webhook: {REASON} (request" in out

    code, out, err = cli("report", "--answers", "--format", "csv", env=env, now=later)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["user"], r["answer"], r["justification"]) for r in rows] == [
        ("u0@c.com", "yes", "'" + REASON),  # the spreadsheet shows it, never evaluates it
        ("u1@c.com", "no", ""),
    ]
    assert rows[0]["request_id"] == asked["u0@c.com"] and rows[0]["source"] == "webhook"

    code, out, _ = cli("report", "--answers", env=env, now=later)
    assert f"u0@c.com  {asked['u0@c.com']}  {later.isoformat()}  yes  webhook  {REASON}" in out
    code, out, _ = cli(
        "report", "--answers", "--since", "1h", env=env, now=later + timedelta(hours=2)
    )
    assert code == 0 and out == "no answers recorded\n"
    code, _, err = cli("report", "--answers", "--format", "json", env=env)
    assert code == 2 and "--answers: use --format table or --format csv" in err


@pytest.mark.parametrize(
    ("justification", "says"),
    [
        ("x" * 501, "justification: is 501 characters long (at most 500)"),
        ("two\nlines", "justification: holds a control character (U+000A)"),
    ],
)
def test_any_channel_s_bad_justification_is_refused_before_anything_is_written(
    tmp_path: Path, justification: str, says: str
) -> None:
    ctx = context(tmp_path, asking_policy(), MemoryCampaign())
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    before = (ctx.store.requests(), ctx.store.ledger())
    command = usecases.AnswerCommand(
        AnswerValue.YES,
        NOW,
        request_id=pending(ctx)["u0@c.com"],
        source="nexthink",
        justification=justification,
    )
    with pytest.raises(usecases.InputError, match=re.escape(says)):
        usecases.record_answer(ctx, command, NOW)
    assert (ctx.store.requests(), ctx.store.ledger()) == before
    assert ctx.store.answers("salesforce", "u0@c.com") == []


def test_a_pulled_yes_without_the_required_reason_does_not_protect(tmp_path: Path) -> None:
    campaign = MemoryCampaign()
    policy = make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={"channel": "nexthink", "require_justification_for_keep": True},
    )
    ctx = context(tmp_path, policy, campaign)
    usecases.run_policy(ctx, policy, NOW)
    asked = pending(ctx)
    campaign.pending_answers = [
        ChannelAnswer(AnswerValue.YES, NOW, user="u0@c.com"),
        ChannelAnswer(AnswerValue.NO, NOW, user="u1@c.com"),  # a "no" needs no reason
    ]
    usecases.expire_requests(ctx, NOW + timedelta(hours=1))
    usecases.expire_requests(ctx, NOW + timedelta(hours=2))  # pulled again: noted once

    assert ctx.store.get_request(asked["u0@c.com"]).state is RequestState.PENDING
    assert ctx.store.get_request(asked["u1@c.com"]).state is not RequestState.PENDING
    assert ctx.store.latest_yes("salesforce", "u0@c.com") is None  # no "recent yes" either
    notes = [
        e.detail
        for e in ctx.store.ledger()
        if e.outcome is LedgerOutcome.ANSWERED and e.request_id == asked["u0@c.com"]
    ]
    assert notes == [
        "not protecting: yes via nexthink without a justification "
        "(campaign.require_justification_for_keep)"
    ]
    assert usecases.report(ctx)[0].kept == 0  # a note, not a keep


def test_the_policy_key_is_true_or_false() -> None:
    assert make_policy().campaign.require_justification_for_keep is False
    with pytest.raises(PolicyError) as raised:
        make_policy(campaign={"require_justification_for_keep": "yes"})
    assert "require_justification_for_keep: expected true or false, got 'yes'" in str(raised.value)

"""appeal_within: read and checked in the policy, required settings in `validate`, the appeal on
the SQLite store (the answer page's tests run it on Table storage), and the appeal rate in the
report's JSON and table."""

from __future__ import annotations

import io
import itertools
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from reclaim import reporting, usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.cli import main
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.policy import PolicyError, policies_from_data
from reclaim.domain.records import LedgerOutcome
from reclaim.request_links import appeal_url
from reclaim.settings import Settings
from reclaim.usecases.answer_link import LinkProblem, follow_link, open_link
from tests.conftest import NOW, make_policy
from tests.functions.conftest import DictSecrets
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(4)]
KEY = "an appeal key of at least 32 bytes!!"
ENTRY = {
    "name": "visio",
    "application": "Visio",
    "directory": {"kind": "entra", "group": "0b6f5c2e-0000-4000-8000-000000000001"},
    "usage": {"source": "nexthink"},
}


def test_appeal_within_is_read_as_a_duration_and_is_optional() -> None:
    (plain,) = policies_from_data({"policies": [ENTRY]})
    assert plain.appeal_within is None
    (offering,) = policies_from_data({"policies": [{**ENTRY, "appeal_within": "14d"}]})
    assert offering.appeal_within == timedelta(days=14)


@pytest.mark.parametrize(
    ("value", "says"),
    [("0s", "longer than 0s"), ("400d", "at most 365d"), ("soon", "like 5m"), (14, "like 14d")],
)
def test_a_bad_appeal_within_is_refused_with_its_path(value: object, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policies_from_data({"policies": [{**ENTRY, "appeal_within": value}]})
    (problem,) = caught.value.problems
    assert problem.startswith("policies[0].appeal_within: ") and says in problem


def test_validate_requires_the_link_settings_for_a_policy_offering_appeals(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump({"policies": [{**ENTRY, "appeal_within": "14d"}]}))
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", "--policies", str(path)], env={}, out=out, err=err) == 2
    assert "visio offer appeals" in err.getvalue()
    assert "RECLAIM_LINK_SECRET_NAME, RECLAIM_PUBLIC_URL" in err.getvalue()
    env = {
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_LINK_SECRET_NAME": "link-key",
        "RECLAIM_PUBLIC_URL": "https://r.example",
    }
    assert main(["validate", "--policies", str(path)], env=env, out=out, err=err) == 0


def test_an_appeal_on_sqlite_restores_counts_as_yes_and_is_in_the_report(tmp_path: Path) -> None:
    policy = make_policy(mode="enforce", appeal_within="14d")
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    usage = MemoryUsage([UsageRow(u.upn, 1.0) for u in USERS], NOW)
    queue = MemoryQueue()
    ids = (f"id-{n:03d}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        queue,
        MemoryAdapters(directory, usage, MemoryCampaign()),
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    usecases.run_policy(ctx, policy, NOW)
    for message in queue.drain():
        usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)
    removed = ctx.store.requests(states=[RequestState.REMOVED])
    assert len(removed) == 4
    settings = Settings.from_env(
        {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_LINK_SECRET_NAME": "link",
            "RECLAIM_PUBLIC_URL": "https://r.example",
        }
    )
    secrets = DictSecrets({"link": KEY})
    url = appeal_url(settings, secrets, policy, removed[0])
    token = parse_qs(urlsplit(url).query)["t"][0]
    later = NOW + timedelta(days=2)

    view = open_link(ctx, token, KEY.encode(), later)
    assert view.closes_at == removed[0].updated_at + timedelta(days=14)
    result = follow_link(ctx, token, KEY.encode(), "restore", "", later)
    assert result.restored and directory.holds("SF", removed[0].user.label)
    entries = [e.outcome for e in ctx.store.ledger() if e.request_id == removed[0].id]
    assert entries[-2:] == [LedgerOutcome.RESTORED, LedgerOutcome.APPEALED]
    assert ctx.store.latest_yes(policy.name, removed[0].state_key) == later  # a "yes"
    with pytest.raises(LinkProblem) as replay:
        follow_link(ctx, token, KEY.encode(), "restore", "", later)
    assert replay.value.status == 410

    (line,) = usecases.report(ctx)
    assert (line.removed, line.appealed, line.appeal_rate) == (4, 1, 0.25)
    (row,) = json.loads(reporting.as_json([line]))
    assert (row["appealed"], row["appeal_rate"]) == (1, 0.25)
    assert "appeals salesforce: 1 of 4 removal(s) taken back by the user (25.0%)" in (
        reporting.as_table([line])
    )

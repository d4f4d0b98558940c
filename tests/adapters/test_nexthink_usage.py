"""NexthinkUsage against the HTTPS fake: the saved usage query, exported and streamed."""

from __future__ import annotations

import gc
import resource
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.adapters.nexthink.usage import NexthinkUsage
from reclaim.domain import guardrails
from reclaim.domain.model import CampaignResponse, Member, PolicyState, UsageRow, User
from reclaim.domain.policy import Policy, PolicyError, policies_from_data
from reclaim.domain.selection import index_usage, select
from reclaim.errors import ConfigurationError, SourceError
from tests.fakes.nexthink import FakeNexthink, secrets_for, settings_for

EXPORT = "POST /api/v1/nql/export"
FINISHED = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
NOW = datetime(2030, 5, 6, 7, 0, 0, tzinfo=UTC)
HEADERS = ["user.ad.email_address", "focus_time", "last_event"]
SEEN = "2030-05-06T06:30:00"  # last_event, the export's own clock (naive: read in usage.timezone)
SEEN_AT = datetime(2030, 5, 6, 6, 30, tzinfo=UTC)


def policy(**usage: Any) -> Policy:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "directory": {"kind": "entra", "group": "0b6f"},
        "usage": {"source": "nexthink", "query_id": "#license_reclamation_usage", **usage},
    }
    return policies_from_data({"policies": [data]})[0]


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        fake.export_polls_needed = 1
        yield fake


def add_usage_query(fake: FakeNexthink, headers: list[str], rows: Any) -> None:
    """The usage query as README saves it: it declares $application."""
    fake.add_query("#license_reclamation_usage", headers, rows, parameters=["application"])


def source(fake: FakeNexthink) -> NexthinkUsage:
    client = NexthinkClient.from_settings(
        settings_for(fake), secrets_for(fake), sleep=lambda _s: None, utcnow=lambda: FINISHED
    )
    return NexthinkUsage(client)


def test_usage_rows_come_from_the_export_in_minutes(nx: FakeNexthink) -> None:
    add_usage_query(
        nx,
        HEADERS,
        [
            ["Ada@Example.com ", 600_000, SEEN],  # 10 minutes in milliseconds
            ["bob@example.com", None, None],  # observed, no focus time
            ["", 5, SEEN],  # no user: cannot match anyone
            ["eve@example.com", 0, SEEN],
        ],
    )
    export = source(nx).usage(policy(unit="milliseconds"), NOW)
    assert export.observed_at is None  # not when the export finished: the rows carry the clock
    assert list(export.rows) == [
        UsageRow("ada@example.com", 10.0, at=SEEN_AT),
        UsageRow("bob@example.com", None),
        UsageRow("eve@example.com", 0.0, at=SEEN_AT),
    ]
    assert nx.count(EXPORT) == 1
    assert nx.count("POST /api/v2/nql/execute") == 0


@pytest.mark.parametrize(
    ("unit", "minutes"), [("seconds", 2.0), ("minutes", 120.0), ("hours", 7200.0)]
)
def test_units_are_converted_to_minutes(nx: FakeNexthink, unit: str, minutes: float) -> None:
    add_usage_query(nx, HEADERS, [["a@example.com", 120, SEEN]])
    rows = list(source(nx).usage(policy(unit=unit), NOW).rows)
    assert rows == [UsageRow("a@example.com", minutes, at=SEEN_AT)]


def test_only_the_parameters_the_query_declares_are_sent(nx: FakeNexthink) -> None:
    # README's query declares $application only (`during past` takes no parameter): sending
    # `lookback` as well is a parameter the saved query does not declare.
    add_usage_query(nx, HEADERS, [])
    list(source(nx).usage(policy(lookback="30d"), NOW).rows)
    assert nx.bodies[EXPORT][0]["parameters"] == {"application": "Microsoft Visio"}


def test_declared_parameters_are_filled_from_the_policy(nx: FakeNexthink) -> None:
    nx.add_query("#license_reclamation_usage", HEADERS, [], parameters=["lookback", "department"])
    usage = policy(
        lookback="30d",
        query_parameters=["lookback", "department"],
        parameters={"department": "Sales"},
    )
    list(source(nx).usage(usage, NOW).rows)
    assert nx.bodies[EXPORT][0]["parameters"] == {"lookback": "30d", "department": "Sales"}


def test_the_fake_refuses_a_parameter_the_query_does_not_declare(nx: FakeNexthink) -> None:
    add_usage_query(nx, HEADERS, [])
    usage = policy(query_parameters=["application", "region"], parameters={"region": "EU"})
    with pytest.raises(ConfigurationError, match=r"400.*\['application'\]"):
        list(source(nx).usage(usage, NOW).rows)


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ({"parameters": {"department": "Sales"}}, "usage.parameters.department: the saved query"),
        ({"query_parameters": ["application", "region"]}, "region needs a value"),
    ],
)
def test_parameters_the_query_does_not_declare_are_refused_by_validation(
    usage: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        policy(**usage)


def test_columns_are_named_by_the_policy(nx: FakeNexthink) -> None:
    add_usage_query(nx, ["user.sid", "minutes", "seen"], [["S-1-5-21-7", 3, SEEN]])
    named = policy(user_column="user.sid", usage_column="minutes", timestamp_column="seen")
    rows = source(nx).usage(named, NOW).rows
    assert list(rows) == [UsageRow("s-1-5-21-7", 3.0, at=SEEN_AT)]


def test_a_missing_column_names_the_columns_that_are_there(nx: FakeNexthink) -> None:
    add_usage_query(nx, ["user.name", "focus_time"], [["ada", 1]])
    with pytest.raises(SourceError) as caught:
        list(source(nx).usage(policy(), NOW).rows)
    message = str(caught.value)
    assert "user.ad.email_address" in message
    assert "'user.name'" in message and "'focus_time'" in message


def test_a_value_that_is_not_a_number_fails_closed_naming_row_and_column(nx: FakeNexthink) -> None:
    add_usage_query(
        nx,
        HEADERS,
        [["a@example.com", 1, SEEN], ["b@example.com", "5 min", SEEN], ["c@example.com", 2, SEEN]],
    )
    rows = iter(source(nx).usage(policy(), NOW).rows)
    assert next(rows) == UsageRow("a@example.com", 1.0, at=SEEN_AT)
    with pytest.raises(SourceError) as caught:
        next(rows)
    assert "line 3" in str(caught.value) and "focus_time" in str(caught.value)


def test_campaign_answers_joined_into_the_usage_query_are_read(nx: FakeNexthink) -> None:
    add_usage_query(
        nx,
        [*HEADERS, "answer", "answered_at"],
        [
            ["a@example.com", 1, SEEN, "yes", "2030-05-01T10:00:00"],
            ["b@example.com", 2, SEEN, None, None],
        ],
    )
    rows = source(nx).usage(policy(answer_column="answer", answered_at_column="answered_at"), NOW)
    assert list(rows.rows) == [
        UsageRow(
            "a@example.com",
            1.0,
            CampaignResponse("yes", datetime(2030, 5, 1, 10, tzinfo=UTC)),
            SEEN_AT,
        ),
        UsageRow("b@example.com", 2.0, None, SEEN_AT),
    ]


def resident_bytes() -> int:
    """This process's resident memory now (Linux). tracemalloc would be exact but slows this
    loop twelvefold; holding the rows would add hundreds of MB here, far above the bound."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_a_million_row_export_is_streamed_in_bounded_memory(nx: FakeNexthink) -> None:
    count = 1_000_000
    nx.add_generated_query(
        "#license_reclamation_usage",
        HEADERS,
        count,
        lambda i: (f"user{i}@example.com", (i * 7919) % 3_600_000, SEEN),
        parameters=["application"],
    )
    gc.collect()
    baseline = resident_bytes()
    peak = baseline
    export = source(nx).usage(policy(unit="milliseconds"), NOW)
    rows = 0
    total = 0.0
    for row in export.rows:
        rows += 1
        total += row.amount or 0.0
        if rows % 20_000 == 0:
            peak = max(peak, resident_bytes())
    assert rows == count
    assert total == pytest.approx(sum((i * 7919) % 3_600_000 for i in range(count)) / 60_000)
    growth = peak - baseline
    # memory is a count this test can hold; its speed is bench/selection_scale's to measure
    assert growth < 50 * 1024 * 1024, f"resident memory grew {growth / 1e6:.1f} MB while streaming"


def test_an_export_of_collectors_that_stopped_weeks_ago_is_stale(nx: FakeNexthink) -> None:
    """The export completes now, but its newest event is three weeks old: the data is stale."""
    weeks_ago = (NOW - timedelta(days=21)).replace(tzinfo=None).isoformat()
    rows = [[f"u{i}@example.com", 30, weeks_ago] for i in range(4)]
    add_usage_query(nx, HEADERS, rows)
    checked = policy()
    export = source(nx).usage(checked, NOW)
    members = [Member(User(mail=f"u{i}@example.com")) for i in range(4)]
    usage = index_usage(
        export.rows, {m.user.mail for m in members}, export.observed_at, clock=export.clock
    )
    decisions = select(members, usage, PolicyState(), checked, NOW)
    halt = guardrails.check(decisions, usage, checked, NOW, kill_switch=False)
    assert usage.observed_at == NOW - timedelta(days=21)
    assert halt is not None and halt.check == "stale_usage"
    assert "newest last_event in the export of #license_reclamation_usage" in halt.reason

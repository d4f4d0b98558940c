"""NexthinkCampaign against the HTTPS fake: triggering the campaign, and its answers through NQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reclaim.adapters.http_retry import RetryPolicy
from reclaim.adapters.nexthink.campaigns import (
    CAMPAIGN_APPLICATION_PARAMETER,
    AnswerColumns,
    NexthinkCampaign,
)
from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import AnswerValue, User
from reclaim.domain.policy import Policy, policies_from_data
from reclaim.errors import ConfigurationError, SourceError, TransientError
from reclaim.ports import ChannelAnswer
from tests.fakes.nexthink import (
    ANSWERS_HEADERS,
    ANSWERS_QUERY,
    FakeNexthink,
    secrets_for,
    settings_for,
)

TRIGGER = "POST /api/v1/euf/campaign/trigger"
ANSWERS_PARAMETERS = ["campaign_id", "application"]  # what README's answers query declares
T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def policy(respond_within: str = "7d") -> Policy:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "directory": {"kind": "entra", "group": "0b6f"},
        "usage": {"source": "nexthink"},
        "ask_permission": True,
        "campaign": {
            "channel": "nexthink",
            "id": "#license_reclamation_request",
            "respond_within": respond_within,
        },
    }
    return policies_from_data({"policies": [data]})[0]


def request(request_id: str, sid: str) -> Request:
    return Request(
        id=request_id,
        policy="visio",
        group="0b6f",
        user=User(upn=f"{request_id}@example.com", sid=sid),
        state_key=f"{request_id}@example.com",
        run_id="run-1",
        state=RequestState.PENDING,
        created_at=T0,
        updated_at=T0,
        deadline=T0 + timedelta(days=7),
    )


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        yield fake


def campaign(fake: FakeNexthink, **options: Any) -> NexthinkCampaign:
    settings = settings_for(fake)
    client = NexthinkClient.from_settings(
        settings, secrets_for(fake), sleep=lambda _s: None, **options
    )
    return NexthinkCampaign(client, settings.nexthink_answers_query_id)


def test_ask_triggers_the_campaign_and_honours_per_user_results(nx: FakeNexthink) -> None:
    nx.unknown_sids.add("S-1-5-21-404")
    requests = [
        request("r1", "S-1-5-21-1"),
        request("r2", ""),
        request("r3", "S-1-5-21-404"),
        request("r4", "s-1-5-21-1"),  # the same user again, spelled in lower case
        request("r5", "S-1-5-21-5"),
    ]
    result = campaign(nx).ask(policy(), requests)
    assert set(result.asked) == {"r1", "r5"}
    assert {nx.campaign_requests[result.asked[r]].sid for r in ("r1", "r5")} == {
        "S-1-5-21-1",
        "S-1-5-21-5",
    }
    assert result.not_asked == {
        "r2": "no SID known",
        "r3": "User not found",
        "r4": "same SID as request r1",
    }
    assert nx.bodies[TRIGGER] == [
        {
            "campaignNqlId": "#license_reclamation_request",
            "userSid": ["S-1-5-21-1", "S-1-5-21-404", "S-1-5-21-5"],
            "expiresInMinutes": 7 * 24 * 60,
            "parameters": {CAMPAIGN_APPLICATION_PARAMETER: "Microsoft Visio"},
        }
    ]


def test_nobody_with_a_sid_means_no_call(nx: FakeNexthink) -> None:
    result = campaign(nx).ask(policy(), [request("r1", "")])
    assert result.asked == {} and result.not_asked == {"r1": "no SID known"}
    assert nx.count(TRIGGER) == 0


@pytest.mark.parametrize(("within", "minutes"), [("30s", 1), ("90m", 90), ("800d", 525_600)])
def test_expiry_is_clamped_to_what_nexthink_accepts(
    nx: FakeNexthink, within: str, minutes: int
) -> None:
    campaign(nx).ask(policy(within), [request("r1", "S-1-5-21-1")])
    assert nx.bodies[TRIGGER][0]["expiresInMinutes"] == minutes


def test_ten_thousand_users_per_trigger(nx: FakeNexthink) -> None:
    requests = [request(f"r{i}", f"S-1-5-21-{i}") for i in range(10_001)]
    result = campaign(nx).ask(policy(), requests)
    assert len(result.asked) == 10_001
    assert [len(b["userSid"]) for b in nx.bodies[TRIGGER]] == [10_000, 1]


def test_a_later_batch_that_fails_leaves_the_asked_ones_recorded(nx: FakeNexthink) -> None:
    nx.fail("/api/v1/euf/campaign/trigger", 400, skip=1, body={"code": "X", "message": "boom"})
    requests = [request(f"r{i}", f"S-1-5-21-{i}") for i in range(10_002)]
    result = campaign(nx).ask(policy(), requests)
    assert len(result.asked) == 10_000
    assert set(result.not_asked) == {"r10000", "r10001"}
    assert "boom" in result.not_asked["r10000"]


def test_a_rejected_trigger_is_a_configuration_error_with_nexthinks_message(
    nx: FakeNexthink,
) -> None:
    nx.campaigns.clear()
    with pytest.raises(ConfigurationError, match="not found or not published"):
        campaign(nx).ask(policy(), [request("r1", "S-1-5-21-1")])


def test_an_unknown_campaigns_400_gets_the_hint_a_404_would(nx: FakeNexthink) -> None:
    # Nexthink answers an unknown or unusable campaign with 400: its OpenAPI lists no 404 (the
    # fake refuses to send one), so the hint cannot wait for a 404.
    nx.campaigns.clear()
    with pytest.raises(ConfigurationError) as refused:
        campaign(nx).ask(policy(), [request("r1", "S-1-5-21-1")])
    message = str(refused.value)
    assert "check that campaign #license_reclamation_request exists, is published" in message
    assert "has API ticked on its General tab" in message
    assert "not found or not published" in message  # and what Nexthink said


def test_campaign_parameters_must_match_the_campaigns(nx: FakeNexthink) -> None:
    nx.campaigns["#license_reclamation_request"] = {"app_name"}
    with pytest.raises(ConfigurationError, match="do not match"):
        campaign(nx).ask(policy(), [request("r1", "S-1-5-21-1")])


def test_429_on_trigger_is_retried_after_retry_after(nx: FakeNexthink) -> None:
    nx.fail("/api/v1/euf/campaign/trigger", 429, retry_after="0")
    result = campaign(nx).ask(policy(), [request("r1", "S-1-5-21-1")])
    assert set(result.asked) == {"r1"}
    assert nx.count(TRIGGER) == 2
    assert len(nx.campaign_requests) == 1


def test_a_trigger_that_stays_unavailable_is_transient(nx: FakeNexthink) -> None:
    nx.fail("/api/v1/euf/campaign/trigger", 503, times=10)
    with pytest.raises(TransientError):
        campaign(nx).ask(policy(), [request("r1", "S-1-5-21-1")])
    assert nx.count(TRIGGER) == 5


def test_a_trigger_that_times_out_is_not_sent_twice(nx: FakeNexthink) -> None:
    nx.slow("/api/v1/euf/campaign/trigger", 0.6)
    with pytest.raises(TransientError, match="outcome is not known"):
        campaign(nx, timeout=(5.0, 0.2)).ask(policy(), [request("r1", "S-1-5-21-1")])
    assert nx.count(TRIGGER) == 1


# ---- answers -------------------------------------------------------------------------------------


def test_answers_are_read_by_user_sid_since_a_time(nx: FakeNexthink) -> None:
    channel = campaign(nx)
    requests = [request(f"r{i}", f"S-1-5-21-{i}") for i in range(5)]
    asked = channel.ask(policy(), requests).asked
    nx.answer(asked["r0"], "Yes", T0 + timedelta(hours=1))
    nx.answer(asked["r1"], "no", T0 + timedelta(hours=2))
    nx.answer(asked["r2"], "maybe", T0 + timedelta(hours=3))  # not yes/no: never consent
    nx.answer(asked["r3"], "no", T0 - timedelta(days=1))  # before `since`
    answers = list(channel.answers(policy(), since=T0))
    assert answers == [
        ChannelAnswer(AnswerValue.YES, T0 + timedelta(hours=1), user="S-1-5-21-0"),
        ChannelAnswer(AnswerValue.NO, T0 + timedelta(hours=2), user="S-1-5-21-1"),
    ]
    assert nx.bodies["POST /api/v2/nql/execute"][-1] == {
        "queryId": ANSWERS_QUERY,
        "parameters": {
            "campaign_id": "#license_reclamation_request",
            "application": "Microsoft Visio",
        },
    }


def test_answers_of_other_applications_are_not_returned(nx: FakeNexthink) -> None:
    channel = campaign(nx)
    asked = channel.ask(policy(), [request("r1", "S-1-5-21-1")]).asked
    nx.answer(asked["r1"], "no", T0)
    other = replace(policy(), application="Adobe Acrobat")
    assert list(channel.answers(other, since=T0)) == []


def test_more_than_a_thousand_answers_come_through_the_export(nx: FakeNexthink) -> None:
    nx.export_polls_needed = 0
    channel = campaign(nx)
    requests = [request(f"r{i}", f"S-1-5-21-{i}") for i in range(1200)]
    asked = channel.ask(policy(), requests).asked
    for i, nexthink_id in enumerate(asked.values()):
        nx.answer(nexthink_id, "yes" if i % 2 else "no", T0 + timedelta(minutes=i))
    answers = list(channel.answers(policy(), since=T0))
    assert len(answers) == 1200
    assert answers[-1] == ChannelAnswer(
        AnswerValue.YES, T0 + timedelta(minutes=1199), user="S-1-5-21-1199"
    )
    assert nx.count("POST /api/v1/nql/export") == 1


def test_answers_query_without_the_expected_columns_is_a_source_error(nx: FakeNexthink) -> None:
    nx.add_query(ANSWERS_QUERY, ["user.name", "answer"], [["ada", "yes"]], ANSWERS_PARAMETERS)
    with pytest.raises(SourceError) as caught:
        list(campaign(nx).answers(policy(), since=T0))
    assert "'user.sid'" in str(caught.value) and "'user.name'" in str(caught.value)


def test_answer_columns_can_be_renamed(nx: FakeNexthink) -> None:
    nx.add_query(
        ANSWERS_QUERY,
        ["sid", "label", "at"],
        [["S-1-5-21-9", "NO", "2030-03-02T08:00:00Z"]],
        ANSWERS_PARAMETERS,
    )
    settings = settings_for(nx)
    client = NexthinkClient.from_settings(settings, secrets_for(nx), retry=RetryPolicy())
    channel = NexthinkCampaign(client, ANSWERS_QUERY, AnswerColumns("sid", "label", "at"))
    assert list(channel.answers(policy(), since=T0)) == [
        ChannelAnswer(AnswerValue.NO, datetime(2030, 3, 2, 8, tzinfo=UTC), user="S-1-5-21-9")
    ]


def test_a_bad_answer_time_is_a_source_error(nx: FakeNexthink) -> None:
    columns = AnswerColumns()
    nx.add_query(
        ANSWERS_QUERY,
        [columns.user_sid, columns.answer, columns.answered_at],
        [["S-1-5-21-9", "yes", "last tuesday"]],
        ANSWERS_PARAMETERS,
    )
    with pytest.raises(SourceError, match="row 1"):
        list(campaign(nx).answers(policy(), since=T0))


def test_exported_answer_times_without_an_offset_are_read_in_the_configured_zone() -> None:
    # 1,000 rows or more: the answers come from an export, which x-utc-times does not cover.
    answered = datetime(2030, 3, 2, 8, 0, tzinfo=UTC)
    with FakeNexthink() as fake:
        fake.export_polls_needed = 0
        fake.export_zone = ZoneInfo("Europe/Zurich")  # writes 09:00 for 08:00 UTC
        rows = [[f"S-1-5-21-{n}", "yes", answered, "answered"] for n in range(1000)]
        fake.add_query(ANSWERS_QUERY, ANSWERS_HEADERS, rows, ANSWERS_PARAMETERS)
        settings = settings_for(fake, RECLAIM_NEXTHINK_TIMEZONE="Europe/Zurich")
        client = NexthinkClient.from_settings(settings, secrets_for(fake), sleep=lambda _s: None)
        answers = list(NexthinkCampaign(client, ANSWERS_QUERY).answers(policy(), since=T0))
        assert fake.count("POST /api/v1/nql/export") == 1
    assert len(answers) == 1000
    assert {a.answered_at for a in answers} == {answered}


def test_executed_answer_times_are_utc_as_asked_whatever_the_zone(nx: FakeNexthink) -> None:
    answered = datetime(2030, 3, 2, 8, 0, tzinfo=UTC)
    nx.export_zone = ZoneInfo("Europe/Zurich")
    nx.add_query(
        ANSWERS_QUERY, ANSWERS_HEADERS, [["S-1", "no", answered, "answered"]], ANSWERS_PARAMETERS
    )
    settings = settings_for(nx, RECLAIM_NEXTHINK_TIMEZONE="Europe/Zurich")
    client = NexthinkClient.from_settings(settings, secrets_for(nx))
    answers = list(NexthinkCampaign(client, ANSWERS_QUERY).answers(policy(), since=T0))
    assert [a.answered_at for a in answers] == [answered]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "CET+1", "../etc/passwd"])
def test_the_export_zone_setting_must_be_an_iana_name(nx: FakeNexthink, zone: str) -> None:
    with pytest.raises(ConfigurationError, match=r"RECLAIM_NEXTHINK_TIMEZONE.*IANA"):
        settings_for(nx, RECLAIM_NEXTHINK_TIMEZONE=zone)


def test_from_settings_uses_the_answers_query_setting(nx: FakeNexthink) -> None:
    settings = settings_for(nx, RECLAIM_NEXTHINK_ANSWERS_QUERY_ID="#my_answers")
    assert (
        NexthinkCampaign.from_settings(settings, secrets_for(nx)).answers_query_id == "#my_answers"
    )

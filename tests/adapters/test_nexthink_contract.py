"""The Nexthink fake held to Nexthink's OpenAPI files (tests/contracts/nexthink): it refuses the
requests they do not allow, and an answer they do not allow fails the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from reclaim.adapters.http_retry import RetryPolicy
from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.errors import TransientError
from tests.fakes.nexthink import ANSWERS_QUERY, FakeNexthink, secrets_for, settings_for
from tests.fakes.nexthink_contract import CONTRACTS, SPEC_FILES, NexthinkContract


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        fake.export_polls_needed = 0
        fake.add_query("#apps", ["user.sid", "focus_time"], [["S-1", 3]], ["application"])
        yield fake


def client(fake: FakeNexthink) -> NexthinkClient:
    return NexthinkClient.from_settings(
        settings_for(fake), secrets_for(fake), retry=RetryPolicy(attempts=1)
    )


def send(fake: FakeNexthink, method: str, path: str, body: Any = None) -> requests.Response:
    """A request as any client could send it, with a valid token."""
    return requests.request(
        method,
        fake.url + path,
        json=body,
        headers={"Authorization": f"Bearer {client(fake).token()}"},
        verify=str(fake.ca_file),
        timeout=10,
    )


def test_the_copies_are_nexthinks_three_openapi_files() -> None:
    titles = {}
    for name in SPEC_FILES:
        document = json.loads((CONTRACTS / name).read_text(encoding="utf-8"))
        assert document["openapi"].startswith("3.0")
        titles[name] = (document["info"]["title"], document["info"]["version"])
        assert name in (CONTRACTS / "README.md").read_text(encoding="utf-8")
    assert sorted(titles.values()) == [
        ("Campaigns API", "1.0.0"),
        ("NQL API", "1.2.0"),
        ("Remote Actions API", "1.0.0"),
    ]
    paths = {(o.method, o.template) for o in NexthinkContract().operations}
    assert ("GET", "/api/v1/act/remote-action/details") in paths


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("/api/v2/nql/execute", {"queryId": "apps"}, "queryId: 'apps' does not match"),
        ("/api/v2/nql/execute", {"queryId": "#apps", "parameters": {"application": 5}}, "string"),
        ("/api/v1/nql/export", {"queryId": "#apps", "compression": "BZIP2"}, "compression"),
        ("/api/v1/nql/export", None, "a request body is required"),
        (
            "/api/v1/euf/campaign/trigger",
            {"campaignNqlId": "#license_reclamation_request", "userSid": ["S-1"]},
            "'expiresInMinutes' is a required property",
        ),
        (
            "/api/v1/euf/campaign/trigger",
            {
                "campaignNqlId": "#license_reclamation_request",
                "userSid": [],
                "expiresInMinutes": 600_000,
            },
            "userSid: [] should be non-empty",
        ),
        (
            "/api/v1/act/execute",
            {"remoteActionId": "#invoke_remove_user_from_ad_group", "devices": ["d"], "params": {}},
            None,  # valid in shape: refused for its inputs, by the fake's own rule
        ),
        (
            "/api/v1/act/execute",
            {
                "remoteActionId": "#invoke_remove_user_from_ad_group",
                "devices": ["d"],
                "expiresInMinutes": 30,
            },
            "expiresInMinutes: 30 is less than the minimum of 60",
        ),
        (
            "/api/v1/act/execute",
            {"remoteActionId": "#x", "devices": ["d"], "triggerInfo": {"reason": "r" * 501}},
            "triggerInfo/reason",
        ),
    ],
)
def test_a_request_the_files_do_not_allow_gets_400(
    nx: FakeNexthink, path: str, body: Any, problem: str | None
) -> None:
    answer = send(nx, "POST", path, body)
    assert answer.status_code == 400
    if problem is not None:
        assert problem in answer.json()["message"]
    assert nx.contract_violations == []


def test_the_details_need_the_nql_id(nx: FakeNexthink) -> None:
    answer = send(nx, "GET", "/api/v1/act/remote-action/details")
    assert answer.status_code == 400
    assert "query parameter 'nql-id' is required" in answer.json()["message"]


def test_every_answer_reclaim_reads_follows_the_files(nx: FakeNexthink) -> None:
    c = client(nx)
    assert c.execute("#apps", {"application": "Visio"})
    assert list(c.export("#apps", {"application": "Visio"}).dict_rows())
    assert (
        send(
            nx,
            "POST",
            "/api/v1/nql/execute",
            {"queryId": "#apps", "parameters": {"application": "Visio"}},
        ).status_code
        == 200
    )
    trigger = {
        "campaignNqlId": "#license_reclamation_request",
        "userSid": ["S-1", "S-1"],
        "expiresInMinutes": 60,
        "parameters": {"application_name": "Visio"},
    }
    assert send(nx, "POST", "/api/v1/euf/campaign/trigger", trigger).status_code == 200
    answers = {"campaign_id": "#license_reclamation_request", "application": "Visio"}
    assert c.execute(ANSWERS_QUERY, answers)
    details = "/api/v1/act/remote-action/details?nql-id=%23invoke_remove_user_from_ad_group"
    assert send(nx, "GET", details).status_code == 200
    assert send(nx, "GET", details.replace("invoke", "no_such")).status_code == 404
    nx.forbid("/api/v1/act/")
    assert send(nx, "GET", details).json()["code"] == "FORBIDDEN"  # a string there, not NQL's int
    assert nx.contract_violations == []


def test_an_answer_the_files_do_not_allow_fails_the_test() -> None:
    fake = FakeNexthink()
    with pytest.raises(AssertionError) as caught, fake:
        # A campaign 400 must carry TriggerErrorResponse: code and message.
        fake.fail("/api/v1/euf/campaign/trigger", 400, body={"message": "no code"})
        trigger = {
            "campaignNqlId": "#license_reclamation_request",
            "userSid": ["S-1"],
            "expiresInMinutes": 60,
        }
        answer = send(fake, "POST", "/api/v1/euf/campaign/trigger", trigger)
        assert answer.status_code == 500
        assert "fake broke the contract" in answer.json()["message"]
    assert "POST /api/v1/euf/campaign/trigger" in str(caught.value)
    assert "'code' is a required property" in str(caught.value)


def test_a_gateways_503_may_answer_any_operation(nx: FakeNexthink) -> None:
    nx.fail("/api/v1/euf/campaign/trigger", 503)
    trigger = {"campaignNqlId": "#license_reclamation_request", "userSid": ["S-1"]}
    assert send(nx, "POST", "/api/v1/euf/campaign/trigger", trigger).status_code == 503
    assert nx.contract_violations == []


def test_a_status_the_files_do_not_list_is_a_violation() -> None:
    fake = FakeNexthink()
    with pytest.raises(AssertionError, match=r"status 404 is not one of"), fake:
        fake.fail("/api/v1/act/execute", 404)
        with pytest.raises(TransientError):  # the 500 the fake sends instead
            client(fake).call("POST", "/api/v1/act/execute", what="act", body={})

"""The campaign webhook through the azure-functions API: answers recorded idempotently, and every
rejected request answered with the right status and error body, changing nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import LedgerOutcome
from tests.functions.conftest import SECRET, SECRET_NAME, World
from tests.support.functions import call_http, call_timer, json_body, signed

pytestmark = pytest.mark.azurite

NAME = "campaign_responses"


def post(world: World, payload: Any, *, raw: bytes | None = None, **headers: str):
    body = raw if raw is not None else json.dumps(payload).encode()
    return call_http(NAME, body, headers=signed(SECRET, body, world.clock(), **headers))


@pytest.fixture
def asked(world: World) -> dict[str, str]:
    """The idle users u0..u3 were asked; upn -> request id."""
    outcome = world.run()
    assert outcome.run.asked == 4
    return {r.user.upn: r.id for r in world.ctx.store.requests(states=[RequestState.PENDING])}


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = json_body(response)["error"]
    assert error["code"] == code and error["message"]
    return error


# ---- accepted --------------------------------------------------------------------------------


def test_a_yes_by_request_id_keeps_the_licence(world: World, asked: dict[str, str]) -> None:
    response = post(world, {"request_id": asked["u0@c.com"], "answer": "yes"})

    assert response.status_code == 202
    assert json_body(response) == {
        "kept": 1,
        "queued": 0,
        "cancelled": 0,
        "duplicate": 0,
        "recorded": 0,
        "escalated": 0,
    }
    assert world.ctx.store.get_request(asked["u0@c.com"]).state is RequestState.KEPT
    assert world.message_count() == 0


def test_a_no_by_policy_and_user_queues_the_removal_for_the_next_tick(
    world: World, asked: dict[str, str]
) -> None:
    response = post(world, {"policy": "salesforce", "user": "U1@C.COM", "answer": "No"})

    assert json_body(response)["queued"] == 1
    # Due: the next expiry tick re-decides it on fresh data, then releases it.
    assert world.ctx.store.get_request(asked["u1@c.com"]).state is RequestState.DUE
    assert world.message_count() == 0
    call_timer("expiry")
    assert world.ctx.store.get_request(asked["u1@c.com"]).state is RequestState.QUEUED
    assert world.message_count() == 1


def test_a_list_is_counted_and_a_repeated_answer_is_a_duplicate(
    world: World, asked: dict[str, str]
) -> None:
    answers = [
        {"request_id": asked["u0@c.com"], "answer": "yes", "answered_at": "2026-11-28T05:00:00Z"},
        {"policy": "salesforce", "user": "S-1-5-21-2", "answer": "no", "comment": "ignored"},
        {"request_id": asked["u0@c.com"], "answer": "YES"},
    ]
    first = post(world, answers)
    again = post(world, answers)

    assert json_body(first) == {
        "kept": 1,
        "queued": 1,
        "cancelled": 0,
        "duplicate": 1,
        "recorded": 0,
        "escalated": 0,
    }
    assert json_body(again) == {
        "kept": 0,
        "queued": 0,
        "cancelled": 0,
        "duplicate": 3,
        "recorded": 0,
        "escalated": 0,
    }
    answered = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.ANSWERED]
    assert len(answered) == 2
    assert (
        world.ctx.store.latest_yes("salesforce", "u0@c.com").isoformat()
        == "2026-11-28T05:00:00+00:00"
    )


def test_yes_after_no_cancels_the_queued_removal(world: World, asked: dict[str, str]) -> None:
    post(world, {"request_id": asked["u3@c.com"], "answer": "no"})
    response = post(world, {"request_id": asked["u3@c.com"], "answer": "yes"})

    assert json_body(response)["cancelled"] == 1
    assert world.ctx.store.get_request(asked["u3@c.com"]).state is RequestState.CANCELLED


def test_a_replay_within_the_tolerance_is_a_harmless_duplicate(
    world: World, asked: dict[str, str]
) -> None:
    body = json.dumps({"request_id": asked["u0@c.com"], "answer": "yes"}).encode()
    headers = signed(SECRET, body, world.clock())
    assert call_http(NAME, body, headers=headers).status_code == 202
    world.clock.advance(timedelta(minutes=4))
    assert json_body(call_http(NAME, body, headers=headers))["duplicate"] == 1


# ---- rejected, with nothing changed ------------------------------------------------------------


@pytest.fixture
def unchanged(world: World, asked: dict[str, str]):
    """Asserts after the test that the store and the queue are as they were before it."""
    before = world.state()
    yield asked
    assert world.state() == before


def valid_body(asked: dict[str, str]) -> bytes:
    return json.dumps({"request_id": asked["u0@c.com"], "answer": "no"}).encode()


def test_a_missing_signature_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    headers = signed(SECRET, body, world.clock())
    del headers["X-Reclaim-Signature"]
    assert (
        "X-Reclaim-Signature"
        in assert_error(call_http(NAME, body, headers=headers), 401, "invalid_signature")["message"]
    )


def test_a_missing_timestamp_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    headers = signed(SECRET, body, world.clock())
    del headers["X-Reclaim-Timestamp"]
    assert_error(call_http(NAME, body, headers=headers), 401, "invalid_signature")


def test_a_signature_with_another_secret_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    response = call_http(NAME, body, headers=signed("not-the-secret", body, world.clock()))
    assert "does not match" in assert_error(response, 401, "invalid_signature")["message"]


def test_a_body_changed_after_signing_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    headers = signed(SECRET, body, world.clock())
    tampered = body.replace(b'"no"', b'"yes"')
    assert_error(call_http(NAME, tampered, headers=headers), 401, "invalid_signature")


def test_an_old_timestamp_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    response = call_http(
        NAME, body, headers=signed(SECRET, body, world.clock() - timedelta(minutes=6))
    )
    assert "stale or replayed" in assert_error(response, 401, "invalid_signature")["message"]


def test_a_replay_outside_the_tolerance_is_401(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    headers = signed(SECRET, body, world.clock())
    world.clock.advance(timedelta(minutes=10))  # the captured request, sent again later
    assert_error(call_http(NAME, body, headers=headers), 401, "invalid_signature")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_by_type_is_415(
    world: World, unchanged: dict[str, str], content_type: str
) -> None:
    body = valid_body(unchanged)
    response = post(world, None, raw=body, **{"Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")


def test_a_huge_body_is_413_by_its_declared_length(world: World, unchanged: dict[str, str]) -> None:
    body = valid_body(unchanged)
    response = post(world, None, raw=body, **{"Content-Length": str(10**9)})
    assert_error(response, 413, "payload_too_large")


def test_a_huge_body_is_413_even_when_its_length_header_lies(
    world: World, unchanged: dict[str, str]
) -> None:
    body = json.dumps([{"request_id": unchanged["u0@c.com"], "answer": "no"}] * 2000).encode()
    assert len(body) > world.app.settings.webhook_max_bytes
    headers = signed(SECRET, body, world.clock())
    headers["Content-Length"] = "10"
    assert_error(call_http(NAME, body, headers=headers), 413, "payload_too_large")


def test_bad_json_is_400(world: World, unchanged: dict[str, str]) -> None:
    assert_error(post(world, None, raw=b'{"request_id": '), 400, "invalid_json")


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ([], "non-empty list"),
        ("yes", "expected an answer object"),
        ({"answer": "maybe", "request_id": "x"}, "answer: expected yes or no"),
        ({"request_id": "x"}, "answer: expected yes or no"),
        ({"answer": "no", "policy": "salesforce"}, "give request_id, or policy and user"),
        ({"answer": "no", "request_id": 42}, "request_id: expected a non-empty string"),
        ({"answer": "no", "request_id": "x", "answered_at": "yesterday"}, "ISO 8601"),
        ({"answer": "no", "request_id": "x", "answered_at": "2026-11-28T05:00:00"}, "with a zone"),
        ({"answer": "yes", "request_id": "x", "answered_at": "2027-01-01T00:00:00Z"}, "future"),
        ([{"answer": "no", "request_id": "x"}, 7], "[1].answer: expected an object"),
        ([{"answer": "no", "request_id": "x"}] * 501, "at most 500 answers"),
    ],
)
def test_a_body_that_breaks_the_schema_is_400(
    world: World, unchanged: dict[str, str], payload: Any, where: str
) -> None:
    assert where in assert_error(post(world, payload), 400, "invalid_schema")["message"]


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"policy": "visio", "user": "u0@c.com", "answer": "no"}, "unknown policy 'visio'"),
        ({"policy": "salesforce", "user": "nobody@c.com", "answer": "no"}, "no request for user"),
        ({"request_id": "no-such-request", "answer": "no"}, "unknown request"),
    ],
)
def test_an_unknown_policy_user_or_request_is_422(
    world: World, unchanged: dict[str, str], payload: Any, where: str
) -> None:
    assert where in assert_error(post(world, payload), 422, "unknown_reference")["message"]


def test_one_unknown_answer_in_a_list_rejects_the_whole_list(
    world: World, unchanged: dict[str, str]
) -> None:
    payload = [
        {"request_id": unchanged["u0@c.com"], "answer": "no"},
        {"request_id": unchanged["u1@c.com"], "answer": "yes"},
        {"policy": "salesforce", "user": "nobody@c.com", "answer": "no"},
    ]
    assert "[2]:" in assert_error(post(world, payload), 422, "unknown_reference")["message"]


def test_a_missing_signing_secret_is_503_not_500(world: World, unchanged: dict[str, str]) -> None:
    del world.secrets.values[SECRET_NAME]
    response = post(world, {"request_id": unchanged["u0@c.com"], "answer": "no"})
    assert_error(response, 503, "unavailable")
    assert response.headers.get("Retry-After") == "60"

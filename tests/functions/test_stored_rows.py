"""Everything stored reads back (issue 13, item 4), over Azurite: Table storage is where a year-1
time became a row its own SDK cannot read, which stopped every later run of the policy.

- answers with a time outside 2000-01-01 .. now, or ids no store keeps, are refused with 400
  saying what to fix, and nothing of their list is written;
- a row that is stored anyway (written by an older version) is quarantined with its reason, and
  the policy keeps running, on schedule and by run-now.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reclaim import scheduling
from reclaim.adapters.tables import key
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import RunStatus
from tests.functions.conftest import SECRET, World
from tests.support.functions import call_http, json_body, signed

pytestmark = pytest.mark.azurite

NAME = "campaign_responses"


def post(world: World, payload: Any, **headers: str) -> Any:
    body = json.dumps(payload).encode()
    return call_http(NAME, body, headers={**signed(SECRET, body, world.clock()), **headers})


@pytest.fixture
def pending(world: World) -> list[str]:
    assert world.run().run.asked == 4
    return [r.id for r in world.ctx.store.requests(states=[RequestState.PENDING])]


def refused(world: World, payload: Any, field: str, **headers: str) -> str:
    before = world.state()
    response = post(world, payload, **headers)
    assert response.status_code == 400, (response.status_code, json_body(response))
    message = json_body(response)["error"]["message"]
    assert field in message
    assert world.state() == before
    return message


def scheduled_runs_still_happen(world: World) -> None:
    """The scheduler runs the policy at its next due times, and run-now works."""
    scheduling.run_due_policies(world.ctx, world.clock())  # first sight: cursor set
    for _ in range(2):
        world.adapters.usage_.observed_at = world.clock.advance(timedelta(days=7))
        report = scheduling.run_due_policies(world.ctx, world.clock())
        assert report.count(scheduling.TickResult.RAN) == 1, report.failed
        assert report.ticks[0].outcome.run.status is not RunStatus.HALTED
    assert world.run().run.status is not RunStatus.HALTED


@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00-01:00", "0001-01-01T00:00:00+01:00", "1970-01-01T00:00:00Z",
     "1999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00"],
)  # fmt: skip
def test_an_answer_dated_outside_the_sane_range_is_400(
    world: World, pending: list[str], stamp: str
) -> None:
    message = refused(world, {"request_id": pending[0], "answer": "yes", "answered_at": stamp},
                      "answered_at")  # fmt: skip
    assert "2000-01-01" in message or "after now" in message
    scheduled_runs_still_happen(world)


def test_a_bad_time_late_in_a_list_writes_none_of_the_list(
    world: World, pending: list[str]
) -> None:
    answers: list[dict[str, str]] = [{"request_id": r, "answer": "no"} for r in pending[:3]]
    answers.append(
        {"request_id": pending[3], "answer": "no", "answered_at": "0001-01-01T00:00:00+01:00"}
    )
    assert "[3].answered_at" in refused(world, answers, "answered_at")


@pytest.mark.parametrize(
    ("value", "problem"),
    [("id-\ud800", "lone surrogate"), ("x" * 30_000, "at most 256"), ("id\x00", "control")],
    ids=["lone-surrogate", "30000-characters", "control-character"],
)
def test_ids_no_store_keeps_are_400(
    world: World, pending: list[str], value: str, problem: str
) -> None:
    assert problem in refused(world, {"request_id": value, "answer": "no"}, "request_id")
    assert problem in refused(
        world, {"policy": world.policy.name, "user": value, "answer": "no"}, "user"
    )


def test_a_length_header_of_unicode_digits_is_400(world: World, pending: list[str]) -> None:
    refused(world, {"request_id": pending[0], "answer": "no"}, "Content-Length",
            **{"Content-Length": "²"})  # fmt: skip


def test_a_row_the_sdk_cannot_read_is_quarantined_and_the_policy_keeps_running(
    world: World, pending: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # What an older version stored for answered_at "0001-01-01T00:00:00-01:00": the SDK writes
    # '1-01-01T01:00:00.000000Z', and its reader cannot parse that back.
    answers = world.app.queue.account.table_service().get_table_client(  # type: ignore[attr-defined]
        world.app.settings.table_prefix + "Answers"
    )
    request = world.ctx.store.get_request(pending[0])
    answers.create_entity(
        {
            "PartitionKey": key(world.policy.name),
            "RowKey": f"{key(request.state_key)}|{key(request.id)}|yes",
            "request_id": request.id,
            "value": "yes",
            "answered_at": datetime(1, 1, 1, 1, tzinfo=UTC),
            "source": "webhook",
            "policy": world.policy.name,
            "state_key": request.state_key,
        }
    )
    world.clock.advance(timedelta(days=1))
    with caplog.at_level(logging.ERROR):
        scheduled_runs_still_happen(world)
    quarantined = world.table_rows("Quarantine")
    assert len(quarantined) == 1
    row = quarantined[0]
    assert row["table"].endswith("Answers") and row["moved"] is True
    assert "cannot read it back" in row["reason"] and "1-01-01T01:00:00" in row["raw"]
    assert not [e for e in world.table_rows("Answers") if e["request_id"] == request.id]
    assert any("quarantine" in r.getMessage() for r in caplog.records)


def test_a_row_reclaim_cannot_parse_is_skipped_with_a_record(
    world: World, pending: list[str]
) -> None:
    requests = world.app.queue.account.table_service().get_table_client(  # type: ignore[attr-defined]
        world.app.settings.table_prefix + "Requests"
    )
    # the request and its index entries (by state, by user) in the policy's partition
    partition = "!" + key(world.policy.name)
    copies = list(
        requests.query_entities(
            "PartitionKey eq @p and id eq @id", parameters={"p": partition, "id": pending[0]}
        )
    )
    assert len(copies) >= 3
    for stored in copies:
        stored["state"] = "SOMETHING_NEWER"
        requests.update_entity(stored)
    world.clock.advance(timedelta(days=1))
    scheduled_runs_still_happen(world)
    assert world.ctx.store.get_request(pending[0]) is None
    rows = world.table_rows("Quarantine")
    assert rows and all(r["moved"] is False and "SOMETHING_NEWER" in r["reason"] for r in rows)
    assert {r["partition"] for r in rows} == {partition}
    primary = requests.get_entity(partition, f"r|{key(pending[0])}")
    assert primary["state"] == "SOMETHING_NEWER"  # left in place: a newer reclaim may read it

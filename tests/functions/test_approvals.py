"""POST /api/campaign/approvals through the azure-functions API, over Table storage on Azurite:
the approver's decision is recorded with who and why; anyone else is refused 403, and every
rejected request (signature, schema, unknown request, not escalated) changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from reclaim import usecases
from reclaim.domain.lifecycle import QueueReason, RequestState
from reclaim.domain.model import AnswerValue, User
from reclaim.domain.records import LedgerOutcome
from tests.conftest import asking_policy
from tests.functions.conftest import SECRET, World
from tests.support.functions import call_http, json_body, signed

pytestmark = pytest.mark.azurite

NAME = "campaign_approvals"
BOSS = User(object_id="boss", upn="grace@c.com", display_name="Grace")


def post(world: World, payload: Any, *, raw: bytes | None = None, **headers: str):
    body = raw if raw is not None else json.dumps(payload).encode()
    return call_http(NAME, body, headers=signed(SECRET, body, world.clock(), **headers))


@pytest.fixture
def escalated(world: World) -> dict[str, str]:
    """u0 said yes and waits for her manager, who was asked; u1 was asked, not escalated."""
    world.use_policies(asking_policy(escalation={"fallback": ["licences@c.com"], "when": "keep"}))
    world.adapters.managers_.of["u0@c.com"] = BOSS
    world.run()
    asked = {r.user.upn: r.id for r in world.ctx.store.requests(states=[RequestState.PENDING])}
    now = world.clock()
    command = usecases.AnswerCommand(AnswerValue.YES, now, request_id=asked["u0@c.com"])
    assert usecases.record_answer(world.ctx, command, now) is usecases.AnswerStatus.ESCALATED
    assert usecases.expire_requests(world.ctx, now).approvals_asked == 1
    return asked


def decision(request_id: str, approver: str = "grace@c.com", value: str = "release") -> Any:
    return {
        "request_id": request_id,
        "policy": "salesforce",
        "approver": approver,
        "decision": value,
        "justification": "moved to another team",
    }


def test_the_approvers_release_is_recorded_with_who_and_why(
    world: World, escalated: dict[str, str]
) -> None:
    response = post(world, decision(escalated["u0@c.com"]))
    assert response.status_code == 200, response.get_body()
    assert json_body(response) == {"status": "released"}
    request = world.ctx.store.get_request(escalated["u0@c.com"])
    assert (request.state, request.queue_reason) == (RequestState.DUE, QueueReason.APPROVER)
    (entry,) = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.APPROVER_RELEASED]
    assert entry.detail == "release by grace@c.com (manager) via webhook: moved to another team"
    again = post(world, decision(escalated["u0@c.com"]))
    assert json_body(again) == {"status": "duplicate"}


def test_anyone_but_her_approver_is_refused_403_and_nothing_changes(
    world: World, escalated: dict[str, str]
) -> None:
    before = world.state()
    for who in ("u0@c.com", "licences@c.com", "mallory@c.com"):  # herself, a fallback, a stranger
        response = post(world, decision(escalated["u0@c.com"], approver=who, value="keep"))
        assert response.status_code == 403, who
        assert json_body(response)["error"]["code"] == "not_an_approver"
    assert world.state() == before


MALFORMED = [
    ({"decision": "maybe"}, 400, "invalid_schema"),
    ({"approver": ""}, 400, "invalid_schema"),
    ({"justification": 7}, 400, "invalid_schema"),
    ({"request_id": "nope"}, 422, "unprocessable"),
    ({"policy": "visio"}, 422, "unprocessable"),
    ({"justification": "x" * 5000}, 422, "unprocessable"),
]


def test_a_malformed_decision_is_refused_and_changes_nothing(
    world: World, escalated: dict[str, str]
) -> None:
    before = world.state()
    for payload, status, code in MALFORMED:
        response = post(world, {**decision(escalated["u0@c.com"]), **payload})
        assert response.status_code == status, (payload, response.get_body())
        assert json_body(response)["error"]["code"] == code
    assert world.state() == before


def test_a_request_that_was_not_escalated_cannot_be_decided(
    world: World, escalated: dict[str, str]
) -> None:
    before = world.state()
    response = post(world, decision(escalated["u1@c.com"]))
    assert response.status_code == 422
    assert "not escalated" in json_body(response)["error"]["message"]
    assert world.state() == before


def test_an_unsigned_or_stale_decision_is_401(world: World, escalated: dict[str, str]) -> None:
    before = world.state()
    body = json.dumps(decision(escalated["u0@c.com"])).encode()
    forged = call_http(NAME, body, headers=signed("another secret", body, world.clock()))
    stale = call_http(NAME, body, headers=signed(SECRET, body, world.clock() - timedelta(hours=1)))
    not_json = post(world, None, raw=b"{", **{"Content-Type": "text/plain"})
    assert (forged.status_code, stale.status_code, not_json.status_code) == (401, 401, 415)
    assert world.state() == before

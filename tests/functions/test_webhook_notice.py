"""A notice through the function app on Table storage (real Azurite): a "no" posted to the
campaign webhook waits in NOTICE, the expiry tick tells the date, and a "yes" posted during the
notice keeps the licence, with both answers and the notice in the history."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from reclaim import usecases
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy.notice import NoticeSpec
from reclaim.domain.records import LedgerOutcome
from tests.functions.conftest import SECRET, World
from tests.support.functions import call_http, json_body, signed

pytestmark = pytest.mark.azurite


def post(world: World, payload: Any):
    body = json.dumps(payload).encode()
    return call_http("campaign_responses", body, headers=signed(SECRET, body, world.clock()))


def test_a_yes_posted_during_the_notice_keeps_the_licence(world: World) -> None:
    world.use_policies(replace(world.policy, notice=NoticeSpec(timedelta(days=3))))
    world.run()
    (request,) = [r for r in world.ctx.store.requests() if r.user.upn == "u0@c.com"]
    assert json_body(post(world, {"request_id": request.id, "answer": "no"}))["queued"] == 1
    assert world.ctx.store.get_request(request.id).state is RequestState.NOTICE

    told_at = world.clock.advance(timedelta(minutes=5))
    assert usecases.expire_requests(world.ctx, told_at).noticed == 1
    (row,) = [e for e in world.table_rows("Requests") if e["RowKey"] == f"r|{request.id}"]
    assert row["state"] == "NOTICE" and row["not_before"] == told_at + timedelta(days=3)
    assert world.adapters.campaign_.noticed == [(request.id, told_at + timedelta(days=3))]

    world.clock.advance(timedelta(days=1))
    answer = {"request_id": request.id, "answer": "yes", "justification": "audit season"}
    assert json_body(post(world, answer))["kept"] == 1
    assert world.ctx.store.get_request(request.id).state is RequestState.KEPT
    history = [
        (e.outcome, e.detail)
        for e in world.ctx.store.ledger()
        if e.request_id == request.id and e.outcome is not LedgerOutcome.ASKED
    ]
    assert history == [
        (LedgerOutcome.ANSWERED, "no via webhook"),
        (
            LedgerOutcome.NOTICE_SENT,
            f"removal not before {told_at + timedelta(days=3):%Y-%m-%d %H:%M} UTC (notice 3d), "
            "told through webhook",
        ),
        (LedgerOutcome.ANSWERED, "yes via webhook: audit season"),
    ]
    usecases.expire_requests(world.ctx, world.clock.advance(timedelta(days=5)))
    assert world.message_count() == 0

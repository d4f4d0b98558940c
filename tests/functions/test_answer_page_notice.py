"""The notice's keep link on the answer page (real Table storage): during the notice the page
offers "keep" only, names the removal date, and a keep there makes the request KEPT."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from reclaim import usecases
from reclaim.domain.answer_links import sign_link
from reclaim.domain.appeal import answer_link
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue
from reclaim.domain.policy.notice import NoticeSpec
from reclaim.domain.records import LedgerOutcome
from tests.functions.conftest import World
from tests.functions.test_answer_page import KEY, LINK_SECRET_NAME, get, post, text

pytestmark = pytest.mark.azurite


def test_the_notices_link_keeps_the_licence_until_the_removal_date(world: World) -> None:
    world.app.settings = replace(
        world.app.settings, link_secret_name=LINK_SECRET_NAME, public_url="https://reclaim.test"
    )
    world.secrets.values[LINK_SECRET_NAME] = KEY.decode()
    world.use_policies(replace(world.policy, notice=NoticeSpec(timedelta(days=3))))
    world.run()
    (request,) = [r for r in world.ctx.store.requests() if r.user.upn == "u0@c.com"]
    no = usecases.AnswerCommand(AnswerValue.NO, world.clock(), request_id=request.id)
    usecases.record_answer(world.ctx, no, world.clock())
    told_at = world.clock.advance(timedelta(minutes=5))
    usecases.expire_requests(world.ctx, told_at)
    remove_after = told_at + timedelta(days=3)
    token = sign_link(answer_link(request, remove_after), KEY)

    world.clock.advance(timedelta(days=1))
    before = world.state()
    page = get(token)
    assert page.status_code == 200 and world.state() == before  # a prefetch writes nothing
    shown = text(page)
    assert f"removed on or after {remove_after:%Y-%m-%d %H:%M} UTC" in shown
    assert 'value="keep"' in page.get_body().decode()
    assert 'value="release"' not in page.get_body().decode()

    assert "You keep your licence" in text(post(token, "keep", "audit season"))
    assert world.ctx.store.get_request(request.id).state is RequestState.KEPT
    outcomes = [e.outcome for e in world.ctx.store.ledger() if e.request_id == request.id]
    assert outcomes == [
        LedgerOutcome.ASKED,
        LedgerOutcome.ANSWERED,
        LedgerOutcome.NOTICE_SENT,
        LedgerOutcome.ANSWERED,
    ]

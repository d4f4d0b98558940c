"""Justifications on webhook answers: stored with the answer, carried into the ledger and
`explain`; a bad one anywhere in a list refuses the whole list with nothing changed; a policy can
require one with a "yes"."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reclaim.domain.lifecycle import RequestState
from reclaim.domain.limits import MAX_JUSTIFICATION_LENGTH
from reclaim.domain.records import LedgerOutcome
from tests.functions.conftest import SECRET, World
from tests.support.functions import call_http, json_body, signed

pytestmark = pytest.mark.azurite

NAME = "campaign_responses"
REASON = "I draw the floor plans in Visio every week"


def post(world: World, payload: Any):
    body = json.dumps(payload).encode()
    return call_http(NAME, body, headers=signed(SECRET, body, world.clock()))


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status
    error = json_body(response)["error"]
    assert error["code"] == code
    return error["message"]


@pytest.fixture
def asked(world: World) -> dict[str, str]:
    """The idle users u0..u3 were asked; upn -> request id."""
    assert world.run().run.asked == 4
    return {r.user.upn: r.id for r in world.ctx.store.requests(states=[RequestState.PENDING])}


def requiring(world: World) -> None:
    campaign = replace(world.policy.campaign, require_justification_for_keep=True)
    world.use_policies(replace(world.policy, campaign=campaign))


def test_a_justification_is_stored_with_the_answer_and_in_the_ledger(
    world: World, asked: dict[str, str]
) -> None:
    response = post(
        world, {"request_id": asked["u0@c.com"], "answer": "yes", "justification": f"  {REASON} "}
    )

    assert json_body(response)["kept"] == 1
    (answer,) = world.ctx.store.answers("salesforce", "u0@c.com")
    assert answer.justification == REASON  # surrounding space dropped
    (answered,) = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.ANSWERED]
    assert answered.detail == f"yes via webhook: {REASON}"


def test_an_answer_without_a_justification_still_works(world: World, asked: dict[str, str]) -> None:
    assert json_body(post(world, {"request_id": asked["u1@c.com"], "answer": "no"}))["queued"] == 1
    assert [a.justification for a in world.ctx.store.answers("salesforce", "u1@c.com")] == [""]


@pytest.mark.parametrize(
    ("justification", "status", "code", "says"),
    [
        ("x" * (MAX_JUSTIFICATION_LENGTH + 1), 422, "invalid_justification", "at most 500"),
        ("line one\nline two", 422, "invalid_justification", "control character (U+000A)"),
        ("bell\x07", 422, "invalid_justification", "control character (U+0007)"),
        ("half \ud800 a pair", 422, "invalid_justification", "lone surrogate"),
        (42, 400, "invalid_schema", "expected a string"),
    ],
)
def test_a_bad_justification_anywhere_in_the_list_refuses_all_of_it(
    world: World, asked: dict[str, str], justification: Any, status: int, code: str, says: str
) -> None:
    before = world.state()
    payload = [
        {"request_id": asked["u0@c.com"], "answer": "yes", "justification": REASON},
        {"request_id": asked["u1@c.com"], "answer": "no", "justification": justification},
    ]
    message = error_of(post(world, payload), status, code)
    assert message.startswith("[1].justification: ") and says in message
    assert world.state() == before


def test_a_policy_can_require_a_justification_with_a_yes(
    world: World, asked: dict[str, str]
) -> None:
    requiring(world)
    before = world.state()
    payload = [
        {"request_id": asked["u0@c.com"], "answer": "yes", "justification": REASON},
        {"request_id": asked["u1@c.com"], "answer": "no"},  # a "no" needs no reason
        {"request_id": asked["u2@c.com"], "answer": "yes", "justification": "   "},
    ]
    message = error_of(post(world, payload), 422, "justification_required")
    assert message.startswith("[2].justification: ") and "'salesforce' requires one" in message
    assert world.state() == before

    payload[2]["justification"] = "still needed for the audit"
    assert json_body(post(world, payload))["kept"] == 2
    assert world.ctx.store.get_request(asked["u2@c.com"]).state is RequestState.KEPT


# The property: whatever the list, one bad justification in it means no change at all.
BAD = st.one_of(  # framed by letters: surrounding space is dropped before the checks
    st.text(min_size=MAX_JUSTIFICATION_LENGTH, max_size=MAX_JUSTIFICATION_LENGTH + 40).map(
        lambda t: f"a{t}z"
    ),
    st.tuples(st.text(max_size=20), st.characters(categories=["Cc"]), st.text(max_size=20)).map(
        lambda parts: f"a{''.join(parts)}z"
    ),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=2),
)
GOOD = st.one_of(st.none(), st.text(max_size=60).filter(lambda t: t.isprintable()))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(["yes", "no"]), GOOD), min_size=1, max_size=6
    ),
    bad=BAD,
    position=st.integers(0, 6),
)
def test_property_any_bad_justification_refuses_the_list_with_no_state_change(
    world: World, asked: dict[str, str], items: list[tuple[int, str, Any]], bad: Any, position: int
) -> None:
    payload: list[dict[str, Any]] = [
        {"request_id": asked[f"u{user}@c.com"], "answer": answer}
        | ({} if reason is None else {"justification": reason})
        for user, answer, reason in items
    ]
    where = min(position, len(payload))
    payload.insert(where, {"policy": "salesforce", "user": "u3@c.com", "answer": "yes"})
    payload[where]["justification"] = bad
    before = world.state()

    response = post(world, payload)

    assert response.status_code in (400, 422)
    assert f"[{where}].justification: " in json_body(response)["error"]["message"]
    assert world.state() == before

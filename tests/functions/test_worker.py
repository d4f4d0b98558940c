"""The removal worker through the queue trigger, with the host's queue behaviour (QueuePump:
base64, dequeue count, poison queue after maxDequeueCount from host.json) over real Azurite."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import LedgerOutcome, RemovalMessage
from reclaim.errors import PermanentError, TransientError
from tests.conftest import make_policy
from tests.functions.conftest import SECRET, World
from tests.support.functions import call_http, call_queue, pump, signed

pytestmark = pytest.mark.azurite

IDLE = ["u0@c.com", "u1@c.com", "u2@c.com", "u3@c.com"]


@pytest.fixture
def enqueued(world: World) -> list[RemovalMessage]:
    """Enforce without asking: one removal message per idle user, in the real queue."""
    world.use_policies(make_policy(mode="enforce"))
    assert world.run().run.enqueued == 4
    return [RemovalMessage.from_json(text) for text in world.queued_texts()]


def outcomes(world: World, outcome: LedgerOutcome) -> list[str]:
    return sorted(e.user.upn for e in world.ctx.store.ledger() if e.outcome is outcome)


def test_each_message_removes_its_user_and_the_queue_empties(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    result = pump(world.app).drain()

    assert (result.processed, result.failed, result.poisoned) == (4, 0, 0)
    assert sorted(upn for _, upn in world.directory.removed) == IDLE
    assert outcomes(world, LedgerOutcome.REMOVED) == IDLE
    assert world.message_count() == 0


def test_a_duplicated_message_removes_once_and_writes_one_ledger_entry(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    for message in enqueued:
        world.ctx.queue.enqueue(message)  # every message delivered twice
    one_at_a_time = replace(world.app.queue_options, batch_size=1, new_batch_threshold=0)

    result = pump(world.app, one_at_a_time).drain()

    assert result.processed == 8
    assert sorted(upn for _, upn in world.directory.removed) == IDLE
    assert outcomes(world, LedgerOutcome.REMOVED) == IDLE
    assert world.message_count() == 0


def test_duplicates_delivered_at_the_same_time_remove_once(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    for message in enqueued:
        world.ctx.queue.enqueue(message)  # both copies in one parallel batch (host.json: 8)

    result = pump(world.app).drain()

    # A copy that finds its twin mid-removal is deferred (sent again with a delay), not lost.
    assert result.processed == 8
    assert sorted(upn for _, upn in world.directory.removed) == IDLE
    assert outcomes(world, LedgerOutcome.REMOVED) == IDLE


def test_yes_after_the_removal_was_queued_cancels_it(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    body = json.dumps({"policy": "salesforce", "user": "u0@c.com", "answer": "yes"}).encode()
    answered = call_http("campaign_responses", body, headers=signed(SECRET, body, world.clock()))
    assert json.loads(answered.get_body())["cancelled"] == 1

    pump(world.app).drain()

    assert ("SF", "u0@c.com") not in world.directory.removed
    assert outcomes(world, LedgerOutcome.REMOVED) == IDLE[1:]
    asked = next(m for m in enqueued if m.user.upn == "u0@c.com")  # sent in any order
    request = world.ctx.store.get_request(asked.request_id)
    assert request is not None and request.state is RequestState.CANCELLED


def test_the_kill_switch_defers_every_removal(world: World, enqueued: list[RemovalMessage]) -> None:
    world.ctx.kill_switch = True

    result = pump(world.app).drain()

    assert result.processed == 4 and world.directory.removed == []
    assert world.queued_texts() == []  # sent back with a delay: waiting, not visible
    assert world.message_count() == 4
    assert {r.state for r in world.ctx.store.requests()} == {RequestState.QUEUED}


@pytest.mark.parametrize(
    "body",
    [
        "this is not JSON",
        '{"version": 99, "request_id": "r"}',
        json.dumps(
            {
                "version": 1,
                "request_id": "unknown",
                "run_id": "r",
                "policy": "salesforce",
                "group": "SF",
                "user": {"upn": "u0@c.com"},
            }
        ),
    ],
)
def test_a_malformed_message_is_poisoned_not_retried(
    world: World, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    world.ctx.queue.create()  # type: ignore[attr-defined]
    world.ctx.queue.client.send_message(body)  # type: ignore[attr-defined]

    result = pump(world.app).drain()

    assert (result.processed, result.failed) == (1, 0)  # the function returned normally
    assert world.queued_texts(poison=True) == [body]
    assert world.message_count() == 0
    assert "cannot be acted on" in caplog.text


def test_a_permanent_failure_is_recorded_failed_and_poisoned(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    world.directory.failures["u2@c.com"] = PermanentError("the directory refused: user is locked")

    result = pump(world.app).drain()

    assert (result.processed, result.failed) == (4, 0)
    assert outcomes(world, LedgerOutcome.FAILED) == ["u2@c.com"]
    (poisoned,) = world.queued_texts(poison=True)
    assert RemovalMessage.from_json(poisoned).user.upn == "u2@c.com"
    failed = [r for r in world.ctx.store.requests() if r.state is RequestState.FAILED]
    assert [r.detail for r in failed] == ["the directory refused: user is locked"]


def test_throttling_defers_and_the_last_delivery_records_a_failure(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    world.use_policies(make_policy(mode="enforce"))
    world.directory.failures["u1@c.com"] = TransientError("429 throttled", retry_after=120)
    message = next(m for m in enqueued if m.user.upn == "u1@c.com")
    # A delivery the host will repeat: deferred by Retry-After, nothing recorded as failed.
    call_queue("removal_worker", message.to_json(), dequeue_count=1)
    assert world.ctx.store.get_request(message.request_id).state is RequestState.QUEUED
    assert outcomes(world, LedgerOutcome.FAILED) == []
    # The delivery the host will not repeat (dequeue count = maxDequeueCount): FAILED + poison.
    limit = world.app.queue_options.max_dequeue_count
    call_queue("removal_worker", message.to_json(), dequeue_count=limit)
    assert outcomes(world, LedgerOutcome.FAILED) == ["u1@c.com"]
    assert world.queued_texts(poison=True) == [message.to_json()]


def test_an_unexpected_error_goes_back_to_the_host_which_retries_then_poisons(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    world.ctx.store = UnreachableStore()  # type: ignore[assignment]
    with pytest.raises(ConnectionError, match="storage unreachable"):
        call_queue("removal_worker", enqueued[0].to_json())

    # Under the host: retried after visibilityTimeout, moved to poison after maxDequeueCount.
    options = replace(world.app.queue_options, visibility_timeout=timedelta(0))
    host = pump(world.app, options)
    rounds = [host.pump_once() for _ in range(options.max_dequeue_count)]

    assert [r.failed for r in rounds] == [4] * (options.max_dequeue_count - 1) + [0]
    assert rounds[-1].poisoned == 4
    assert sorted(world.queued_texts(poison=True)) == sorted(m.to_json() for m in enqueued)
    assert world.message_count() == 0


class UnreachableStore:
    """A store whose reads fail, as the worker sees a storage outage."""

    def get_request(self, request_id: str, policy: str | None = None) -> None:
        raise ConnectionError("storage unreachable")


def test_a_transient_error_that_never_clears_ends_failed_and_poisoned(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    """Each deferral sends a fresh message (dequeue count 1 again), so maxDequeueCount never
    ended this loop (20 deliveries in 25 s, poison 0). The attempts counted on the request do."""
    world.directory.failures["u1@c.com"] = TransientError("503 from the directory", retry_after=0)

    pump(world.app).drain()

    assert outcomes(world, LedgerOutcome.FAILED) == ["u1@c.com"]
    assert outcomes(world, LedgerOutcome.REMOVED) == ["u0@c.com", "u2@c.com", "u3@c.com"]
    message = next(m for m in enqueued if m.user.upn == "u1@c.com")
    request = world.ctx.store.get_request(message.request_id)
    assert request is not None and request.attempts == world.ctx.limits.max_attempts
    assert "503 from the directory" in request.detail
    assert world.queued_texts(poison=True) == [message.to_json()]
    assert world.message_count() == 0

"""WebhookCampaign against a small HTTPS receiver that checks signatures with reclaim.signing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.http_retry import RetryPolicy
from reclaim.adapters.webhook_channel import ANSWER_PATH, WebhookCampaign
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import User
from reclaim.domain.policy import Policy, policies_from_data
from reclaim.errors import ConfigurationError, TransientError
from reclaim.settings import Settings
from reclaim.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from tests.fakes.https import HttpsServer

SECRET_NAME = "outbound-webhook-secret"
SECRET = "receiver-shares-this"
T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


class Receiver:
    """Accepts a signed ask with 202; refuses a bad signature with 401; knobs: per-request
    statuses, queued 429/503 faults."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refused: list[str] = []
        self.status_for: dict[str, tuple[int, str]] = {}  # request id -> status, body
        self.faults: list[tuple[int, str | None]] = []  # (status, Retry-After) for the next posts
        self.down_after: int | None = None  # after this many accepted asks, answer 503
        self.posts = 0
        self.server = HttpsServer(self._handler())
        # serve_forever polls for shutdown every 0.5 s by default: each test would wait that long
        self.server.thread = threading.Thread(
            target=self.server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url + "/hooks/licence-asks"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.posts += 1
                    fault = receiver.faults.pop(0) if receiver.faults else None
                    if (
                        receiver.down_after is not None
                        and len(receiver.received) >= receiver.down_after
                    ):
                        fault = (503, None)
                if fault is not None:
                    self.send_response(fault[0])
                    if fault[1] is not None:
                        self.send_header("Retry-After", fault[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    verify(
                        SECRET,
                        self.headers.get(TIMESTAMP_HEADER),
                        self.headers.get(SIGNATURE_HEADER),
                        raw,
                        datetime.now(UTC),
                        timedelta(minutes=5),
                    )
                except SignatureError as error:
                    with receiver.lock:
                        receiver.refused.append(error.reason)
                    return self._answer(401, error.reason)
                body = json.loads(raw)
                with receiver.lock:
                    receiver.received.append(body)
                    receiver.headers.append(dict(self.headers.items()))
                    status, text = receiver.status_for.get(body["request_id"], (202, ""))
                self._answer(status, text)

            def _answer(self, status: int, text: str) -> None:
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def policy(url: str) -> Policy:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "directory": {"kind": "entra", "group": "0b6f"},
        "usage": {"source": "nexthink"},
        "ask_permission": True,
        "campaign": {"channel": "webhook", "url": url, "respond_within": "7d"},
    }
    return policies_from_data({"policies": [data]})[0]


def request(request_id: str, deadline: datetime | None = None) -> Request:
    return Request(
        id=request_id,
        policy="visio",
        group="0b6f",
        user=User(
            upn=f"{request_id}@example.com",
            mail=f"{request_id}@example.com",
            sam_account_name=request_id,
            sid=f"S-1-5-21-{request_id}",
            display_name=f"User {request_id}",
        ),
        state_key=f"{request_id}@example.com",
        run_id="run-1",
        state=RequestState.PENDING,
        created_at=T0,
        updated_at=T0,
        deadline=deadline,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def settings(receiver: Receiver, **variables: str) -> Settings:
    return Settings.from_env(
        {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_CA_BUNDLE": str(receiver.server.ca_file),
            "RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME": SECRET_NAME,
            **variables,
        }
    )


def channel(receiver: Receiver, secret: str = SECRET, **options: Any) -> WebhookCampaign:
    secrets = EnvironmentSecrets({variable_for(SECRET_NAME): secret})
    return WebhookCampaign.from_settings(settings(receiver), secrets, **options)


def test_each_ask_is_posted_signed_and_accepted(receiver: Receiver) -> None:
    deadline = T0 + timedelta(days=3)
    result = channel(receiver).ask(policy(receiver.url), [request("r1", deadline), request("r2")])
    assert result.asked == {"r1": "r1", "r2": "r2"}
    assert result.not_asked == {}
    assert receiver.refused == []
    first, second = receiver.received
    assert first == {
        "request_id": "r1",
        "policy": "visio",
        "application": "Microsoft Visio",
        "user": {
            "upn": "r1@example.com",
            "mail": "r1@example.com",
            "sam_account_name": "r1",
            "sid": "S-1-5-21-r1",
            "display_name": "User r1",
        },
        "respond_by": "2030-03-04T09:00:00+00:00",
        "answer_url": ANSWER_PATH,
        "answers": ["yes", "no"],
        "event": "ask",
    }
    assert second["respond_by"] == "2030-03-08T09:00:00+00:00"  # created_at + respond_within
    assert receiver.headers[0]["X-Reclaim-Request-Id"] == "r1"


def test_a_receiver_with_another_secret_refuses_the_ask(receiver: Receiver) -> None:
    result = channel(receiver, secret="not-the-shared-one").ask(
        policy(receiver.url), [request("r1")]
    )
    assert result.asked == {}
    assert result.not_asked["r1"].startswith("receiver answered HTTP 401")
    assert receiver.refused == ["X-Reclaim-Signature does not match the body"]


def test_a_4xx_is_not_asked_with_the_receivers_reason(receiver: Receiver) -> None:
    receiver.status_for["r2"] = (422, "no mailbox for r2@example.com")
    result = channel(receiver).ask(policy(receiver.url), [request("r1"), request("r2")])
    assert result.asked == {"r1": "r1"}
    assert result.not_asked == {"r2": "receiver answered HTTP 422: no mailbox for r2@example.com"}


def test_429_and_503_are_retried_with_a_fresh_signature(receiver: Receiver) -> None:
    sleeps: list[float] = []
    receiver.faults = [(429, "1"), (503, None)]
    result = channel(receiver, sleep=sleeps.append).ask(policy(receiver.url), [request("r1")])
    assert result.asked == {"r1": "r1"}
    assert receiver.posts == 3
    assert sleeps == [1.0, 1.0]  # Retry-After, then the second step of the backoff


def test_a_receiver_that_stays_down_is_transient(receiver: Receiver) -> None:
    receiver.faults = [(503, None)] * 5
    with pytest.raises(TransientError, match="503"):
        channel(receiver, sleep=lambda _s: None).ask(policy(receiver.url), [request("r1")])


def test_when_the_receiver_goes_down_midway_the_asked_ones_stay_recorded(
    receiver: Receiver,
) -> None:
    receiver.down_after = 1
    c = channel(receiver, sleep=lambda _s: None, retry=RetryPolicy(attempts=2))
    result = c.ask(policy(receiver.url), [request("r1"), request("r2"), request("r3")])
    assert result.asked == {"r1": "r1"}
    assert set(result.not_asked) == {"r2", "r3"}
    assert result.not_asked["r2"].startswith("not sent:")
    assert receiver.posts == 3  # r2 tried twice, r3 not at all


def test_answers_are_pushed_so_none_are_pulled(receiver: Receiver) -> None:
    assert channel(receiver).answers(policy(receiver.url), T0) == []


def test_a_missing_secret_name_is_a_configuration_error(receiver: Receiver) -> None:
    with pytest.raises(ConfigurationError, match="RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME"):
        WebhookCampaign.from_settings(
            settings(receiver, RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME=""), EnvironmentSecrets({})
        )


def test_the_receiver_must_present_a_trusted_certificate(receiver: Receiver) -> None:
    secrets = EnvironmentSecrets({variable_for(SECRET_NAME): SECRET})
    untrusting = WebhookCampaign.from_settings(settings(receiver, RECLAIM_CA_BUNDLE=""), secrets)
    with pytest.raises(ConfigurationError, match="RECLAIM_CA_BUNDLE"):
        untrusting.ask(policy(receiver.url), [request("r1")])
    assert receiver.received == []

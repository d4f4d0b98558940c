"""The admin digest reaches an incoming webhook over HTTPS after each recorded run."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.digest import IncomingWebhookDigest
from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.model import Member, UsageRow, User
from reclaim.errors import ConfigurationError, TransientError
from tests.conftest import NOW, make_policy
from tests.fakes.https import HttpsServer
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage


class Receiver(BaseHTTPRequestHandler):
    posts: list[dict] = []
    status = 200
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            Receiver.posts.append(json.loads(body))
        self.send_response(Receiver.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    Receiver.posts, Receiver.status = [], 200
    with HttpsServer(Receiver) as server:
        yield server


def digest_for(server: HttpsServer, url: str) -> IncomingWebhookDigest:
    secrets = EnvironmentSecrets({variable_for("digest-url"): url})
    return IncomingWebhookDigest(secrets, "digest-url", str(server.ca_file))


def test_a_halted_run_and_failures_are_posted(receiver, tmp_path: Path) -> None:
    users = [User(upn=f"u{i}@c.com") for i in range(4)]
    directory = MemoryDirectory({"SF": [Member(u) for u in users]}, transient_failures=1)
    usage = MemoryUsage([UsageRow(f"u{i}@c.com", 0.0 if i < 2 else 50.0) for i in range(4)], NOW)
    policy = make_policy(
        mode="enforce", limits={"max_removals_per_run": 2, "max_percent_of_group": 50}
    )
    queue = MemoryQueue()
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        queue,
        MemoryAdapters(directory, usage),
        {policy.name: policy},
        notifier=digest_for(receiver, receiver.url + "/hook"),
    )
    usecases.run_policy(ctx, policy, NOW)
    first, second = queue.drain()
    usecases.perform_removal(ctx, usecases.RemovalCommand(first, final_attempt=True), NOW)
    usecases.perform_removal(ctx, usecases.RemovalCommand(second), NOW)
    usage.rows = [UsageRow(f"u{i}@c.com", 0.0) for i in range(4)]
    usecases.run_policy(ctx, policy, NOW)
    first_text, second_text = (p["text"] for p in Receiver.posts)
    assert "salesforce (Salesforce Lightning, enforce) completed" in first_text
    assert "asked 0, removals queued 2" in first_text
    assert "HALTED by max_removals_per_run" in second_text
    assert (
        "1 removal(s) failed since the previous run:" in second_text
        and "gave up after retries" in second_text
    )


def test_a_failing_webhook_does_not_undo_the_run(receiver, tmp_path: Path) -> None:
    Receiver.status = 500
    directory = MemoryDirectory({"SF": [Member(User(upn="a@c.com"))]})
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        MemoryAdapters(directory, MemoryUsage([UsageRow("a@c.com", 9.0)], NOW)),
        {"salesforce": make_policy()},
        notifier=digest_for(receiver, receiver.url),
    )
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert outcome.run.status.value == "planned" and len(ctx.store.runs()) == 1
    with pytest.raises(TransientError, match=r"digest webhook \(digest-url\) answered 500"):
        digest_for(receiver, receiver.url).notify("x")


def test_the_url_must_be_https_and_is_never_shown(receiver) -> None:
    with pytest.raises(
        ConfigurationError, match="must hold an https:// incoming-webhook URL"
    ) as caught:
        digest_for(receiver, "http://hooks.example/secret-token").notify("x")
    assert "secret-token" not in str(caught.value)
    with pytest.raises(TransientError) as caught:
        digest_for(receiver, "https://127.0.0.1:1/secret-token").notify("x")
    assert "secret-token" not in str(caught.value)

"""The local host behaves like the real Functions host where a difference would hide a bug:
%SETTING% bindings, chunked bodies, duplicate headers, slow clients, size limits, and queue
messages in parallel batches (each rule's source: reclaim/host/*.py and README, "The local host
vs the real host"). HTTP is spoken over raw sockets, so nothing in a client library smooths it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from reclaim.errors import ConfigurationError
from reclaim.host import HttpLimits, LocalHost, QueuePump
from reclaim.host.bindings import route_pattern
from reclaim.host.http_server import join_headers
from reclaim.host.local_host import _Route
from tests.functions.conftest import SECRET, World
from tests.support.functions import binding_settings, signed

pytestmark = pytest.mark.azurite

FAST = HttpLimits(headers_timeout=1.0, body_grace=0.5, keep_alive_timeout=1.0)


@pytest.fixture
def local(world: World) -> Iterator[LocalHost]:
    host = LocalHost(
        world.app.settings, app=world.app, port=0, env=world.env, function_key="",
        http_limits=FAST,
    )  # fmt: skip
    host.start()
    try:
        yield host
    finally:
        host.stop()


def connect(host: LocalHost) -> socket.socket:
    port = int(host.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def exchange(host: LocalHost, *parts: bytes, pause: float = 0.0) -> tuple[int, bytes]:
    """Send the parts (pausing between them), read the whole answer: (status, body)."""
    with connect(host) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(pause)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def head(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in items)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---- %SETTING% in bindings ----------------------------------------------------------------------


def test_an_unset_binding_setting_stops_the_host_naming_it(world: World) -> None:
    env = {
        k: v
        for k, v in world.env.items()
        if k not in ("RECLAIM_REMOVAL_QUEUE", "RECLAIM_SCHEDULER_SCHEDULE")
    }
    with pytest.raises(ConfigurationError) as raised:
        LocalHost(world.app.settings, app=world.app, port=0, env=env, function_key="")
    message = str(raised.value)
    assert "RECLAIM_REMOVAL_QUEUE (used by removal_worker.queueName)" in message
    assert "RECLAIM_SCHEDULER_SCHEDULE (used by scheduler.schedule)" in message
    assert "RECLAIM_EXPIRY_SCHEDULE" not in message  # set: not reported


def test_python_m_reclaim_host_exits_2_without_a_traceback(world: World, tmp_path: Any) -> None:
    env = {k: v for k, v in {**os.environ, **world.env}.items() if k != "RECLAIM_EXPIRY_SCHEDULE"}
    (tmp_path / "policies.yaml").write_text(
        "policies:\n  - name: visio\n    application: Visio\n"
        "    directory: {kind: csv, group: VISIO, file: members.csv}\n"
        "    usage: {source: csv, file: usage.csv, match_on: upn}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "reclaim", "host", "--port", "0",
         "--policies", str(tmp_path / "policies.yaml")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "RECLAIM_EXPIRY_SCHEDULE (used by expiry.schedule)" in done.stderr
    assert "Traceback" not in done.stderr


# ---- HTTP ---------------------------------------------------------------------------------------


def _answer_body(world: World) -> bytes:
    world.run()
    request_id = world.ctx.store.requests()[0].id
    return json.dumps({"request_id": request_id, "answer": "no"}).encode()


def test_a_chunked_body_reaches_the_function(world: World, local: LocalHost) -> None:
    body = _answer_body(world)
    headers = {
        k: v for k, v in signed(SECRET, body, world.clock()).items() if k != "Content-Length"
    }
    first, rest = body[:7], body[7:]
    status, payload = exchange(
        local,
        head("POST", "/api/campaign/responses", {**headers, "Transfer-Encoding": "chunked"}),
        b"%x;ext=1\r\n%s\r\n" % (len(first), first),
        b"%X\r\n%s\r\n" % (len(rest), rest),
        b"0\r\nX-Trailer: t\r\n\r\n",
        pause=0.05,
    )
    assert (status, json.loads(payload)["queued"]) == (202, 1)


def test_bodies_that_smuggle_or_break_framing_are_refused(world: World, local: LocalHost) -> None:
    path = "/api/campaign/responses"
    both = head("POST", path, {"Transfer-Encoding": "chunked", "Content-Length": "5"})
    assert exchange(local, both + b"0\r\n\r\n")[0] == 400
    gzip = head("POST", path, {"Transfer-Encoding": "gzip"})
    assert exchange(local, gzip)[0] == 400
    lengths = head("POST", path, [("Content-Length", "2"), ("Content-Length", "3")])
    assert exchange(local, lengths + b"abc")[0] == 400
    bad_chunk = head("POST", path, {"Transfer-Encoding": "chunked"})
    assert exchange(local, bad_chunk + b"zz\r\nab\r\n0\r\n\r\n")[0] == 400
    for value in (b"caf\xc3\xa9", b"a\x00b", b"a\x1b[31m"):  # Kestrel: visible ASCII only
        assert (
            exchange(local, b"GET /api/nothing HTTP/1.1\r\nX-A: " + value + b"\r\n\r\n")[0] == 400
        )
    huge_chunk = head("POST", path, {"Transfer-Encoding": "chunked"})
    assert exchange(local, huge_chunk + b"6400001\r\n")[0] == 413  # 100 MB + 1


def test_duplicate_headers_reach_the_function_joined_like_the_host(
    world: World, local: LocalHost
) -> None:
    seen: dict[str, str] = {}

    def echo(request: func.HttpRequest) -> func.HttpResponse:
        seen.update(request.headers)
        return func.HttpResponse("ok")

    local.routes.insert(
        0, _Route("echo", "echo", route_pattern("echo"), frozenset(), "ANONYMOUS", echo)
    )
    fields = [
        ("X-Tag", "a"),
        ("x-tag", "b"),
        ("X-TAG", ""),
        ("X-Tag", "c d"),
        ("Authorization", "Bearer t"),
    ]
    assert exchange(local, head("GET", "/api/echo", fields))[0] == 200
    assert seen["x-tag"] == "a,b,c d"  # StringValues.ToString: "," and no empty values
    assert seen["authorization"] == "Bearer t"  # every header passes through
    assert join_headers([("A", ""), ("a", "")]) == {"a": ""}


def test_a_slow_client_is_cut_off_and_does_not_hold_the_host(local: LocalHost) -> None:
    with connect(local) as slow:
        slow.sendall(b"POST /api/campaign/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        # trickle one header byte every 0.2 s: each read is quick, the whole is too slow
        trickle = threading.Thread(target=_trickle, args=(slow, b"X-Slow: " + b"a" * 40))
        trickle.start()
        # meanwhile another client is served at once
        assert exchange(local, head("GET", "/api/nothing", {}))[0] == 404
        status, _ = read_response(slow)
        assert status == 408 and time.monotonic() - started < FAST.headers_timeout + 1.0
        trickle.join()
    with connect(local) as slow_body:
        slow_body.sendall(head("POST", "/api/campaign/responses", {"Content-Length": "100000"}))
        slow_body.sendall(b"{")  # then nothing: far below 240 bytes/s once the grace is over
        started = time.monotonic()
        assert read_response(slow_body)[0] == 408
        assert time.monotonic() - started < FAST.body_grace + 1.0


def _trickle(sock: socket.socket, data: bytes) -> None:
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(0.2)


def test_oversized_requests_get_kestrels_status_codes(local: LocalHost) -> None:
    assert exchange(local, head("GET", "/api/" + "a" * 4100, {}))[0] == 414  # URL > 4 KB
    assert exchange(local, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")[0] == 414
    big = [(f"X-H{n}", "v" * 1000) for n in range(40)]  # 40 KB of headers > 32 KB
    assert exchange(local, head("GET", "/api/nothing", big))[0] == 431
    many = [(f"X-H{n}", "v") for n in range(101)]
    assert exchange(local, head("GET", "/api/nothing", many))[0] == 431
    large = head("POST", "/api/campaign/responses", {"Content-Length": str(100 * 2**20 + 1)})
    assert exchange(local, large)[0] == 413


# ---- the queue trigger --------------------------------------------------------------------------


def test_queue_messages_run_in_parallel_batches_with_the_new_batch_threshold(
    world: World,
) -> None:
    queue = world.app.queue
    raw = queue.account.queue_client(queue.name, message_encode_policy=None)  # type: ignore[attr-defined]
    options = replace(world.app.queue_options, batch_size=4, new_batch_threshold=2)
    entered, release, lock = threading.Semaphore(0), threading.Semaphore(0), threading.Lock()
    running = {"now": 0, "peak": 0}

    def handler(message: Any) -> None:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        entered.release()
        release.acquire(timeout=20)
        with lock:
            running["now"] -= 1

    pump = QueuePump(queue.account, queue.name, handler, options)  # type: ignore[attr-defined]
    pump.create()
    for n in range(20):
        raw.send_message(base64.b64encode(f"m{n}".encode()).decode())
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(pump.drain()))
    worker.start()
    try:
        for _ in range(4):  # one batch of batchSize, all at once
            assert entered.acquire(timeout=10)
        assert not entered.acquire(timeout=0.5)  # 4 in flight > newBatchThreshold 2: no fetch
        release.release()
        release.release()  # down to 2 in flight: the next batch
        for _ in range(4):
            assert entered.acquire(timeout=10)
        assert not entered.acquire(timeout=0.5)
        assert running["peak"] == 6  # batchSize + newBatchThreshold
    finally:
        for _ in range(20):
            release.release()
        worker.join(timeout=30)
        pump.close()
    assert results[0].processed == 20
    assert binding_settings()  # the world's env came with the binding settings

"""Kill points at directory request boundaries, for the chaos runs (tests/support/chaos.py).

A `Tripwire` is armed for one process: it holds the n-th directory write that process sends,
either before the directory has applied it or after it has (its answer not yet sent), until the
test has killed the process or closed its pipe. Then the write is dropped (before) or its answer
goes to a dead socket (after): a crash that lands exactly between "write sent" and "write done",
or between "write done" and "answer heard".

- `TrippingGraph`: the Graph fake with a tripwire on member writes (DELETE/POST .../$ref and
  $batch), and a tally of every membership change its writes made (removals and re-adds per user).
- `TrippingLdapsRelay`: an LDAPS relay in front of the Samba DC (as tests/support/ldap_proxy.py:
  the DC's own certificate, BER framing only) with a tripwire on modify requests.
"""

from __future__ import annotations

import contextlib
import fnmatch
import select
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.graph import FakeGraph
from tests.fakes.identity import FakeReply, FakeRequest
from tests.support.ldap_proxy import LdapsRelay, _message_length, _operation

BEFORE, AFTER = "before", "after"
HOLD_LIMIT = 60.0  # seconds a held write waits for the test before going on regardless
MODIFY_REQUEST, MODIFY_RESPONSE = 0x66, 0x67  # [APPLICATION 6] / [APPLICATION 7] (RFC 4511)


@dataclass
class Tripwire:
    """Hold the `nth` write (counting from 1; 0: none) at `phase` until `release`; `killed` tells
    the holder whether its client is gone (a write held before it was applied is then dropped).
    `started`: the process has sent its first directory request."""

    nth: int
    phase: str
    seen: int = 0
    killed: bool = False
    started: threading.Event = field(default_factory=threading.Event)  # any request seen
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> bool:
        """One more write seen; whether it is the one to hold."""
        with self._lock:
            self.seen += 1
            return self.seen == self.nth

    def hold(self) -> None:
        self.reached.set()
        self.released.wait(HOLD_LIMIT)

    def release(self, *, killed: bool) -> None:
        self.killed = killed
        self.released.set()


class TrippingGraph(FakeGraph):
    """FakeGraph whose member writes can be held by a tripwire, and which tallies what its writes
    did to `watched` (one group): users taken out and put back, per user."""

    WRITES = ("/v1.0/groups/*/members/*/$ref", "/v1.0/groups/*/members/$ref", "/v1.0/$batch")

    def __init__(self) -> None:
        super().__init__()
        self.tripwire: Tripwire | None = None
        self.watched = ""
        self.taken_out: Counter[str] = Counter()
        self.put_back: Counter[str] = Counter()
        self._write_lock = threading.Lock()

    def _members(self) -> set[str]:
        with self._lock:
            return set(self.groups[self.watched].members) if self.watched else set()

    def handle(self, request: FakeRequest) -> FakeReply:
        wire = self.tripwire
        if wire is not None and request.path.startswith("/v1.0/"):
            wire.started.set()
        write = request.method in ("DELETE", "POST") and any(
            fnmatch.fnmatchcase(request.path, p) for p in self.WRITES
        )
        if not write:
            return super().handle(request)
        held = wire is not None and wire.count()
        if held and wire is not None and wire.phase == BEFORE:
            wire.hold()
            if wire.killed:  # its client died before the write was applied: it never is
                return FakeReply(503, {"error": {"code": "serviceNotAvailable", "message": ""}})
        with self._write_lock:  # one write at a time, so the tally is exact
            before = self._members()
            reply = super().handle(request)
            after = self._members()
        self.taken_out.update(before - after)
        self.put_back.update(after - before)
        if held and wire is not None and wire.phase == AFTER:
            wire.hold()  # applied; the answer waits (and goes nowhere if its client died)
        return reply


class TrippingLdapsRelay(LdapsRelay):
    """An LDAPS relay to the DC whose tripwire holds the n-th modify request: before relaying it
    (dropped if its client died) or after the DC's answer to it came back (then not relayed)."""

    def __init__(self, dc_directory: Path, upstream: tuple[str, int], server_name: str) -> None:
        self.tripwire: Tripwire | None = None
        super().__init__(dc_directory, upstream, server_name)

    def _relay(self, client: ssl.SSLSocket, upstream: ssl.SSLSocket) -> None:
        buffers = {id(client): b"", id(upstream): b""}
        held_answer: Tripwire | None = None  # the wire whose modify's answer is to be held
        with contextlib.closing(client), contextlib.closing(upstream):
            while not self._stop.is_set():
                ready = [s for s in (client, upstream) if s.pending()]
                if not ready:
                    ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for source in ready:
                    try:
                        data = source.recv(65536)
                    except (OSError, ssl.SSLError):
                        return
                    if not data:
                        return
                    buffers[id(source)] += data
                    while (length := _message_length(buffers[id(source)])) is not None:
                        message = buffers[id(source)][:length]
                        buffers[id(source)] = buffers[id(source)][length:]
                        if source is client:
                            wire = self.tripwire
                            if wire is not None:
                                wire.started.set()
                            if _operation(message) == MODIFY_REQUEST and wire and wire.count():
                                if wire.phase == BEFORE:
                                    wire.hold()
                                    if wire.killed:
                                        return  # never reaches the DC
                                else:
                                    held_answer = wire
                            upstream.sendall(message)
                            continue
                        if held_answer is not None and _operation(message) == MODIFY_RESPONSE:
                            wire, held_answer = held_answer, None
                            wire.hold()  # the DC has applied it; its answer waits
                            if wire.killed:
                                return
                        client.sendall(message)

"""Client-side pacing: the write pacer for member removals and the identity reports' rate limiter."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class WritePacer:
    """After Graph throttles a write, every thread's writes go one per 1/rate seconds (the first
    after the Retry-After) until `quiet` seconds pass without another 429.

    Graph's write budget is 3,000 per 150 s per app and tenant (20/s). Without pacing, each worker
    thread learns the bucket is empty from its own 429; with it, the process spends the budget
    evenly and keeps its requests per removal near 1.
    """

    def __init__(
        self,
        rate: float = 20.0,
        quiet: float = 150.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.quiet = quiet
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0  # the next free slot
        self._engaged_until = 0.0

    def throttled(self, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            self._engaged_until = now + self.quiet
            self._next = max(self._next, now + (retry_after or 0.0))

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._engaged_until:
                return
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class RateLimiter:
    """At most `limit` calls in any `window` seconds (Graph's identity reports: 5 per 10 s per
    app and tenant). Per process; Graph's own 429 still covers several instances."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._recent: list[float] = []

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                self._recent = [t for t in self._recent if t > now - self.window]
                if len(self._recent) < self.limit:
                    self._recent.append(now)
                    return
                self._sleep(self._recent[0] + self.window - now)

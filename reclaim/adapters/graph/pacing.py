"""Client-side pacing: the fleet's write budget and the per-process write pacer for member
removals, and the identity reports' rate limiter."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from reclaim.domain.write_budget import Bucket, BudgetRule, Reservation, drain, take
from reclaim.errors import TransientError

if TYPE_CHECKING:
    from reclaim.ports import WriteBudget
    from reclaim.settings import Settings

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


class FleetPacer:
    """Every write waits for a send time from the fleet's shared budget (reclaim.ports.WriteBudget
    in the state store), so all instances of the app together stay within Graph's bucket.

    The process takes `slice_size` send times per store round trip and hands them to its threads
    in order; a 429 drops the rest and drains the shared bucket for everyone. When the store
    cannot be reached, writes go through `fallback` (the in-process WritePacer) and the store is
    tried again after `store_retry` seconds.
    """

    def __init__(
        self,
        budget: WriteBudget,
        rule: BudgetRule,
        fallback: WritePacer,
        *,
        slice_size: int = 0,
        store_retry: float = 30.0,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budget = budget
        self.rule = rule
        self.fallback = fallback
        # a quarter second of the refill per round trip: few store requests, little left unused
        self.slice_size = slice_size or max(1, round(rule.rate / 4))
        self.store_retry = store_retry
        self._wall = wall
        self._sleep = sleep
        self._lock = threading.Lock()
        self._send_at: deque[float] = deque()
        self._not_before = 0.0  # after a 429: nothing leaves this process before then
        self._store_down_until = 0.0
        self.paced_seconds = 0.0  # waited for send times (whether the budget set the pace)

    def _reserve(self) -> Reservation:
        def reserve(bucket: Bucket | None) -> tuple[Bucket, Reservation]:
            # the clock is read inside: a retried compare-and-set computes with a fresh time
            reservation = take(bucket, self.slice_size, self.rule, self._wall())
            return reservation.bucket, reservation

        return self.budget.change(reserve)

    def wait(self) -> None:
        with self._lock:
            now = self._wall()
            slot: float | None = None
            refused = 0.0
            if now >= self._store_down_until:
                if not self._send_at:
                    try:
                        reservation = self._reserve()
                    except TransientError as error:
                        log.warning(
                            "Graph write budget unavailable (%s): pacing in this process only "
                            "for %.0f s",
                            error,
                            self.store_retry,
                        )
                        self._store_down_until = now + self.store_retry
                    else:
                        self._send_at.extend(reservation.send_at)
                        refused = reservation.retry_after
                if self._send_at:
                    slot = max(self._send_at.popleft(), self._not_before)
        if slot is None and now < self._store_down_until:
            self.fallback.wait()
            return
        if slot is None:
            raise TransientError(
                f"Graph write budget taken for the next {self.rule.horizon:.0f} s",
                retry_after=refused,
                unsent=True,
            )
        delay = slot - self._wall()  # after the store's round trip
        if delay > 0.001:  # below a millisecond: clock noise, not worth a sleep
            self.paced_seconds += delay  # threads may race here: a figure, not an account
            self._sleep(delay)

    def throttled(self, retry_after: float | None) -> None:
        seconds = retry_after if retry_after is not None else 1.0
        self.fallback.throttled(retry_after)
        now = self._wall()
        with self._lock:
            self._send_at.clear()  # promised before Graph disagreed: not worth a 429 each
            self._not_before = max(self._not_before, now + seconds)
            if now < self._store_down_until:
                return
        with contextlib.suppress(TransientError):  # the next wait() notices and falls back
            self.budget.change(lambda bucket: (drain(bucket, self.rule, now, seconds), None))


def fleet_pacer(
    settings: Settings, *, clock: Callable[[], float], sleep: Callable[[float], None]
) -> FleetPacer:
    """Writes paced by the budget all instances share (RECLAIM_GRAPH_WRITE_RATE and _BURST, kept
    in the state store), with the in-process pacer for when the store cannot be reached; `clock`
    and `sleep` are the Graph client's retry policy's."""
    from reclaim.adapters.write_budget import write_budget_from_settings

    rule = BudgetRule(rate=settings.graph_write_rate, burst=settings.graph_write_burst)
    fallback = WritePacer(rate=rule.rate, clock=clock, sleep=sleep)
    return FleetPacer(
        write_budget_from_settings(settings),
        rule,
        fallback,
        wall=wall_clock_following(clock),
        sleep=sleep,
    )


def wall_clock_following(clock: Callable[[], float]) -> Callable[[], float]:
    """Epoch seconds (what instances share) that advance as `clock` does: time.time() for the
    real monotonic clock, and in step with a test's fake clock, whose sleeps take no time."""
    if clock is time.monotonic:
        return time.time
    clock0, real0 = clock(), time.monotonic()
    return lambda: time.time() + (clock() - clock0) - (time.monotonic() - real0)


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

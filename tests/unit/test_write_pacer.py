"""After a 429 the Graph client spaces its writes at the budget's rate instead of letting every
worker thread discover the empty bucket by itself."""

from __future__ import annotations

from reclaim.adapters.graph.pacing import WritePacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_writes_are_free_until_graph_throttles() -> None:
    clock = Clock()
    pacer = WritePacer(rate=20, quiet=150, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.wait()
    assert clock.slept == []


def test_after_a_429_writes_wait_for_retry_after_then_go_at_the_rate() -> None:
    clock = Clock()
    pacer = WritePacer(rate=20, quiet=150, clock=clock, sleep=clock.sleep)
    pacer.throttled(retry_after=2.0)
    for _ in range(3):
        pacer.wait()
    assert clock.slept == [2.0, 0.05, 0.05]


def test_pacing_ends_after_a_quiet_period() -> None:
    clock = Clock()
    pacer = WritePacer(rate=20, quiet=150, clock=clock, sleep=clock.sleep)
    pacer.throttled(retry_after=None)
    clock.now += 151
    pacer.wait()
    pacer.wait()
    assert clock.slept == []

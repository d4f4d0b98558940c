"""The fleet's Graph write budget: the bucket's rules (reclaim.domain.write_budget) and the pacer
that draws from it through a real store (the SQLite file several processes share)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from reclaim.adapters.graph.pacing import FleetPacer, WritePacer
from reclaim.adapters.write_budget import SqliteWriteBudget
from reclaim.domain.write_budget import Bucket, BudgetRule, drain, take

RULE = BudgetRule(rate=20.0, burst=10.0, horizon=60.0, headroom=0.0)


def test_a_full_bucket_sends_its_burst_at_once_then_one_per_refill_interval() -> None:
    first = take(None, 12, RULE, now=100.0)
    assert first.send_at == (100.0,) * 10 + (100.05, 100.1)
    later = take(first.bucket, 2, RULE, now=100.0)
    assert later.send_at == pytest.approx((100.15, 100.2))


def test_the_bucket_refills_at_the_rate_and_never_beyond_its_capacity() -> None:
    emptied = take(None, 10, RULE, now=0.0).bucket
    assert take(emptied, 1, RULE, now=0.5).bucket.tokens == pytest.approx(9.0)
    assert take(emptied, 1, RULE, now=3600.0).bucket.tokens == pytest.approx(9.0)


def test_the_model_holds_back_the_refill_of_its_headroom_from_graphs_capacity() -> None:
    rule = BudgetRule(rate=20.0, burst=3000.0, headroom=0.5)
    assert take(None, 1, rule, now=0.0).bucket.tokens == 2989.0
    assert take(Bucket(0.0, 0.0), 1, rule, now=3600.0).bucket.tokens == 2989.0


def test_a_429_moves_every_new_send_time_past_its_retry_after() -> None:
    drained = drain(Bucket(10.0, 0.0), RULE, now=0.0, retry_after=3.0)
    assert take(drained, 1, RULE, now=0.0).send_at == pytest.approx((3.0,))


def test_nothing_is_handed_out_beyond_the_horizon_and_nothing_is_taken() -> None:
    owed = Bucket(tokens=-1300.0, updated=0.0)  # 65 s of writes promised already
    refused = take(owed, 5, RULE, now=0.0)
    assert refused.send_at == ()
    assert refused.bucket.tokens == owed.tokens
    assert refused.retry_after == pytest.approx(65.05 - 60.0)


class Clock:
    """Wall time that sleeps advance (shared by the 'instances' of one test)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def _pacer(budget: SqliteWriteBudget, clock: Clock) -> FleetPacer:
    fallback = WritePacer(rate=RULE.rate, clock=clock, sleep=clock.sleep)
    return FleetPacer(budget, RULE, fallback, slice_size=3, wall=clock, sleep=clock.sleep)


def test_two_instances_sharing_the_store_never_exceed_the_bucket(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "state.sqlite3"
    # two processes' budgets: separate connections to one file
    one = _pacer(SqliteWriteBudget(db, "graph-writes:t:c"), clock)
    two = _pacer(SqliteWriteBudget(db, "graph-writes:t:c"), clock)
    sent: list[float] = []
    for turn in range(40):
        (one if turn % 2 else two).wait()
        sent.append(clock.now)
    # any window of w seconds holds at most burst + rate * w writes
    for i, start in enumerate(sent):
        for j in range(i, len(sent)):
            assert j - i + 1 <= RULE.burst + RULE.rate * (sent[j] - start) + 1e-6


def test_one_instances_429_holds_back_the_other(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "state.sqlite3"
    one = _pacer(SqliteWriteBudget(db, "graph-writes:t:c"), clock)
    two = _pacer(SqliteWriteBudget(db, "graph-writes:t:c"), clock)
    one.wait()
    one.throttled(retry_after=5.0)
    before = clock.now
    two.wait()
    assert clock.now - before == pytest.approx(5.0)


def test_a_store_that_cannot_be_reached_falls_back_to_the_process_pacer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    (tmp_path / "file").write_text("")
    unreachable = SqliteWriteBudget(tmp_path / "file" / "state.sqlite3")  # parent is a file
    pacer = _pacer(unreachable, clock)
    with caplog.at_level(logging.WARNING):
        pacer.wait()  # unpaced: the process pacer is quiet until a 429
        pacer.throttled(retry_after=2.0)
        pacer.wait()
    assert clock.now == pytest.approx(1_002.0)  # the process pacer honoured the Retry-After
    assert "pacing in this process only" in caplog.text

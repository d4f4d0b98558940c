"""The tenant's Graph write budget as a token bucket that every instance of the app draws from.

Graph allows 3,000 writes per 150 s per app and tenant: a bucket of 3,000 tokens refilled at
20/s. The state store holds one `Bucket` for the whole fleet; an instance takes a few tokens at a
time (`take`) and gets one send time per token. A negative balance is writes already promised to
some instance ahead of the refill, so the send times of concurrent takers never overlap and the
fleet together never sends faster than Graph refills. When Graph answers 429 anyway (another app
spent the budget, or clocks disagree) `drain` moves every new send time past its Retry-After.

Times are epoch seconds (wall clock): the only clock instances on different machines share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetRule:
    rate: float = 20.0  # tokens per second (Graph: 3,000 per 150 s)
    burst: float = 3000.0  # Graph's capacity
    horizon: float = 60.0  # a send time further ahead than this is not handed out
    # A write reaches Graph a little after its send time; while Graph's bucket is full, the
    # refill of that moment is lost there but not here. Holding back this much of the refill
    # keeps the model from counting tokens Graph no longer has.
    headroom: float = 0.5  # seconds

    @property
    def capacity(self) -> float:
        return max(1.0, self.burst - self.rate * self.headroom)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.horizon <= 0 or self.headroom < 0:
            raise ValueError(
                f"a write budget needs rate > 0, burst >= 1, horizon > 0, headroom >= 0: {self}"
            )


@dataclass(frozen=True)
class Bucket:
    tokens: float  # as of `updated`; below 0: writes promised ahead of the refill
    updated: float  # epoch seconds


@dataclass(frozen=True)
class Reservation:
    bucket: Bucket  # the bucket to store (unchanged when nothing was taken)
    send_at: tuple[float, ...]  # one epoch time per token taken, earliest first
    retry_after: float = 0.0  # nothing taken: seconds until a token is within the horizon


def full(rule: BudgetRule, now: float) -> Bucket:
    """A bucket nobody has drawn from: Graph's own starts full too."""
    return Bucket(rule.capacity, now)


def refilled(bucket: Bucket | None, rule: BudgetRule, now: float) -> Bucket:
    if bucket is None:
        return full(rule, now)
    elapsed = max(0.0, now - bucket.updated)  # a clock behind the stored one refills nothing
    return Bucket(min(rule.capacity, bucket.tokens + elapsed * rule.rate), max(now, bucket.updated))


def take(bucket: Bucket | None, writes: int, rule: BudgetRule, now: float) -> Reservation:
    """Up to `writes` tokens, each with the time it may be sent: now while the bucket holds
    tokens, then one every 1/rate seconds; none beyond `rule.horizon`."""
    current = refilled(bucket, rule, now)
    send_at: list[float] = []
    tokens = current.tokens
    while len(send_at) < writes:
        wait = max(0.0, 1.0 - tokens) / rule.rate  # until the bucket holds one token
        if wait > rule.horizon:
            break
        send_at.append(current.updated + wait)
        tokens -= 1.0
    if not send_at:
        wait = max(0.0, 1.0 - tokens) / rule.rate
        return Reservation(current, (), retry_after=wait - rule.horizon)
    return Reservation(Bucket(tokens, current.updated), tuple(send_at))


def drain(bucket: Bucket | None, rule: BudgetRule, now: float, retry_after: float) -> Bucket:
    """Graph said 429 with `retry_after` seconds: no new send time before then."""
    current = refilled(bucket, rule, now)
    return Bucket(min(current.tokens, 1.0 - retry_after * rule.rate), current.updated)


def instances_needed(rule: BudgetRule, seconds_per_removal: float, in_flight: int) -> int:
    """Instances that keep the budget busy: rate x seconds per removal removals must be in
    flight, and one instance runs `in_flight` at once (batchSize + newBatchThreshold). More
    instances remove no faster; they wait for send times."""
    return max(1, math.ceil(rule.rate * seconds_per_removal / in_flight))

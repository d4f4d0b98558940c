"""The circuit breaker of each policy's directory, kept in the state store (reclaim.domain.breaker
has the rules): every worker reads it before a removal and writes what the directory answered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from reclaim.domain.breaker import Breaker, HaltKind, Passage
from reclaim.domain.holds import breaker_hold
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ConfigurationError, DirectoryOutage, PermissionDenied
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context

log = logging.getLogger("reclaim")

_SAVE_TRIES = 3  # compare-and-set: another worker may write the same breaker at the same time


def _key(policy: Policy) -> tuple[str, str]:
    return policy.name, policy.directory.kind.value


def current(ctx: Context, policy: Policy) -> Breaker:
    name, directory = _key(policy)
    return ctx.store.get_breaker(name, directory) or Breaker(name, directory)


def admit(ctx: Context, policy: Policy, now: datetime) -> tuple[Passage, Breaker]:
    """Whether a removal may call the directory now. Of the removals arriving once the back-off
    is over, one becomes the probe (compare-and-set); the others wait for its outcome."""
    breaker = current(ctx, policy)
    passage = breaker.passage(ctx.limits.breaker, now)
    if passage is Passage.PROBE:
        probing = breaker.probing(ctx.limits.breaker, now)
        if not ctx.store.save_breaker(probing):
            return Passage.WAIT, current(ctx, policy)
        log.info("probing %s of policy %s: %s", policy.directory.kind, policy.name, breaker.reason)
        return Passage.PROBE, probing
    return passage, breaker


def _change(ctx: Context, policy: Policy, change: Callable[[Breaker], Breaker | None]) -> None:
    for _ in range(_SAVE_TRIES):
        changed = change(current(ctx, policy))
        if changed is None or ctx.store.save_breaker(changed):
            return


def answered(ctx: Context, policy: Policy, seen: Breaker) -> None:
    """The directory did the operation: close the breaker (and forget earlier outages)."""
    if not seen.needs_closing:
        return  # the common case costs no write
    _change(ctx, policy, lambda b: b.closed() if b.needs_closing else None)
    if seen.is_open:
        log.warning("removals of policy %s resume: the probe got through", policy.name)


def refused(ctx: Context, policy: Policy, error: ConfigurationError, now: datetime) -> Breaker:
    """The operation itself was refused (a permission, a setting): open at the first one."""
    kind = HaltKind.PERMISSION if isinstance(error, PermissionDenied) else HaltKind.CONFIGURATION
    permission = error.permission if isinstance(error, PermissionDenied) else ""
    rules = ctx.limits.breaker
    _change(ctx, policy, lambda b: b.tripped(kind, str(error), rules, now, permission))
    log.error("removals of policy %s halted until a probe succeeds: %s", policy.name, error)
    return current(ctx, policy)


def outage(ctx: Context, policy: Policy, error: DirectoryOutage, now: datetime) -> Breaker:
    """A timeout or 5xx: counted; after outage_threshold in a row the directory is down."""
    rules = ctx.limits.breaker
    _change(ctx, policy, lambda b: b.outage(str(error), rules, now))
    return current(ctx, policy)


def hold_waiting(ctx: Context, policy: Policy, halt: Breaker, now: datetime) -> None:
    """When the breaker trips (and at each failed probe), a HELD entry for each removal of the
    policy waiting behind it that has none for this opening yet: the report's backlog. Written
    here, a few reads and one transaction per trip, never once per deferred delivery (a worker
    draining hundreds of waiting messages must stay faster than the back-off)."""
    opened = f"{halt.opened_at:%Y%m%dT%H%M%S}" if halt.opened_at else "open"
    held = {
        e.request_id
        for e in ctx.store.ledger(halt.opened_at, policy.name)
        if e.outcome is LedgerOutcome.HELD and e.id.endswith(f":HELD:{opened}")
    }
    waiting = [
        r for r in ctx.store.requests(policy.name, [RequestState.QUEUED]) if r.id not in held
    ]
    why = breaker_hold(halt.describe())
    with ctx.store.atomic():
        for request in waiting:
            ledger(
                ctx, request, LedgerOutcome.HELD, now, why, entry_id=f"{request.id}:HELD:{opened}"
            )

"""The circuit breaker of each policy's directory, kept in the state store (reclaim.domain.breaker
has the rules): every worker reads it before a removal and writes what the directory answered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from reclaim.domain.breaker import Breaker, HaltKind, Passage
from reclaim.domain.policy import Policy
from reclaim.errors import ConfigurationError, DirectoryOutage, PermissionDenied
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

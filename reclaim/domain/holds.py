"""Why a removal waits: the words a hold records (on the request and in its HELD ledger entry),
and the cause they name, which the report's backlog counts by (reclaim.domain.savings)."""

from __future__ import annotations

from enum import StrEnum


class HoldCause(StrEnum):
    CAP = "cap"  # a per-run cap halted the expiry tick (all or nothing)
    RATE = "rate"  # the rolling rate (limits.rate) let older ones out first
    HALT = "halt"  # the expiry tick halted on its data (stale, empty, failing, coverage)
    BREAKER = "breaker"  # the directory's circuit breaker is open


RATE_HELD = "held by the rate limit"
HALT_HELD = "held: the expiry tick halted"
BREAKER_HELD = "held: the directory's circuit breaker is open"
# Guardrail checks that are caps: the tick halted because too many would go at once.
CAP_CHECKS = frozenset({"max_removals_per_run", "max_percent_of_group"})


def rate_hold(count: int, window: str) -> str:
    return f"{RATE_HELD} (limits.rate: {count} per {window})"


def halt_hold(check: str) -> str:
    return f"{HALT_HELD} ({check})"


def breaker_hold(breaker: str) -> str:
    return f"{BREAKER_HELD}: {breaker}"


def hold_cause(detail: str) -> HoldCause | None:
    """The cause a hold's text names; None for a text that is no hold."""
    if detail.startswith(RATE_HELD):
        return HoldCause.RATE
    if detail.startswith(BREAKER_HELD):
        return HoldCause.BREAKER
    if detail.startswith(HALT_HELD):
        check = detail[len(HALT_HELD) :].strip(" ()")
        return HoldCause.CAP if check in CAP_CHECKS else HoldCause.HALT
    return None

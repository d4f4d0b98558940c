"""The circuit breaker of one policy's directory: removals stop at the first refusal of the
operation itself, or after consecutive outages, wait, and resume once a probe gets through.

Kept in the state store so every instance sees it; these are the rules, the store keeps the state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class HaltKind(StrEnum):
    PERMISSION = "permission"  # the app may not do the operation: an administrator must grant it
    CONFIGURATION = "configuration"  # a setting or the group is wrong: an administrator must fix it
    OUTAGE = "outage"  # timeouts or 5xx in a row: the directory is treated as down for a while


class Passage(StrEnum):
    GO = "go"  # closed: go ahead
    PROBE = "probe"  # open, and the back-off is over: this removal tests whether it works again
    WAIT = "wait"  # open: come back at retry_at
    CANCEL = "cancel"  # open for longer than max_wait: give the removal up


@dataclass(frozen=True)
class BreakerRules:
    backoff: timedelta = timedelta(minutes=5)  # between probes
    max_wait: timedelta = timedelta(days=3)  # a removal waiting longer than this is cancelled
    outage_threshold: int = 3  # consecutive timeouts or 5xx that mean the directory is down


@dataclass(frozen=True)
class Breaker:
    policy: str
    directory: str  # the policy's directory kind: one breaker per policy and directory
    is_open: bool = False
    kind: HaltKind | None = None
    reason: str = ""  # the error, saying what to grant or fix
    permission: str = ""  # the permission to grant, for a permission halt
    opened_at: datetime | None = None
    retry_at: datetime | None = None  # when the next probe may start
    outages: int = 0  # consecutive timeouts or 5xx while closed
    version: int = 0  # stores compare-and-set on it, like a request's

    def passage(self, rules: BreakerRules, now: datetime) -> Passage:
        if not self.is_open:
            return Passage.GO
        if self.opened_at is not None and now - self.opened_at >= rules.max_wait:
            return Passage.CANCEL
        if self.retry_at is None or now >= self.retry_at:
            return Passage.PROBE
        return Passage.WAIT

    def probing(self, rules: BreakerRules, now: datetime) -> Breaker:
        """Taken by the one removal that probes: the others keep waiting one more back-off."""
        return replace(self, retry_at=now + rules.backoff, version=self.version + 1)

    def tripped(
        self, kind: HaltKind, reason: str, rules: BreakerRules, now: datetime, permission: str = ""
    ) -> Breaker:
        return replace(
            self,
            is_open=True,
            kind=kind,
            reason=reason,
            permission=permission,
            opened_at=self.opened_at if self.is_open else now,
            retry_at=now + rules.backoff,
            version=self.version + 1,
        )

    def outage(self, reason: str, rules: BreakerRules, now: datetime) -> Breaker:
        """One more timeout or 5xx in a row; the threshold opens the breaker."""
        counted = replace(self, outages=self.outages + 1)
        if self.is_open or counted.outages >= rules.outage_threshold:
            return counted.tripped(HaltKind.OUTAGE, reason, rules, now)
        return replace(counted, version=self.version + 1)

    def closed(self) -> Breaker:
        return Breaker(self.policy, self.directory, version=self.version + 1)

    @property
    def needs_closing(self) -> bool:
        return self.is_open or self.outages > 0

    def describe(self) -> str:
        since = f" since {self.opened_at:%Y-%m-%d %H:%M}" if self.opened_at else ""
        return f"removals halted{since} ({self.kind}): {self.reason}"

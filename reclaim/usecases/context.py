"""Context a use case runs in: the store, the queue, the outside systems, the policies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from reclaim.domain.breaker import BreakerRules
from reclaim.domain.policy import Policy
from reclaim.domain.switches import KILL_SWITCH, KillSwitch
from reclaim.errors import ReclaimError
from reclaim.ports import (
    Campaign,
    Directory,
    Licences,
    Managers,
    Notifier,
    StateStore,
    UsageSource,
    WorkQueue,
)

# A worker that claimed a removal and died leaves it REMOVING; after this long another may take over.
CLAIM_TIMEOUT = timedelta(minutes=5)
# Decision records and finished requests older than this are compacted (the ledger is kept).
RETENTION = timedelta(days=400)
# With the kill switch on, removal messages wait and come back this much later.
KILL_SWITCH_DELAY = timedelta(minutes=15)


@dataclass(frozen=True)
class RemovalLimits:
    """When a removal ends even if the world keeps failing (RECLAIM_MAX_ATTEMPTS,
    RECLAIM_CLAIM_LEASE, RECLAIM_BREAKER_*)."""

    max_attempts: int = 5  # failed directory calls before the request is FAILED
    claim_lease: timedelta = CLAIM_TIMEOUT
    breaker: BreakerRules = field(default_factory=BreakerRules)


class Adapters(Protocol):
    """Builds the outside systems a policy names (reclaim/wiring.py in production)."""

    def directory(self, policy: Policy) -> Directory: ...

    def usage_source(self, policy: Policy) -> UsageSource: ...

    def campaign(self, policy: Policy) -> Campaign: ...

    def licences(self, policy: Policy) -> Licences: ...

    def managers(self, policy: Policy) -> Managers:
        """The users' managers (escalation.approver: manager)."""
        ...


@dataclass
class Context:
    store: StateStore
    queue: WorkQueue
    adapters: Adapters
    policies: Mapping[str, Policy]
    forced_kill_switch: bool = False  # RECLAIM_KILL_SWITCH=true: on whatever the store says
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    notifier: Notifier | None = None  # the admin digest after each recorded run
    limits: RemovalLimits = field(default_factory=RemovalLimits)
    retention: timedelta = RETENTION  # RECLAIM_RETENTION (usecases/retention.py)

    def kill_switch_state(self) -> KillSwitch:
        """Read from the store on every call: the function app keeps its Context for the life of
        the process, and a switch flipped by an operator must hold from the next message on."""
        return KillSwitch(self.forced_kill_switch, self.store.latest_switch(KILL_SWITCH))

    @property
    def kill_switch(self) -> bool:
        return self.forced_kill_switch or self.kill_switch_state().on

    @kill_switch.setter
    def kill_switch(self, on: bool) -> None:
        """Stands for the app setting (tests, a host that changes settings in place); the
        operator's switch in the store is set by reclaim.usecases.set_kill_switch."""
        self.forced_kill_switch = on


class InputError(ReclaimError):
    """A request names something reclaim does not know (unknown policy, user, request)."""

"""Context a use case runs in: the store, the queue, the outside systems, the policies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from reclaim.domain.policy import Policy
from reclaim.errors import ReclaimError
from reclaim.ports import (
    Campaign,
    Directory,
    Notifier,
    StateStore,
    UsageSource,
    WorkQueue,
)

# A worker that claimed a removal and died leaves it REMOVING; after this long another may take over.
CLAIM_TIMEOUT = timedelta(minutes=5)
# With the kill switch on, removal messages wait and come back this much later.
KILL_SWITCH_DELAY = timedelta(minutes=15)


class Adapters(Protocol):
    """Builds the outside systems a policy names (reclaim/wiring.py in production)."""

    def directory(self, policy: Policy) -> Directory: ...

    def usage_source(self, policy: Policy) -> UsageSource: ...

    def campaign(self, policy: Policy) -> Campaign: ...


@dataclass
class Context:
    store: StateStore
    queue: WorkQueue
    adapters: Adapters
    policies: Mapping[str, Policy]
    kill_switch: bool = False
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    notifier: Notifier | None = None  # the admin digest after each recorded run


class InputError(ReclaimError):
    """A request names something reclaim does not know (unknown policy, user, request)."""

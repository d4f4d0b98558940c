"""retention: what the store keeps grows with the work, not with the history.

Decision records of runs older than RECLAIM_RETENTION (Context.retention) are cut to the ones
that chose someone, and finished requests older than it are deleted (StateStore.compact); the
ledger, the runs and the answers are kept, so report and explain still tell the whole story.
The expiry tick applies it to each policy."""

from __future__ import annotations

from datetime import datetime

from reclaim.domain.policy import Policy
from reclaim.ports import Compaction
from reclaim.usecases.context import Context


def apply_retention(ctx: Context, policy: Policy, now: datetime) -> Compaction:
    return ctx.store.compact(policy.name, now - ctx.retention)

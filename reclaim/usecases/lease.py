"""One run per policy at a time: the lease a run, a scheduled run and the expiry tick take.

The lease is a row in the state store (SQLite) or an entity with an ETag (Table storage) holding
who has it and until when; taking it is a compare-and-set, so of overlapping callers one wins and
the others get PolicyBusy ("already running since ..."). A live holder renews its lease in the
background, so a run longer than LEASE_TTL (a CLI run against a throttling directory) keeps it;
a holder that crashed stops renewing and its lease lapses after LEASE_TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from reclaim.domain.records import Lease
from reclaim.errors import ReclaimError
from reclaim.usecases.context import Context

# Longer than a run takes (reads of a 100k-member group and its usage take minutes) and than the
# Functions host lets an invocation live (10 min Consumption, 30 min default elsewhere), so a live
# holder never loses it; short enough that a crashed run blocks its policy for half an hour at most.
LEASE_TTL = timedelta(minutes=30)
# Three renewals per TTL: one failed store call (an outage of minutes) does not lose the lease.
LEASE_RENEW_EVERY = LEASE_TTL / 3

log = logging.getLogger("reclaim")


class PolicyBusy(ReclaimError):
    """Another run (or expiry tick) of the same policy holds its lease."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        super().__init__(
            f"policy {lease.policy!r} is already running since "
            f"{lease.since:%Y-%m-%d %H:%M:%S} UTC ({lease.holder.split(':')[0]}); nothing was "
            f"done: try again when it has finished (its lease lapses at {lease.expires:%H:%M:%S} UTC)"
        )


@contextmanager
def policy_lease(ctx: Context, policy: str, now: datetime, purpose: str) -> Iterator[str]:
    """Hold the policy's lease for the block; raises PolicyBusy when someone else holds it."""
    holder = f"{purpose}:{uuid.uuid4().hex[:12]}:{socket.gethostname()}:{os.getpid()}"
    lease = ctx.store.take_lease(policy, holder, now, LEASE_TTL)
    if lease.holder != holder and _died_here(lease.holder):
        # Its holder was a process of this machine that is gone (a killed CLI): no need to
        # wait for the lease to lapse. Released by its holder's name only, so a lease someone
        # else took meanwhile stays theirs.
        ctx.store.release_lease(policy, lease.holder)
        lease = ctx.store.take_lease(policy, holder, now, LEASE_TTL)
    if lease.holder != holder:
        raise PolicyBusy(lease)
    renewal = _Renewal(ctx, policy, holder, now)
    try:
        yield holder
    finally:
        renewal.stop()  # before the release: a renewal after it would take the lease again
        ctx.store.release_lease(policy, holder)


class _Renewal:
    """Renews a held lease every LEASE_RENEW_EVERY until stopped. Its clock is the holder's
    `now` plus the time elapsed since, so a lease stays on the timeline of the run that holds it."""

    def __init__(self, ctx: Context, policy: str, holder: str, now: datetime) -> None:
        self._ctx, self._policy, self._holder = ctx, policy, holder
        self._taken_at, self._started = now, time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{policy}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stopped.wait(LEASE_RENEW_EVERY.total_seconds()):
            at = self._taken_at + timedelta(seconds=time.monotonic() - self._started)
            try:
                lease = self._ctx.store.take_lease(self._policy, self._holder, at, LEASE_TTL)
            except Exception as error:  # the store is down: the next renewal tries again
                log.warning("renewing the lease of %s failed: %s", self._policy, error)
                continue
            if lease.holder != self._holder:
                # Only after the store failed for a whole TTL: nothing more to renew.
                log.error("the lease of %s was lost to %s", self._policy, lease.holder)
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _died_here(holder: str) -> bool:
    """Whether the lease's holder names a process of this machine that no longer runs."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[2] != socket.gethostname() or not parts[3].isdigit():
        return False  # another machine (or an older holder): only its lease's end tells
    try:
        os.kill(int(parts[3]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process): alive
        return False
    return False

"""Which policies are due: each policy runs on its own NCRONTAB schedule, checked by a frequent timer.

The scheduler timer fires every few minutes; a policy is due when a time on its own schedule
has passed since the due time of its last run (its cursor in the store). Several missed due times
(the app was stopped for a week) give one run, not a catch-up burst. Schedules are read in UTC,
as the Functions host reads NCRONTAB unless WEBSITE_TIME_ZONE says otherwise.

Exactly one run per due time, even with overlapping ticks or several instances: the cursor moves
by compare-and-set (store.advance_schedule; an ETag-guarded update in Table storage) BEFORE the
run, and only the tick whose compare-and-set wins runs the policy. A run that halts is recorded
and not repeated for that due time. A run that raises is recorded (a HALTED run of mode
"scheduler", shown by `report`) and the cursor goes back, still under the lease, so the next
tick runs that due time again, up to SCHEDULED_RETRIES times; then the next due time runs. A
manual run is always available (CLI `run`, the admin route).
The tick takes the policy's run lease before the cursor: while a manual run or the expiry tick
holds it, the tick leaves the cursor alone (BUSY) and a later tick runs that due time.

First sight of a policy (no cursor: just deployed, or just added to the file) initialises the
cursor to the most recent due time WITHOUT running. Running at once would act at an arbitrary
moment (a deployment on Wednesday would enforce a "Mondays 06:00" policy on Wednesday), before
anyone chose to; waiting means the first scheduled run happens when the schedule says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from croniter import croniter

from reclaim import usecases
from reclaim.domain.policy import Policy
from reclaim.domain.records import SCHEDULER_MODE, RunRecord, RunStatus

log = logging.getLogger("reclaim.scheduling")

SCHEDULED_RETRIES = 3  # later ticks that run a due time again after its run raised


def latest_due(schedule: str, now: datetime) -> datetime:
    """The most recent time on `schedule` at or before `now` (UTC)."""
    start = now.astimezone(UTC) + timedelta(microseconds=1)  # get_prev is strictly before start
    return croniter(schedule, start, second_at_beginning=True).get_prev(datetime)


def due_time(schedule: str, last_due: datetime | None, now: datetime) -> datetime | None:
    """The due time to run for now, or None when nothing came due after `last_due`.

    With no `last_due` it is the most recent due time, which run_due_policies uses to initialise
    the cursor, not to run (see the module's note)."""
    latest = latest_due(schedule, now)
    if last_due is not None and latest <= last_due:
        return None
    return latest


class TickResult(StrEnum):
    RAN = "ran"
    INITIALISED = "initialised"  # first sight: cursor set to the latest due time, not run
    NOT_DUE = "not-due"
    TAKEN = "taken"  # another tick or instance won this due time
    BUSY = "busy"  # another run of the policy holds its lease; a later tick runs this due time
    FAILED = "failed"  # the run raised; recorded, and retried by the next tick (bounded)


@dataclass(frozen=True)
class PolicyTick:
    policy: str
    result: TickResult
    due: datetime | None = None
    outcome: usecases.RunOutcome | None = None
    error: str = ""


@dataclass(frozen=True)
class SchedulerReport:
    ticks: list[PolicyTick] = field(default_factory=list)

    def count(self, result: TickResult) -> int:
        return sum(1 for t in self.ticks if t.result is result)

    @property
    def failed(self) -> list[PolicyTick]:
        return [t for t in self.ticks if t.result is TickResult.FAILED]


def run_due_policies(ctx: usecases.Context, now: datetime) -> SchedulerReport:
    """Run every policy that came due since its last run, each at most once per due time."""
    ticks: list[PolicyTick] = []
    for policy in ctx.policies.values():
        last = ctx.store.schedule_cursor(policy.name)
        due = due_time(policy.schedule, last, now)
        if due is None:
            ticks.append(PolicyTick(policy.name, TickResult.NOT_DUE))
            continue
        try:
            with usecases.policy_lease(ctx, policy.name, now, "scheduler"):
                ticks.append(_tick(ctx, policy, last, due, now))
        except usecases.PolicyBusy as busy:
            # Not advanced: the due time is run by a later tick, once the other run is done.
            log.info("scheduled run of %s waits: %s", policy.name, busy)
            ticks.append(PolicyTick(policy.name, TickResult.BUSY, due, error=str(busy)))
    return SchedulerReport(ticks)


def _tick(
    ctx: usecases.Context, policy: Policy, last: datetime | None, due: datetime, now: datetime
) -> PolicyTick:
    """One policy's turn, holding its lease: advance the cursor, then run."""
    if not ctx.store.advance_schedule(policy.name, last, due):
        return PolicyTick(policy.name, TickResult.TAKEN, due)
    if last is None:
        log.info("policy %s first seen: its schedule starts after %s", policy.name, due.isoformat())
        return PolicyTick(policy.name, TickResult.INITIALISED, due)
    try:
        outcome = usecases.run_policy(ctx, policy, now, leased=True)
    except Exception as error:  # one failing policy must not stop the others
        log.exception("scheduled run of %s (due %s) failed", policy.name, due.isoformat())
        why = f"{type(error).__name__}: {error}"
        return PolicyTick(
            policy.name, TickResult.FAILED, due, error=_failed(ctx, policy, last, due, why, now)
        )
    log.info(
        "scheduled run of %s (due %s): %s, %d asked, %d queued",
        policy.name,
        due.isoformat(),
        outcome.run.status.value,
        outcome.run.asked,
        outcome.run.enqueued,
    )
    return PolicyTick(policy.name, TickResult.RAN, due, outcome)


def _failed(
    ctx: usecases.Context, policy: Policy, last: datetime, due: datetime, why: str, now: datetime
) -> str:
    """Record a run that raised, and give its due time back to the next tick unless it failed
    SCHEDULED_RETRIES times already (the recorded failures are the count). What happened."""
    tries = 1 + sum(
        1
        for r in ctx.store.runs(policy=policy.name)
        if r.mode == SCHEDULER_MODE and r.started_at >= due
    )
    again = tries <= SCHEDULED_RETRIES
    then = "the next scheduler tick runs it again" if again else "the next due time runs"
    what = f"{why} (try {tries}; {then})"
    try:
        record = RunRecord(
            ctx.new_id(), policy.name, SCHEDULER_MODE, now, RunStatus.HALTED,
            halt_check="scheduled-run",
            halt_reason=f"the run due {due:%Y-%m-%d %H:%M} UTC failed: {what}",
        )  # fmt: skip
        ctx.store.record_run(record, [], None)
        if again and not ctx.store.advance_schedule(policy.name, due, last):
            what += "; the cursor had moved on: not retried"
    except Exception:  # the store failing too: the cursor stays where it is (at most once)
        log.exception("recording the failed run of %s failed", policy.name)
    return what

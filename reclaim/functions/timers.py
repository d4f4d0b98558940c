"""The two timers: the scheduler (which policies are due) and the expiry (deadlines, answers).

Schedules are app settings (RECLAIM_SCHEDULER_SCHEDULE, RECLAIM_EXPIRY_SCHEDULE; NCRONTAB, six
fields). use_monitor keeps the host's schedule status in storage, so a tick missed while the app
was down still fires once (as past_due) after a restart; run_on_startup is off, so a restart or
scale-out never adds a tick of its own. Overlapping ticks are harmless: the scheduler's cursor
compare-and-set lets one tick run each due time, and the expiry tick releases a policy's due
removals only while holding the policy's run lease (usecases/release.py).
"""

from __future__ import annotations

import logging

import azure.functions as func

from reclaim import scheduling, usecases
from reclaim.functions import app_context

log = logging.getLogger("reclaim.functions.timers")

bp = func.Blueprint()


@bp.function_name("scheduler")
@bp.timer_trigger(
    arg_name="timer",
    schedule="%RECLAIM_SCHEDULER_SCHEDULE%",
    run_on_startup=False,
    use_monitor=True,
)
def scheduler(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("scheduler tick is late (past due): running the policies that are due now")
    app = app_context.current()
    report = scheduling.run_due_policies(app.ctx, app.now())
    if report.failed:
        # The invocation shows as failed; the other policies ran, and each failure was logged.
        failures = "; ".join(f"{t.policy}: {t.error}" for t in report.failed)
        raise RuntimeError(f"scheduled runs failed: {failures}")


@bp.function_name("expiry")
@bp.timer_trigger(
    arg_name="timer",
    schedule="%RECLAIM_EXPIRY_SCHEDULE%",
    run_on_startup=False,
    use_monitor=True,
)
def expiry(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("expiry tick is late (past due): applying the deadlines that passed")
    app = app_context.current()
    report = usecases.expire_requests(app.ctx, app.now())
    log.info(
        "expiry: %d answers pulled, %d queued, %d lapsed, %d cancelled on re-decision, %d held, "
        "%d remote actions settled",
        report.answers_pulled,
        report.queued,
        report.lapsed,
        report.cancelled,
        report.held,
        report.finished,
    )
    for halt in report.halted:
        log.warning("expiry releases halted: %s", halt)

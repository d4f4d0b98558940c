"""send_notices: tell the user the removal date before a decided removal (policy.notice).

A removal decided while the policy gives notice does not become DUE at once: the request waits
in NOTICE (removal_decided: a "no" in record_answer, silence past the deadline here, an
approver's release). Each expiry tick then, for the policy's NOTICE requests:
- sends the notice of each one not told yet through the campaign's channel
  (ports.NoticeChannel.notify), with the date `now + notice.period`; once the channel confirms
  delivery the date is in the ledger (NOTICE_SENT) and on the request (not_before);
- records a delivery the channel refused or could not make as NOTICE_FAILED (once per reason)
  and sends it again on the next tick, with a date counted from that delivery: a failure never
  shortens the period. Still undelivered after limits.max_wait, the request is CANCELLED: never
  removed without a notice; the next run judges the user afresh;
- moves each one whose date has passed to DUE: release_due re-decides it on fresh data and
  releases it within the caps and the rate, like every due removal (DESIGN §8).
While the kill switch is on, notices wait unsent, as asks and reminders do.

Overlapping ticks: a delivery is claimed first by a compare-and-set on the request's version
(NOTICE -> NOTICE), and its outcome stored by another on the claimed version. Two deliveries of
one request overlap only when a delivery outlives the start of the next tick; then only the later
claim's date, the later date, is stored: she may be told twice, never a date earlier than the
one that counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.notice import Notice, notice_from
from reclaim.domain.policy import OnNoResponse, Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ReclaimError
from reclaim.ports import AskResult, NoticeChannel
from reclaim.usecases.bookkeeping import cancel, ledger
from reclaim.usecases.context import Context
from reclaim.usecases.release import due_since

log = logging.getLogger("reclaim")


@dataclass(frozen=True)
class NoticeReport:
    sent: int = 0  # notices delivered
    failed: int = 0  # deliveries refused or failed: sent again by the next tick
    ended: int = 0  # notices whose date has passed: DUE, re-decided by this tick
    cancelled: int = 0  # undelivered for longer than limits.max_wait


def removal_decided(
    ctx: Context, policy: Policy, request: Request, reason: QueueReason, why: str, now: datetime
) -> bool:
    """The removal of an open, not yet released request is decided (`why`, in words): NOTICE
    when the policy gives notice, else DUE, released by the next expiry tick. Either way it
    remembers when (in `deadline`, which due_since reads). False when another writer moved it."""
    if policy.notice is not None:
        moved = transition(
            request,
            RequestState.NOTICE,
            now,
            detail=f"{why}; the notice goes out with the next expiry tick",
            queue_reason=reason,
        )
    else:
        moved = transition(
            request,
            RequestState.DUE,
            now,
            detail=f"{why}; released by the next expiry tick",
            queue_reason=reason,
        )
    return ctx.store.update_request(replace(moved, deadline=now))


def send_notices(ctx: Context, policy: Policy, now: datetime) -> NoticeReport:
    """Start the notice of the silent past their deadline, send the notices not delivered yet,
    and make DUE the requests whose notice date has passed."""
    if policy.notice is not None and policy.campaign.on_no_response is OnNoResponse.RECLAIM:
        for request in ctx.store.requests(policy.name, [RequestState.PENDING]):
            if request.deadline is not None and request.deadline <= now:
                reason = QueueReason.NO_RESPONSE
                removal_decided(ctx, policy, request, reason, "no answer by the deadline", now)
    ended = cancelled = 0
    claimed: list[Request] = []
    for request in ctx.store.requests(policy.name, [RequestState.NOTICE]):
        if request.not_before is not None or policy.notice is None:
            # Told, and the date has come; or the policy gives no notice any more, and an
            # untold request has no date to wait for.
            if request.not_before is None or request.not_before <= now:
                ended += _end(ctx, request, now)
            continue
        since = due_since(request)
        if now - since > policy.limits.max_wait:
            cancelled += cancel(
                ctx,
                request,
                f"notice not delivered since {since:%Y-%m-%d %H:%M} UTC, longer than "
                f"limits.max_wait {format_duration(policy.limits.max_wait)}: not removed "
                "without notice; the next run judges the user afresh",
                now,
            )
            continue
        if ctx.kill_switch and policy.enforcing:
            continue  # nothing is told while it is on; the notice goes out once it is off
        claim = transition(request, RequestState.NOTICE, now)
        if ctx.store.update_request(claim):
            claimed.append(claim)
    if not claimed or policy.notice is None:
        return NoticeReport(ended=ended, cancelled=cancelled)
    period = policy.notice.period
    notices = [(r, notice_from(policy.application, period, now)) for r in claimed]
    result = _deliver(ctx, policy, notices, now)
    sent = failed = 0
    for request, notice in notices:
        if request.id in result.asked:
            sent += _told(ctx, policy, request, notice, now)
        else:
            why = result.not_asked.get(request.id, "the channel gave no result")
            failed += _not_told(ctx, request, why, now)
    return NoticeReport(sent, failed, ended, cancelled)


def _deliver(
    ctx: Context, policy: Policy, notices: list[tuple[Request, Notice]], now: datetime
) -> AskResult:
    channel = ctx.adapters.campaign(policy)
    try:
        if not hasattr(channel, "notify"):  # validation refuses such a policy; a guard all the same
            return AskResult(
                not_asked={
                    r.id: f"channel {policy.campaign.channel.value} cannot deliver a notice"
                    for r, _ in notices
                }
            )
        return cast(NoticeChannel, channel).notify(policy, notices, now)
    except ReclaimError as error:
        log.warning("notices of %s not delivered: %s", policy.name, error)
        return AskResult(not_asked={r.id: f"not delivered: {error}" for r, _ in notices})


def _told(ctx: Context, policy: Policy, request: Request, notice: Notice, now: datetime) -> int:
    """Delivered: in the ledger first (it happened, whoever stores the date), then its date."""
    told = f"{notice.describe()}, told through {policy.campaign.channel.value}"
    entry_id = f"{request.id}:{LedgerOutcome.NOTICE_SENT.value}:{request.version}"
    ledger(ctx, request, LedgerOutcome.NOTICE_SENT, now, told, entry_id=entry_id)
    dated = transition(request, RequestState.NOTICE, now, detail=f"notice sent: {told}")
    if not ctx.store.update_request(replace(dated, not_before=notice.remove_after)):
        log.info("notice of request %s: a later delivery's date counts", request.id)
    return 1


def _not_told(ctx: Context, request: Request, why: str, now: datetime) -> int:
    """Not delivered: the claim stays as it is, undated, so the next tick sends it again; a
    reason not recorded before goes on the request and into the ledger."""
    detail = f"notice not delivered: {why}; sent again by the next expiry tick"
    if request.detail != detail:
        failed = transition(request, RequestState.NOTICE, now, detail=detail)
        if ctx.store.update_request(failed):
            entry_id = f"{request.id}:{LedgerOutcome.NOTICE_FAILED.value}:{failed.version}"
            ledger(ctx, failed, LedgerOutcome.NOTICE_FAILED, now, why, entry_id=entry_id)
    return 1


def _end(ctx: Context, request: Request, now: datetime) -> int:
    """The notice is over: DUE, due since its date (limits.max_wait counts from there)."""
    told = request.not_before
    detail = (
        f"notice over ({told:%Y-%m-%d %H:%M} UTC): re-decided before release"
        if told is not None
        else "the policy gives no notice any more: re-decided before release"
    )
    due = transition(request, RequestState.DUE, now, detail=detail)
    return int(ctx.store.update_request(replace(due, deadline=told or now)))

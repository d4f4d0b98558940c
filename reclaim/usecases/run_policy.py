"""run_policy: select, check the guardrails, then ask or enqueue (enforce mode)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from reclaim.domain.guardrails import Halt
from reclaim.domain.history import run_history
from reclaim.domain.lifecycle import QueueReason, Request, RequestState
from reclaim.domain.policy import Policy
from reclaim.domain.records import (
    DecisionRecord,
    LedgerOutcome,
    RunRecord,
    RunStatus,
)
from reclaim.domain.selection import Decision, DecisionKind, count_by_kind, evaluated
from reclaim.errors import ReclaimError
from reclaim.usecases.bookkeeping import cancel, each, ledger
from reclaim.usecases.context import Context
from reclaim.usecases.decide import Assessment, assess
from reclaim.usecases.lease import policy_lease
from reclaim.usecases.own_writes import settle_own_write
from reclaim.usecases.release import release_new

log = logging.getLogger("reclaim")


@dataclass(frozen=True)
class RunOutcome:
    run: RunRecord
    decisions: list[Decision]
    halt: Halt | None = None
    not_asked: dict[str, str] = field(default_factory=dict)  # user label -> why
    held: int = 0  # removals held back by the rolling rate (DUE; a later tick releases them)

    @property
    def halted(self) -> bool:
        return self.halt is not None


def run_policy(
    ctx: Context,
    policy: Policy,
    now: datetime,
    *,
    read_only: bool = False,
    trigger: str = "run",
    leased: bool = False,
) -> RunOutcome:
    """Select, check the guardrails, then (enforce mode) ask or enqueue. `read_only` is `plan`:
    nothing is written. A dry-run policy records the run, its decisions and the snapshot only.
    A recorded run is followed by the admin digest, when one is configured.

    A run that writes holds the policy's lease (PolicyBusy when another holds it), unless the
    caller says it holds it already (`leased`, the scheduler); `trigger` names the holder."""
    if read_only or leased:
        outcome = _run_policy(ctx, policy, now, read_only=read_only)
    else:
        with policy_lease(ctx, policy.name, now, trigger):
            outcome = _run_policy(ctx, policy, now, read_only=read_only)
    if not read_only and ctx.notifier is not None:
        try:
            ctx.notifier.notify(digest(ctx, policy, outcome))
        except ReclaimError as error:  # the run is done; a lost digest must not undo it
            log.warning("admin digest for %s not sent: %s", policy.name, error)
    return outcome


def digest(ctx: Context, policy: Policy, outcome: RunOutcome) -> str:
    """Counts, the halt reason, and removals that failed since the policy's previous run."""
    run = outcome.run
    counts = ", ".join(f"{kind} {n}" for kind, n in run.counts.items() if n)
    lines = [f"reclaim: {policy.name} ({policy.application}, {run.mode}) {run.status.value}"]
    lines.append(f"{run.members} members: {counts or 'none'}")
    if outcome.halt is not None:
        lines.append(f"HALTED by {outcome.halt.check}: {outcome.halt.reason}")
    if run.asked or run.enqueued:
        lines.append(f"asked {run.asked}, removals queued {run.enqueued}")
    earlier = [r.started_at for r in ctx.store.runs(policy=policy.name) if r.id != run.id]
    since = max(earlier, default=None)
    failures = [
        e for e in ctx.store.ledger(since, policy.name) if e.outcome is LedgerOutcome.FAILED
    ]
    if failures:
        lines.append(f"{len(failures)} removal(s) failed since the previous run:")
        lines += [f"- {e.user.label}: {e.detail}" for e in failures[:10]]
    return "\n".join(lines)


def _run_policy(ctx: Context, policy: Policy, now: datetime, *, read_only: bool) -> RunOutcome:
    run_id = ctx.new_id()
    assessment = assess(ctx, policy, now, kill_switch=ctx.kill_switch and policy.enforcing)

    def halted(check: str, reason: str, decisions: list[Decision], snapshot: bool) -> RunOutcome:
        halt = Halt(check, reason)
        run = _run_record(run_id, policy, now, RunStatus.HALTED, decisions, halt=halt)
        if not read_only:
            _record(ctx, policy, run, decisions, assessment, snapshot=snapshot)
            log.warning("run of %s halted by %s: %s", policy.name, check, reason)
        return RunOutcome(run, decisions, halt)

    decisions = assessment.decisions
    if assessment.halt is not None:
        halt = assessment.halt
        return halted(halt.check, halt.reason, decisions, snapshot=assessment.read)
    if read_only or not policy.enforcing:
        run = _run_record(run_id, policy, now, RunStatus.PLANNED, decisions)
        if not read_only:
            _record(ctx, policy, run, decisions, assessment)
        return RunOutcome(run, decisions)

    superseded = _cancel_stale_requests(ctx, policy, decisions, now)
    chosen = [d for d in decisions if d.kind is DecisionKind.CANDIDATE]
    requests = [_new_request(ctx, policy, run_id, d, now) for d in chosen]
    # Leavers the policy reclaims, unless a removal of theirs is already on its way.
    leavers = [
        _new_request(ctx, policy, run_id, d, now, asking=False)
        for d in decisions
        if d.without_asking and d.evidence.request_id in ("", *superseded)
    ]
    asked, enqueued, held = 0, 0, 0
    not_asked: dict[str, str] = {}
    if policy.ask_permission:
        try:
            asked, not_asked = _ask(ctx, policy, requests, now)
        except ReclaimError as error:
            return halted("campaign", f"campaign: {error}", decisions, snapshot=True)
        requests = []
    if leavers:
        enqueued, held = release_new(ctx, policy, leavers, now, QueueReason.DISABLED)
    if requests:
        released, waiting = release_new(ctx, policy, requests, now)
        enqueued, held = enqueued + released, held + waiting
    run = _run_record(
        run_id, policy, now, RunStatus.COMPLETED, decisions, asked=asked, enqueued=enqueued
    )
    _record(ctx, policy, run, decisions, assessment)
    return RunOutcome(run, decisions, not_asked=not_asked, held=held)


def _record(
    ctx: Context,
    policy: Policy,
    run: RunRecord,
    decisions: list[Decision],
    assessment: Assessment,
    *,
    snapshot: bool = True,
) -> None:
    """The run, its decisions and snapshot, and (when the run read the directory and the
    usage) its history, what `simulate` replays: one commit on SQLite."""
    usage, state = assessment.usage, assessment.state
    with ctx.store.atomic():
        ctx.store.record_run(
            run, _decision_records(run, decisions), _snapshot(decisions) if snapshot else None
        )
        if usage is not None and state is not None:
            history = run_history(
                run.id, policy, run.started_at, assessment.members, usage, state,
                assessment.decisions, kill_switch=run.halt_check == "kill_switch",
            )  # fmt: skip
            ctx.store.record_history(history)


def _snapshot(decisions: Sequence[Decision]) -> list[str]:
    return [d.state_key for d in evaluated(decisions) if d.state_key]


def _run_record(
    run_id: str,
    policy: Policy,
    now: datetime,
    status: RunStatus,
    decisions: Sequence[Decision],
    *,
    halt: Halt | None = None,
    asked: int = 0,
    enqueued: int = 0,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        policy=policy.name,
        mode=policy.mode.value,
        started_at=now,
        status=status,
        members=len(decisions),
        counts={k.value: n for k, n in count_by_kind(decisions).items()},
        asked=asked,
        enqueued=enqueued,
        halt_check=halt.check if halt else "",
        halt_reason=halt.reason if halt else "",
    )


def _decision_records(run: RunRecord, decisions: Sequence[Decision]) -> list[DecisionRecord]:
    return [
        DecisionRecord(
            run.id,
            run.policy,
            d.state_key,
            d.member.user,
            d.kind.value,
            d.reason,
            d.evidence.to_dict(),
        )
        for d in decisions
    ]


def _new_request(
    ctx: Context,
    policy: Policy,
    run_id: str,
    decision: Decision,
    now: datetime,
    *,
    asking: bool = True,
) -> Request:
    return Request(
        id=ctx.new_id(),
        policy=policy.name,
        group=policy.directory.group,
        user=decision.member.user,
        state_key=decision.state_key,
        run_id=run_id,
        state=RequestState.PENDING,
        created_at=now,
        updated_at=now,
        deadline=now + policy.campaign.respond_within if asking and policy.ask_permission else None,
        reason=decision.reason,
    )


def _ask(
    ctx: Context, policy: Policy, requests: list[Request], now: datetime
) -> tuple[int, dict[str, str]]:
    if not requests:
        return 0, {}
    result = ctx.adapters.campaign(policy).ask(policy, requests)

    def store(request: Request) -> str | None:
        """Stores the request; why it was not asked, or None when it was."""
        if request.id in result.asked:
            stored = replace(request, detail=result.asked[request.id])
            ctx.store.add_request(stored)
            ledger(
                ctx,
                stored,
                LedgerOutcome.ASKED,
                now,
                f"{policy.campaign.channel.value}: {stored.detail}",
            )
            return None
        # Never assume asked: no open request, so the next run selects the user again.
        why = result.not_asked.get(request.id, "the channel did not confirm the ask")
        ctx.store.add_request(
            replace(request, state=RequestState.CANCELLED, detail=f"not asked: {why}")
        )
        ledger(ctx, request, LedgerOutcome.NOT_ASKED, now, why)
        return why

    with ctx.store.atomic():  # what the channel said, recorded in one commit on SQLite
        reasons = each(ctx, requests, store)
    not_asked = {
        request.user.label: why for request, why in zip(requests, reasons, strict=True) if why
    }
    return len(requests) - len(not_asked), not_asked


def _cancel_stale_requests(
    ctx: Context, policy: Policy, decisions: Sequence[Decision], now: datetime
) -> set[str]:
    """Open requests of users who became active, were excluded or left the group are cancelled,
    and so are those of disabled accounts: kept ones, and asks (a leaver the policy reclaims is
    released without asking instead); one that left after a write of ours whose answer never
    came was removed by it. Returns the ids of the cancelled requests."""
    by_key = {d.state_key: d for d in decisions}
    open_states = [
        RequestState.PENDING,
        RequestState.AWAITING_APPROVAL,
        RequestState.NOTICE,
        RequestState.DUE,
        RequestState.QUEUED,
    ]
    cancelled: set[str] = set()
    for stored in ctx.store.requests(policy.name, open_states):
        decision = by_key.get(stored.state_key)
        request = settle_own_write(ctx, stored, decision, now, "found by the next run")
        if request is None:
            continue
        if decision is None:
            why = "left the group"
        elif decision.kind in (DecisionKind.ACTIVE, DecisionKind.EXCLUDED, DecisionKind.NESTED):
            why = f"{decision.kind.value.lower()}: {decision.reason}"
        elif decision.kind is DecisionKind.DISABLED and (
            not decision.without_asking or request.state is RequestState.PENDING
        ):
            why = f"disabled: {decision.reason}"
        else:
            continue
        if cancel(ctx, request, why, now):
            cancelled.add(request.id)
    return cancelled

"""restore: re-add removed users."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.model import Answer, AnswerValue
from reclaim.domain.records import (
    LedgerOutcome,
)
from reclaim.errors import ReclaimError
from reclaim.ports import (
    AddOutcome,
    Directory,
)
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context, InputError


@dataclass(frozen=True)
class RestoreCommand:
    policy: str
    user: str = ""  # any identifier: UPN, mail, sAMAccountName, SID, object id
    run_id: str = ""  # or every removal of one run
    by: str = "an administrator"  # who restores, for the ledger (the user herself: an appeal)


@dataclass(frozen=True)
class RestoreReport:
    restored: list[str] = field(default_factory=list)
    already_member: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def restore(ctx: Context, command: RestoreCommand, now: datetime) -> RestoreReport:
    """Re-add removed users; a restore also counts as a "yes", so the next run keeps them."""
    policy = ctx.policies.get(command.policy)
    if policy is None:
        raise InputError(f"unknown policy {command.policy!r}")
    if bool(command.user) == bool(command.run_id):
        raise InputError("give either a user or a run id to restore")
    removed = ctx.store.requests(policy.name, [RequestState.REMOVED])
    if command.user:
        removed = [r for r in removed if r.user.matches(command.user)][-1:]
        if not removed:
            raise InputError(f"no removal of {command.user!r} under {policy.name!r} to restore")
    else:
        removed = [r for r in removed if r.run_id == command.run_id]
        if not removed:
            raise InputError(
                f"no removal in run {command.run_id!r} under {policy.name!r} to restore"
            )
    directory = ctx.adapters.directory(policy)
    report = RestoreReport()
    for request, outcome, error in _add_back(directory, removed):
        if error is not None or outcome is None:
            report.failed[request.user.label] = str(error)
            continue
        restored = transition(request, RequestState.RESTORED, now, detail=outcome.value)
        if ctx.store.update_request(restored):
            ledger_outcome = (
                LedgerOutcome.RESTORED
                if outcome is AddOutcome.ADDED
                else LedgerOutcome.ALREADY_MEMBER
            )
            ledger(ctx, restored, ledger_outcome, now, f"restored by {command.by}")
            ctx.store.record_answer(
                policy.name, request.state_key, Answer(request.id, AnswerValue.YES, now, "restore")
            )
        (report.restored if outcome is AddOutcome.ADDED else report.already_member).append(
            request.user.label
        )
    return report


def _add_back(
    directory: Directory, requests: list[Request]
) -> list[tuple[Request, AddOutcome | None, ReclaimError | None]]:
    """Re-add users: in bulk where the directory batches (Graph $batch), else one at a time."""
    add_many = getattr(directory, "add_many", None)
    if add_many is not None and len(requests) > 1:
        # One group per policy, so one call; results come back in input order.
        outcomes = add_many(requests[0].group, [r.user for r in requests])
        return [(r, o.outcome, o.error) for r, o in zip(requests, outcomes, strict=True)]
    results: list[tuple[Request, AddOutcome | None, ReclaimError | None]] = []
    for request in requests:
        try:
            added = directory.add(request.group, request.user, removed=request.detail)
            results.append((request, added, None))
        except ReclaimError as error:
            results.append((request, None, error))
    return results

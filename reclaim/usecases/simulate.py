"""simulate: a proposed policy replayed over the policy's recorded runs (reclaim.domain.simulation).

Read-only: it reads the runs, their histories and the ledger, and writes nothing. A proposal is
the policy as the policies file has it, with --threshold and --new-member-grace applied; a
different look-back is refused, since no run keeps use per day (`lookback_unavailable` says why
for the policy's source).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reclaim.domain.durations import format_duration, parse_duration
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.domain.simulation import CameBack, Event, Period, Simulation, simulate
from reclaim.domain.usage_text import amount_text
from reclaim.domain.what_if import lookback_unavailable
from reclaim.usecases.context import Context, InputError


@dataclass(frozen=True)
class SimulateCommand:
    policy: Policy  # as the policies file has it
    since: timedelta
    period: Period = Period.MONTH
    threshold: str | None = None  # as written: "10m", or a number of sign-ins
    lookback: str | None = None
    new_member_grace: str | None = None


@dataclass(frozen=True)
class SimulationReport:
    proposal: Policy
    since: datetime
    simulation: Simulation
    changed: dict[str, tuple[str, str]]  # setting -> (the file's, the proposal's)
    runs: int  # recorded runs in the window
    without_history: int  # of which no history was kept: not replayed
    notes: tuple[str, ...] = ()


def proposal(command: SimulateCommand) -> tuple[Policy, dict[str, tuple[str, str]]]:
    """The policy with the command's overrides, and what changed; InputError when one cannot
    be replayed."""
    policy = command.policy
    spec = policy.usage
    changed: dict[str, tuple[str, str]] = {}
    if command.lookback is not None:
        raise InputError(
            "--lookback cannot be replayed: the recorded runs keep each member's use over the "
            f"look-back they read, not use per day, because {lookback_unavailable(policy)}"
        )
    if command.threshold is not None:
        if spec.by_recency:
            raise InputError(
                f"--threshold: {spec.source.value} judges by usage.inactive_for, not a threshold"
            )
        threshold = _threshold(command.threshold, policy)
        changed["threshold"] = (amount_text(spec.threshold, policy), amount_text(threshold, policy))
        policy = replace(policy, usage=replace(spec, threshold=threshold))
    if command.new_member_grace is not None:
        grace = _duration("--new-member-grace", command.new_member_grace)
        changed["new_member_grace"] = (
            format_duration(policy.new_member_grace),
            format_duration(grace),
        )
        policy = replace(policy, new_member_grace=grace)
    return policy, changed


def simulate_policy(ctx: Context, command: SimulateCommand, now: datetime) -> SimulationReport:
    policy, changed = proposal(command)
    since = now - command.since
    histories = ctx.store.histories(policy.name, since)
    runs = ctx.store.runs(since, policy.name)
    kept = {h.run_id for h in histories}
    match_on = policy.usage.match_on
    events = []
    for entry in ctx.store.ledger(since, policy.name):
        if entry.outcome in (LedgerOutcome.RESTORED, LedgerOutcome.APPEALED):
            why = CameBack(entry.outcome.value.lower())
            events.append(Event(entry.user.state_key(match_on), entry.at, why))
        elif entry.outcome is LedgerOutcome.ANSWERED and entry.detail.startswith("yes"):
            events.append(Event(entry.user.state_key(match_on), entry.at, CameBack.ANSWERED_YES))
    notes = []
    other = sorted({h.lookback for h in histories if h.lookback != policy.usage.lookback})
    if other:
        notes.append(
            f"runs recorded with usage.lookback {', '.join(map(format_duration, other))}: their "
            f"use is over that window, not the policy's {format_duration(policy.usage.lookback)}"
        )
    simulation = simulate(histories, policy, since, command.period, events)
    if simulation.open_asks:
        notes.append(
            f"{simulation.open_asks} ask(s) would still be open at the newest recorded run "
            "(not counted as removals)"
        )
    without = sum(1 for r in runs if r.id not in kept)
    if without:
        notes.append(
            f"{without} recorded run(s) in the window kept no history (halted before the "
            "directory and the usage were read, or recorded before histories were kept): "
            "not replayed"
        )
    return SimulationReport(policy, since, simulation, changed, len(runs), without, tuple(notes))


def _duration(option: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InputError(f"{option}: {error}") from None


def _threshold(text: str, policy: Policy) -> float:
    if policy.usage.counts_sign_ins:
        try:
            count = float(text)
        except ValueError:
            count = -1.0
        if count < 0 or count != int(count):
            raise InputError(f"--threshold: expected a whole number of sign-ins, got {text!r}")
        return count
    return _duration("--threshold", text).total_seconds() / 60

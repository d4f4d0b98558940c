"""Simulation: a proposed policy replayed over the recorded runs, and how many of its removals
would have come back (the regret rate).

Each recorded run is judged again under the proposal (`history.replay_run`, the same
`selection.decide`), its caps and data checks by the same `guardrails.check` a real run calls.
What the simulation itself would have changed is carried forward from run to run:

- a run the guardrails halt asks and removes no one;
- a candidate is asked when the policy asks (campaign.respond_within): a recorded "yes" inside
  that window keeps her, a run inside it that finds her ACTIVE cancels the ask, and otherwise
  campaign.on_no_response decides at the deadline (reclaim: removed then; keep: lapsed). While
  an ask is open she is PENDING, not asked again. Without asking, a candidate is removed at the
  run, and so is a leaver the policy reclaims (disabled_accounts: reclaim);
- a removed member leaves the group: later runs no longer judge her or count her for the caps.

A removal *comes back* when, after it, she is restored (ledger RESTORED), appeals (APPEALED: she
took it back through the answer page), answers "yes, I still need it", or a later recorded run
finds her use at or above the proposal's threshold (ACTIVE under the proposal); an appeal, which
is also a restore, counts as the appeal. The regret rate of a set of removals is the
number that came back divided by the number of removals; a period's removals are the ones
decided by its runs. The latest periods have had less time to come back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from reclaim.domain import guardrails
from reclaim.domain.history import RunHistory, replay_run, replaying
from reclaim.domain.policy import OnNoResponse, Policy
from reclaim.domain.selection import Decision, DecisionKind, removes


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"

    def label(self, at: datetime) -> str:
        if self is Period.MONTH:
            return f"{at:%Y-%m}"
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"


class CameBack(StrEnum):
    RESTORED = "restored"
    APPEALED = "appealed"  # took it back herself through the answer page (appeal_within)
    ANSWERED_YES = "answered yes"
    ACTIVE_AGAIN = "active again"


@dataclass(frozen=True, slots=True)
class Removal:
    key: str  # the member's state key
    run_id: str  # the run that decided it
    decided_at: datetime
    removed_at: datetime  # the run's time, or the ask's deadline
    asked: bool
    came_back: CameBack | None = None
    came_back_at: datetime | None = None


@dataclass
class PeriodResult:
    label: str
    runs: int = 0  # recorded runs replayed in the period
    asked: int = 0
    removals: int = 0
    came_back: int = 0
    halts: dict[str, int] = field(default_factory=dict)  # guardrail -> runs it would halt
    back_by: dict[str, int] = field(default_factory=dict)  # CameBack -> removals

    @property
    def regret_rate(self) -> float | None:
        return self.came_back / self.removals if self.removals else None


@dataclass(frozen=True)
class Simulation:
    policy: str
    periods: list[PeriodResult]
    removals: list[Removal]
    open_asks: int  # asks whose deadline is after the newest recorded run (no outcome yet)

    @property
    def total_removals(self) -> int:
        return len(self.removals)

    @property
    def total_came_back(self) -> int:
        return sum(1 for r in self.removals if r.came_back is not None)

    @property
    def regret_rate(self) -> float | None:
        return self.total_came_back / self.total_removals if self.removals else None


@dataclass(frozen=True, slots=True)
class Event:
    """A fact about a member from outside the runs: a restore or an answer in the ledger."""

    key: str
    at: datetime
    came_back: CameBack


@dataclass
class _Ask:
    run_id: str
    at: datetime
    deadline: datetime


def simulate(
    histories: Sequence[RunHistory],
    policy: Policy,
    since: datetime,
    period: Period,
    events: Sequence[Event] = (),
) -> Simulation:
    """Replay `policy` over the runs that started at or after `since` (in time order); the runs
    before it only tell what members answered, and `events` (restores and answers from the
    ledger) and the later runs whether a removal came back."""
    ordered = sorted(histories, key=lambda h: (h.started_at, h.run_id))
    yes_at = _yes_times(ordered, events)
    periods: dict[str, PeriodResult] = {}
    removals: dict[str, Removal] = {}
    active_again: dict[str, datetime] = {}  # state key -> the first run after her removal
    asks: dict[str, _Ask] = {}

    def remove(key: str, run_id: str, at: datetime, removed_at: datetime, asked: bool) -> None:
        removals[key] = Removal(key, run_id, at, removed_at, asked)
        periods[period.label(at)].removals += 1

    for history in ordered:
        now = history.started_at
        decisions = replay_run(history, policy)
        for decision in decisions:
            removal = removals.get(decision.state_key)
            active = decision.kind is DecisionKind.ACTIVE
            if active and removal is not None and now > removal.removed_at:
                active_again.setdefault(removal.key, now)
        if now < since:
            continue
        result = periods.setdefault(period.label(now), PeriodResult(period.label(now)))
        result.runs += 1
        by_key = {d.state_key: d for d in decisions}
        for key, ask in list(asks.items()):
            outcome = _settle(ask, key, by_key.get(key), now, yes_at, policy)
            if outcome is not None:
                del asks[key]
                if outcome:
                    remove(key, ask.run_id, ask.at, ask.deadline, True)
        judged = [
            _pending(d) if d.state_key in asks else d
            for d in decisions
            if d.state_key not in removals or removals[d.state_key].removed_at > now
        ]
        usage = history.usage(replaying(policy, history))
        halt = guardrails.check(judged, usage, policy, now, kill_switch=history.kill_switch)
        if halt is not None:
            result.halts[halt.check] = result.halts.get(halt.check, 0) + 1
            continue
        for decision in judged:
            key = decision.state_key
            if not removes(decision) or key in removals or key in asks:
                continue
            if decision.kind is DecisionKind.CANDIDATE and policy.ask_permission:
                result.asked += 1
                asks[key] = _Ask(history.run_id, now, now + policy.campaign.respond_within)
            else:
                remove(key, history.run_id, now, now, False)
    open_asks = 0
    newest = ordered[-1].started_at if ordered else since
    for key, ask in asks.items():  # no run after the deadline: the answers alone settle it
        if ask.deadline > newest:
            open_asks += 1
        elif _settle(ask, key, None, ask.deadline, yes_at, policy):
            remove(key, ask.run_id, ask.at, ask.deadline, True)
    restores: dict[str, list[tuple[datetime, CameBack]]] = {}
    for event in events:
        if event.came_back is not CameBack.ANSWERED_YES:  # a restore, or an appeal
            restores.setdefault(event.key, []).append((event.at, event.came_back))
    chosen = [
        _came_back(r, active_again.get(r.key), yes_at, restores.get(r.key, []))
        for r in sorted(removals.values(), key=lambda r: (r.decided_at, r.key))
    ]
    for removal in chosen:
        if removal.came_back is not None:
            result = periods[period.label(removal.decided_at)]
            result.came_back += 1
            result.back_by[removal.came_back] = result.back_by.get(removal.came_back, 0) + 1
    return Simulation(policy.name, [periods[p] for p in sorted(periods)], chosen, open_asks)


def _yes_times(
    histories: Sequence[RunHistory], events: Sequence[Event]
) -> dict[str, list[datetime]]:
    """Every "yes" the history holds, per member: the runs' latest answers and the ledger's."""
    found: dict[str, set[datetime]] = {}
    for history in histories:
        for member in history.members:
            if member.yes_at is not None:
                found.setdefault(member.key, set()).add(member.yes_at)
            export_yes = member.answer_at or history.observed_at
            if member.answer == "yes" and export_yes is not None:
                found.setdefault(member.key, set()).add(export_yes)
    for event in events:
        if event.came_back is CameBack.ANSWERED_YES:
            found.setdefault(event.key, set()).add(event.at)
    return {key: sorted(times) for key, times in found.items()}


def _first_yes(
    yes_at: Mapping[str, list[datetime]], key: str, after: datetime, until: datetime | None = None
) -> datetime | None:
    return next(
        (t for t in yes_at.get(key, ()) if t > after and (until is None or t <= until)), None
    )


def _settle(
    ask: _Ask,
    key: str,
    decision: Decision | None,
    now: datetime,
    yes_at: Mapping[str, list[datetime]],
    policy: Policy,
) -> bool | None:
    """An open ask at `now` (`decision`: hers in the run at `now`, if she is in it): True
    removed, False kept, cancelled or lapsed, None still open."""
    if _first_yes(yes_at, key, ask.at, min(now, ask.deadline)) is not None:
        return False
    if decision is not None and decision.kind is DecisionKind.ACTIVE:
        return False  # the next run cancels the ask of someone active again
    if now < ask.deadline:
        return None
    return policy.campaign.on_no_response is OnNoResponse.RECLAIM


def _pending(decision: Decision) -> Decision:
    if decision.kind is not DecisionKind.CANDIDATE:
        return decision
    return replace(decision, kind=DecisionKind.PENDING, reason="asked by the simulation")


def _came_back(
    removal: Removal,
    active_at: datetime | None,
    yes_at: Mapping[str, list[datetime]],
    restores: Sequence[tuple[datetime, CameBack]],
) -> Removal:
    """The removal with the first thing after it that shows she still needed the licence."""
    after = removal.removed_at
    found: list[tuple[datetime, CameBack]] = []
    if active_at is not None:
        found.append((active_at, CameBack.ACTIVE_AGAIN))
    yes = _first_yes(yes_at, removal.key, after)
    if yes is not None:
        found.append((yes, CameBack.ANSWERED_YES))
    found += [(at, why) for at, why in restores if at > after]
    if not found:
        return removal
    at, why = min(found)
    return replace(removal, came_back=why, came_back_at=at)

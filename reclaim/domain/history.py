"""What a recorded run keeps so it can be judged again: every member's inputs to selection.

A run's decision records say why each member was decided as she was, but not always with what:
a NEW member's evidence has no usage, a KEPT one's no join date, and retention cuts the records
of old runs to the candidates. So a run that read the directory and the usage also keeps, per
member, the few facts `selection.decide` reads (use over the run's look-back, join date, last
"yes", open request, account state), packed per run by the stores (reclaim/adapters/history.py).
`replay_run` rebuilds each member from them and decides her again under another policy; under
the run's own policy it gives the recorded decisions back (tests/unit/test_history.py).

Every usage source gives one total per member over usage.lookback, not use per day, so a run's
history holds that total: another threshold or grace can be replayed, another look-back cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reclaim.domain.model import (
    Account,
    CampaignResponse,
    Member,
    PolicyState,
    UsageIndex,
    User,
    normalise_key,
)
from reclaim.domain.policy import Exclusions, FirstRun, MatchOn, Policy
from reclaim.domain.selection import Decision, DecisionKind, Evidence, decide, member_since

# Decided before anything a simulation can change: kept as recorded.
AS_RECORDED = frozenset({DecisionKind.NESTED, DecisionKind.EXCLUDED})
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class MemberInputs:
    """One member of one run, as selection saw her."""

    key: str  # the state key
    kind: DecisionKind  # what the run decided
    matched: bool = True  # the member had a usage key (match_on); else `key` is "field:value"
    used: float | None = None  # use over the run's look-back; None: never observed
    added: datetime | None = None  # the directory's own join date
    tracked: datetime | None = None  # first seen by reclaim's snapshots; None: the baseline
    created: datetime | None = None  # the account's creation
    last_seen: datetime | None = None  # the newest activity the source reported
    yes_at: datetime | None = None  # the latest "yes" reclaim recorded (or a restore)
    pending: bool = False  # a request was open
    answer: str = ""  # the usage export's campaign response: "yes", "pending" or ""
    answer_at: datetime | None = None  # ... and its date, when the export gives one
    disabled: bool = False  # the account was disabled
    left_at: datetime | None = None  # the leave date the directory held


@dataclass(frozen=True)
class RunHistory:
    """One recorded run's inputs: its usage read (for the guardrails) and its members."""

    run_id: str
    policy: str
    started_at: datetime
    match_on: MatchOn
    lookback: timedelta  # what every member's `used` was summed over
    threshold: float  # the run's own threshold and grace, for the record
    new_member_grace: timedelta
    observed_at: datetime | None  # the usage data's own clock
    rows_read: int
    matched: int  # members the source reported
    dated_by_rows: bool
    kill_switch: bool  # the run was halted by the kill switch
    members: tuple[MemberInputs, ...]

    def usage(self, policy: Policy) -> UsageIndex:
        """The run's read as the guardrails see it (age, rows, coverage); no amounts."""
        return UsageIndex(
            observed_at=self.observed_at,
            amounts={},
            rows_read=self.rows_read,
            matched=self.matched,
            authoritative=policy.usage.authoritative,
            dated_by_rows=self.dated_by_rows,
        )


def run_history(
    run_id: str,
    policy: Policy,
    now: datetime,
    members: Sequence[Member],
    usage: UsageIndex,
    state: PolicyState,
    decisions: Sequence[Decision],
    *,
    kill_switch: bool = False,
) -> RunHistory:
    """What a run keeps: `decisions` are `select(members, usage, state, policy, now)`."""
    match_on = policy.usage.match_on
    kept = []
    for member, decision in zip(members, decisions, strict=True):
        state_key = decision.state_key
        if decision.kind in AS_RECORDED:
            kept.append(MemberInputs(state_key, decision.kind))
            continue
        key = member.user.key(match_on)
        response = usage.responses.get(key) if key else None
        answer = response.state if response is not None and response.state != "no" else ""
        untracked = replace(member, added_at=None, created_at=None)
        kept.append(
            MemberInputs(
                key=state_key,
                kind=decision.kind,
                matched=bool(key),
                used=usage.amounts.get(key) if key else None,
                added=member.added_at,
                tracked=member_since(untracked, state, state_key, now, policy).at,
                created=member.created_at,
                last_seen=usage.last_seen.get(key) if key else None,
                yes_at=state.last_yes.get(state_key),
                pending=bool(state.open_requests.get(state_key)),
                answer=answer,
                answer_at=response.at if response is not None and answer else None,
                disabled=member.account.enabled is False,
                left_at=member.account.left_at,
            )
        )
    return RunHistory(
        run_id=run_id,
        policy=policy.name,
        started_at=now,
        match_on=match_on,
        lookback=policy.usage.lookback,
        threshold=policy.usage.threshold,
        new_member_grace=policy.new_member_grace,
        observed_at=usage.observed_at,
        rows_read=usage.rows_read,
        matched=usage.matched,
        dated_by_rows=usage.dated_by_rows,
        kill_switch=kill_switch,
        members=tuple(kept),
    )


def replaying(policy: Policy, history: RunHistory) -> Policy:
    """`policy` as a replay of `history` applies it: matched on the run's keys, exclusions and
    join dates as the run found them (a member's groups and snapshots are not kept)."""
    return replace(
        policy,
        exclude=Exclusions(),
        first_run=FirstRun.BASELINE,
        usage=replace(policy.usage, match_on=history.match_on),
    )


def replay_run(history: RunHistory, policy: Policy) -> list[Decision]:
    """Every member of the run decided again by `selection.decide` under `policy`, in order."""
    judged = replaying(policy, history)
    users = [_user(m, history.match_on) for m in history.members]
    amounts: dict[str, float] = {}
    last_seen: dict[str, datetime] = {}
    responses: dict[str, CampaignResponse] = {}
    for inputs, user in zip(history.members, users, strict=True):
        key = user.key(history.match_on)
        if not key:
            continue
        if inputs.used is not None:
            amounts[key] = inputs.used
        if inputs.last_seen is not None:
            last_seen[key] = inputs.last_seen
        if inputs.answer:
            responses[key] = CampaignResponse(inputs.answer, inputs.answer_at)
    usage = replace(
        history.usage(judged), amounts=amounts, last_seen=last_seen, responses=responses
    )
    state = _state(history)
    return [
        _decided(inputs, user, usage, state, judged, history.started_at)
        for inputs, user in zip(history.members, users, strict=True)
    ]


def _state(history: RunHistory) -> PolicyState:
    """The run's state as selection reads it. Members first seen by reclaim keep that date; the
    ones from the baseline are put at a baseline just before every such date, where
    `selection.member_since` finds them as members from before tracking."""
    tracked = [m.tracked for m in history.members if m.tracked is not None]
    baseline = min(tracked, default=history.started_at) - _JUST_BEFORE
    return PolicyState(
        baseline_at=baseline,
        first_seen={m.key: m.tracked or baseline for m in history.members},
        last_yes={m.key: m.yes_at for m in history.members if m.yes_at is not None},
        open_requests={m.key: "recorded" for m in history.members if m.pending},
    )


def _decided(
    inputs: MemberInputs,
    user: User,
    usage: UsageIndex,
    state: PolicyState,
    policy: Policy,
    now: datetime,
) -> Decision:
    if inputs.kind in AS_RECORDED:
        member = Member(user, via_group="recorded" if inputs.kind is DecisionKind.NESTED else "")
        return Decision(member, inputs.kind, "as recorded", Evidence(rule="recorded"), inputs.key)
    member = Member(
        user,
        added_at=inputs.added,
        created_at=inputs.created,
        account=Account(enabled=False if inputs.disabled else None, left_at=inputs.left_at),
    )
    return decide(member, usage, state, policy, now)


def _user(inputs: MemberInputs, match_on: MatchOn) -> User:
    """A user whose state key (and usage key, when she had one) is the recorded one."""
    if inputs.matched:
        return User(**{match_on.value: inputs.key})
    name, _, value = inputs.key.partition(":")
    if name in User.__dataclass_fields__ and name != "display_name":
        return User(**{name: normalise_key(value)})
    return User()

"""What would change a decision: the smallest single change of each kind that flips it.

Each proposal is a changed copy of the inputs (a Scenario) that `decide` judges again, so a
counterfactual is reported only when the same rules really give another decision: "ACTIVE at
2 more minutes of use", "EXCLUDED as a member of SF-Admins", "KEPT if she answers yes". For an
active member it says what would make her a candidate. Usage changes are minimal: any smaller
change leaves the decision as it is (the property tests check both).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reclaim.domain.durations import format_duration, format_minutes
from reclaim.domain.model import Account, Member, PolicyState, UsageIndex, User
from reclaim.domain.policy import Policy
from reclaim.domain.selection import Decision, DecisionKind, decide


@dataclass(frozen=True)
class Scenario:
    """Everything one decision depends on."""

    member: Member
    usage: UsageIndex
    state: PolicyState
    policy: Policy
    now: datetime

    def decided(self) -> Decision:
        return decide(self.member, self.usage, self.state, self.policy, self.now)

    @property
    def usage_key(self) -> str:
        return self.member.user.key(self.policy.usage.match_on)

    @property
    def state_key(self) -> str:
        return self.member.user.state_key(self.policy.usage.match_on)

    def with_use(self, amount: float) -> Scenario:
        amounts = {**self.usage.amounts, self.usage_key: amount}
        return replace(self, usage=replace(self.usage, amounts=amounts))

    def with_last_seen(self, at: datetime) -> Scenario:
        """Observed by a source judged by inactive_for, last active at `at`."""
        observed = self.with_use(0.0)
        last_seen = {**self.usage.last_seen, self.usage_key: at}
        return replace(observed, usage=replace(observed.usage, last_seen=last_seen))


@dataclass(frozen=True)
class Counterfactual:
    becomes: DecisionKind
    change: str  # what would have to be different, e.g. "2m more use in 30d"
    scenario: Scenario  # the changed inputs, judged again to get `becomes`

    def describe(self) -> str:
        return f"{self.becomes.value} {self.change}"


def what_would_change(scenario: Scenario) -> list[Counterfactual]:
    """The single changes that would give another decision, each the smallest of its kind."""
    before = scenario.decided().kind
    found: list[Counterfactual] = []
    for change, changed in _proposals(scenario, before):
        after = changed.decided().kind
        if after is not before:
            found.append(Counterfactual(after, change, changed))
    return found


_UNDER_THRESHOLD = frozenset(
    {DecisionKind.CANDIDATE, DecisionKind.KEPT, DecisionKind.PENDING, DecisionKind.UNKNOWN_USAGE}
)


def _proposals(s: Scenario, kind: DecisionKind) -> Iterator[tuple[str, Scenario]]:
    policy, member = s.policy, s.member
    window = format_duration(policy.usage.lookback)
    threshold = policy.usage.threshold
    used = s.usage.amounts.get(s.usage_key) if s.usage_key else None

    if kind is DecisionKind.NESTED and member.inherited_from:
        yield (
            f"if group {member.inherited_from} did not assign her the licence too",
            replace(s, member=replace(member, inherited_from="")),
        )
        return
    if kind is DecisionKind.NESTED:
        yield "if she were a direct member", replace(s, member=replace(member, via_group=""))
        return
    if kind is DecisionKind.EXCLUDED:
        yield from _without_exclusion(s)
        return
    for group in policy.exclude.groups:
        if group not in member.groups:
            groups = member.groups | {group}
            yield f"as a member of {group}", replace(s, member=replace(member, groups=groups))
    if kind is DecisionKind.DISABLED:
        enabled = Account(enabled=True)
        yield (
            "if her account were enabled again",
            replace(s, member=replace(member, account=enabled)),
        )
        return
    left_at = member.account.left_at
    if left_at is not None and left_at > s.now:
        yield f"when her leave date passes on {left_at:%Y-%m-%d}", replace(s, now=left_at)
    if kind is DecisionKind.NEW:
        joined = s.decided().evidence.member_since
        if joined is not None:
            ends = joined + policy.new_member_grace
            yield (
                f"when her grace ends on {ends:%Y-%m-%d}, if her use stays as it is",
                replace(s, now=ends),
            )
        return
    if not s.usage_key:
        return
    inactive_for = policy.usage.inactive_for
    last = s.usage.last_seen.get(s.usage_key)
    if inactive_for is not None and kind is DecisionKind.ACTIVE and last is not None:
        ends = last + inactive_for
        yield f"on {ends:%Y-%m-%d}, if she is not active again before", replace(s, now=ends)
        return
    if inactive_for is not None and kind in _UNDER_THRESHOLD:
        yield "if she signed in or used it now", s.with_last_seen(s.now)
    if kind is DecisionKind.ACTIVE:
        if used is not None and threshold > 0:
            below = math.nextafter(threshold, 0.0)
            yield (
                f"at under {_amount(threshold, policy)} of use in {window} "
                f"(today {_amount(used, policy)})",
                s.with_use(below),
            )
        return
    if kind in _UNDER_THRESHOLD and inactive_for is None:
        if used is None:
            change = f"if the usage source saw {_amount(threshold, policy)} of use in {window}"
        else:
            change = f"at {_amount(threshold - used, policy)} more use in {window}"
        yield change, s.with_use(threshold)  # the threshold itself: `used >= threshold` is ACTIVE
    if kind is DecisionKind.UNKNOWN_USAGE:
        yield "if the usage source saw her with no use", s.with_use(0.0)
    if kind in (DecisionKind.CANDIDATE, DecisionKind.PENDING):
        last_yes = {**s.state.last_yes, s.state_key: s.now}
        yield (
            f'if she answers "yes, I still need it" (protected for '
            f"{format_duration(policy.keep_after_yes)})",
            replace(s, state=replace(s.state, last_yes=last_yes)),
        )
    if kind is DecisionKind.KEPT:
        yes_at = s.decided().evidence.answered_yes_at
        if yes_at is not None:
            ends = yes_at + policy.keep_after_yes
            yield (
                f'when her "yes" expires on {ends:%Y-%m-%d}, if her use stays as it is',
                replace(s, now=ends),
            )
    if kind is DecisionKind.PENDING:
        request = s.state.open_requests.get(s.state_key)
        if request:
            open_requests = {k: v for k, v in s.state.open_requests.items() if k != s.state_key}
            yield (
                f"when request {request} ends",
                replace(s, state=replace(s.state, open_requests=open_requests)),
            )


def _without_exclusion(s: Scenario) -> Iterator[tuple[str, Scenario]]:
    """What she would be without each exclusion that holds her."""
    policy, member = s.policy, s.member
    held = [g for g in policy.exclude.groups if g in member.groups]
    by_user = {v.lower() for v in member.user.identifiers().values() if v} & set(
        policy.exclude.users
    )
    if held and not by_user:
        groups = member.groups - set(held)
        names = ", ".join(held)
        yield f"if she left {names}", replace(s, member=replace(member, groups=groups))
    if by_user and not held:
        users = policy.exclude.users - by_user
        yield (
            "if the policy did not exclude her by name",
            replace(s, policy=replace(policy, exclude=replace(policy.exclude, users=users))),
        )


def _amount(amount: float, policy: Policy) -> str:
    """Rounded up: what is shown is always enough."""
    if policy.usage.counts_sign_ins:
        return f"{math.ceil(amount)} sign-in(s)"
    return format_minutes(math.ceil(amount * 60) / 60)


def scenario_from_record(
    user: User,
    decision: str,
    evidence: Mapping[str, Any],
    policy: Policy,
    decided_at: datetime,
) -> Scenario | None:
    """The inputs of a stored decision, rebuilt from its evidence (what `explain` has); None when
    the evidence does not reproduce the stored decision, so nothing is claimed about it."""
    excluded_by = str(evidence.get("excluded_by") or "")
    groups = frozenset({excluded_by[len("group ") :]}) if excluded_by.startswith("group ") else None
    since = _when(evidence.get("member_since"))
    through = str(evidence.get("via_group") or "")
    inherited = evidence.get("rule") == "inherited_licence"  # entra-licence: the licence's group
    disabled = str(evidence.get("disabled") or "")
    account = Account(
        enabled=False if disabled.startswith("account disabled") else None,
        left_at=_when(evidence.get("left_at")),
    )
    member = Member(
        user=user,
        added_at=since,
        added_from=str(evidence.get("joined") or ""),
        groups=groups or frozenset(),
        via_group="" if inherited else through,
        inherited_from=through if inherited else "",
        created_at=_when(evidence.get("account_created")),
        account=account,
    )
    key, state_key = user.key(policy.usage.match_on), user.state_key(policy.usage.match_on)
    used = evidence.get("used")
    amounts = {key: float(used)} if key and isinstance(used, int | float) else {}
    last_seen = _when(evidence.get("last_seen"))
    if key and policy.usage.by_recency and evidence.get("rule") != "unknown_users":
        amounts = {key: 0.0}  # observed: judged by the date, which carries no amount
    yes_at = _when(evidence.get("answered_yes_at"))
    request_id = str(evidence.get("request_id") or "")
    scenario = Scenario(
        member=member,
        usage=UsageIndex(
            observed_at=_when(evidence.get("usage_as_of")),
            amounts=amounts,
            rows_read=0,
            last_seen={key: last_seen} if key and last_seen else {},
            last_seen_from={key: str(evidence.get("last_seen_from") or "")} if last_seen else {},
        ),
        state=PolicyState(
            last_yes={state_key: yes_at} if yes_at else {},
            open_requests={state_key: request_id} if request_id else {},
        ),
        policy=policy,
        now=decided_at,
    )
    return scenario if scenario.decided().kind.value == decision else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None

"""Selection: exactly one decision per member, with the rule that decided it and its evidence."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from reclaim.domain.durations import format_duration, format_minutes
from reclaim.domain.model import CampaignResponse, Member, PolicyState, UsageIndex, UsageRow
from reclaim.domain.policy import Policy, UnknownUsers


class DecisionKind(StrEnum):
    EXCLUDED = "EXCLUDED"
    NEW = "NEW"
    UNKNOWN_USAGE = "UNKNOWN_USAGE"
    ACTIVE = "ACTIVE"
    KEPT = "KEPT"
    PENDING = "PENDING"
    CANDIDATE = "CANDIDATE"


@dataclass(frozen=True)
class Evidence:
    """The facts behind a decision; only what is known is shown."""

    rule: str
    used: float | None = None  # minutes or sign-ins; None when never observed
    threshold: float | None = None
    unit: str = ""
    window: str = ""
    member_since: datetime | None = None
    answered_yes_at: datetime | None = None
    request_id: str = ""
    excluded_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"rule": self.rule}
        for name in ("used", "threshold", "unit", "window", "request_id", "excluded_by"):
            value = getattr(self, name)
            if value not in (None, ""):
                result[name] = value
        for name in ("member_since", "answered_yes_at"):
            value = getattr(self, name)
            if value is not None:
                result[name] = value.isoformat()
        return result


@dataclass(frozen=True)
class Decision:
    member: Member
    kind: DecisionKind
    reason: str
    evidence: Evidence
    state_key: str = field(default="")


def index_usage(
    rows: Iterable[UsageRow], member_keys: set[str], observed_at: datetime
) -> UsageIndex:
    """Keep only members' usage, so memory follows the group, not the export (rows are streamed).

    A user may appear on several rows (one per device or day): their amounts add up. A row with no
    amount means the source observed the user and recorded no use: zero, not unknown.
    """
    amounts: dict[str, float] = {}
    responses: dict[str, CampaignResponse] = {}
    count = 0
    for row in rows:
        count += 1
        if row.user_key in member_keys:
            amounts[row.user_key] = amounts.get(row.user_key, 0.0) + (row.amount or 0.0)
            if row.answer is not None:
                responses[row.user_key] = row.answer
    return UsageIndex(
        observed_at=observed_at, amounts=amounts, rows_read=count, responses=responses
    )


def member_since(member: Member, state: PolicyState, key: str, now: datetime) -> datetime | None:
    """When the member joined, as far as reclaim can tell; None means before tracking began."""
    if member.added_at is not None:
        return member.added_at
    if state.baseline_at is None:
        return None  # this run takes the baseline: everyone present counts as a member from before
    seen = state.first_seen.get(key)
    if seen is None:
        return now  # appears in this snapshot for the first time
    return None if seen <= state.baseline_at else seen


def _amount_text(amount: float, policy: Policy) -> str:
    if policy.usage.counts_sign_ins:
        return f"{amount:g} sign-in(s)"
    return format_minutes(amount)


def decide(
    member: Member, usage: UsageIndex, state: PolicyState, policy: Policy, now: datetime
) -> Decision:
    """The first rule that applies wins: EXCLUDED, NEW, UNKNOWN_USAGE, ACTIVE, KEPT, PENDING, CANDIDATE."""
    match_on = policy.usage.match_on
    key = member.user.key(match_on)
    state_key = member.user.state_key(match_on)
    window = format_duration(policy.usage.lookback)
    unit = "sign-ins" if policy.usage.counts_sign_ins else "minutes"

    def made(kind: DecisionKind, reason: str, evidence: Evidence) -> Decision:
        return Decision(member, kind, reason, evidence, state_key)

    excluded_by = _exclusion(member, policy)
    if excluded_by:
        return made(
            DecisionKind.EXCLUDED,
            f"excluded by policy ({excluded_by})",
            Evidence(rule="exclude", excluded_by=excluded_by),
        )

    since = member_since(member, state, state_key, now)
    if since is not None and now - since < policy.new_member_grace:
        days = max(0, (now - since).days)
        return made(
            DecisionKind.NEW,
            f"member for {days}d, less than the grace of {format_duration(policy.new_member_grace)}",
            Evidence(rule="new_member_grace", member_since=since),
        )

    used = usage.amounts.get(key) if key else None
    threshold = policy.usage.threshold
    threshold_text = _amount_text(threshold, policy)
    if used is None and policy.usage.unknown_users is UnknownUsers.SKIP:
        why = (
            f"no {match_on.value} to match usage rows"
            if not key
            else f"not observed by the usage source in the last {window}"
        )
        return made(
            DecisionKind.UNKNOWN_USAGE,
            f"{why}; kept (unknown_users: skip)",
            Evidence(
                rule="unknown_users",
                threshold=threshold,
                unit=unit,
                window=window,
                member_since=since,
            ),
        )

    if used is not None and used >= threshold:
        return made(
            DecisionKind.ACTIVE,
            f"used {_amount_text(used, policy)} in {window}, at least the threshold of {threshold_text}",
            Evidence(
                rule="threshold",
                used=used,
                threshold=threshold,
                unit=unit,
                window=window,
                member_since=since,
            ),
        )

    response = usage.responses.get(key) if key else None
    yes_dates = [state.last_yes.get(state_key)]
    if response is not None and response.state == "yes":
        yes_dates.append(response.at or usage.observed_at)
    yes_at = max((d for d in yes_dates if d is not None), default=None)
    if yes_at is not None and now - yes_at < policy.keep_after_yes:
        return made(
            DecisionKind.KEPT,
            f'answered "yes, I still need it" on {yes_at:%Y-%m-%d}, '
            f"protected for {format_duration(policy.keep_after_yes)}",
            Evidence(
                rule="keep_after_yes",
                used=used,
                threshold=threshold,
                unit=unit,
                window=window,
                answered_yes_at=yes_at,
            ),
        )

    request_id = state.open_requests.get(state_key, "")
    pending_elsewhere = response is not None and response.state == "pending"
    if request_id or pending_elsewhere:
        reason = (
            f"already asked or queued (request {request_id}); waiting for it to finish"
            if request_id
            else "asked in the campaign, no answer yet (campaign response in the usage export)"
        )
        return made(
            DecisionKind.PENDING,
            reason,
            Evidence(
                rule="open_request",
                used=used,
                threshold=threshold,
                unit=unit,
                window=window,
                request_id=request_id,
            ),
        )

    if used is None:
        reason = f"not observed by the usage source in the last {window}; unknown_users: reclaim"
        rule = "unknown_users"
    else:
        reason = f"used {_amount_text(used, policy)} in {window}, under the threshold of {threshold_text}"
        if yes_at is not None:
            reason += f'; the "yes" of {yes_at:%Y-%m-%d} has expired'
        rule = "threshold"
    return made(
        DecisionKind.CANDIDATE,
        reason,
        Evidence(
            rule=rule,
            used=used,
            threshold=threshold,
            unit=unit,
            window=window,
            member_since=since,
            answered_yes_at=yes_at,
        ),
    )


def _exclusion(member: Member, policy: Policy) -> str:
    user = member.user
    for value in user.identifiers().values():
        if value and value.lower() in policy.exclude.users:
            return f"user {value}"
    for group in policy.exclude.groups:
        if group in member.groups:
            return f"group {group}"
    return ""


def select(
    members: Sequence[Member], usage: UsageIndex, state: PolicyState, policy: Policy, now: datetime
) -> list[Decision]:
    """One decision per member, in the order the directory listed them."""
    return [decide(m, usage, state, policy, now) for m in members]


def count_by_kind(decisions: Iterable[Decision]) -> dict[DecisionKind, int]:
    counts = dict.fromkeys(DecisionKind, 0)
    for decision in decisions:
        counts[decision.kind] += 1
    return counts


def candidates(decisions: Iterable[Decision]) -> Iterator[Decision]:
    return (d for d in decisions if d.kind is DecisionKind.CANDIDATE)


def yes_protects(answered_at: datetime, policy: Policy, now: datetime) -> bool:
    return now - answered_at < policy.keep_after_yes


def deadline_for(policy: Policy, asked_at: datetime) -> datetime:
    return asked_at + policy.campaign.respond_within

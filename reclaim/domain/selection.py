"""Selection: exactly one decision per member, with the rule that decided it and its evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from reclaim.domain.durations import format_duration
from reclaim.domain.model import CampaignResponse, Member, PolicyState, UsageIndex, UsageRow
from reclaim.domain.policy import DisabledAccounts, FirstRun, Policy, UnknownUsers
from reclaim.domain.usage_text import amount_text, existed_since, usage_text


class DecisionKind(StrEnum):
    NESTED = "NESTED"  # holds the licence through a nested group: not evaluated
    EXCLUDED = "EXCLUDED"
    DISABLED = "DISABLED"  # account disabled or past its leave date (disabled_accounts says)
    NEW = "NEW"
    UNKNOWN_USAGE = "UNKNOWN_USAGE"
    ACTIVE = "ACTIVE"
    KEPT = "KEPT"
    PENDING = "PENDING"
    CANDIDATE = "CANDIDATE"


@dataclass(frozen=True, slots=True)
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
    joined: str = ""  # which evidence gave member_since, or why there is none
    via_group: str = ""
    usage_as_of: datetime | None = None  # the usage data's age by its own clock ...
    usage_clock: str = ""  # ... and where that clock was read
    seat_note: str = ""  # why a removal would free no seat, when that is known beforehand
    counted: str = ""  # what the source counts, when narrower than its name (interactive only)
    last_seen: datetime | None = None  # the member's newest activity the source reported ...
    last_seen_from: str = ""  # ... and which of its dates that is (lastSuccessfulSignInDateTime)
    inactive_for: str = ""  # entra-activity: how long without a sign-in makes a candidate
    account_created: datetime | None = None  # the directory's createdDateTime of the user
    disabled: str = ""  # why the account counts as disabled (DISABLED)
    left_at: datetime | None = None  # the leave date the directory holds, when it holds one
    account_unread: str = ""  # why the account's state is unknown (a missing permission)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"rule": self.rule}
        for name in (
            "used", "threshold", "unit", "window", "request_id", "excluded_by", "joined",
            "via_group", "usage_clock", "seat_note", "counted", "last_seen_from", "inactive_for",
            "disabled", "account_unread",
        ):  # fmt: skip
            value = getattr(self, name)
            if value not in (None, ""):
                result[name] = value
        for name in ("member_since", "answered_yes_at", "usage_as_of", "last_seen",
                     "account_created", "left_at"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                result[name] = value.isoformat()
        return result


@dataclass(frozen=True, slots=True)
class Decision:
    member: Member
    kind: DecisionKind
    reason: str
    evidence: Evidence
    state_key: str = field(default="")
    # A DISABLED account the policy reclaims: released for removal at once, never asked.
    without_asking: bool = False


def removes(decision: Decision) -> bool:
    """Whether acting on the decision removes the user: a CANDIDATE (asked first when the
    policy asks), or a DISABLED account removed without asking. What the caps count."""
    return decision.kind is DecisionKind.CANDIDATE or decision.without_asking


@dataclass(frozen=True)
class UsageTally:
    """An export summed per user, before the group is known: what lets the usage download run
    while the members are listed. Holds one amount per user in the export (not per row)."""

    amounts: dict[str, float]
    responses: dict[str, CampaignResponse]
    newest: datetime | None
    rows_read: int
    last_seen: dict[str, datetime] = field(default_factory=dict)  # user -> newest row time
    last_seen_from: dict[str, str] = field(default_factory=dict)  # user -> that row's at_from
    narrowed_to: AbstractSet[str] | None = None  # the group it was cut down to, once known


def tally_usage(
    rows: Iterable[UsageRow],
    members: Callable[[], AbstractSet[str] | None] = lambda: None,
    *,
    check_every: int = 4096,
) -> UsageTally:
    """Sum the streamed rows per user. A user may appear on several rows (one per device or day):
    their amounts add up. A row with no amount means the source observed the user and recorded no
    use: zero, not unknown.

    `members()` names the group's keys once they are known (the listing may finish while the
    export still streams): from then on users outside the group are dropped, so what is held
    follows the group, not the export. Every row still counts towards the data's age."""
    amounts: dict[str, float] = {}
    responses: dict[str, CampaignResponse] = {}
    last_seen: dict[str, datetime] = {}
    last_seen_from: dict[str, str] = {}
    newest: datetime | None = None
    wanted: AbstractSet[str] | None = None
    count = 0
    for row in rows:
        count += 1
        if row.at is not None and (newest is None or row.at > newest):
            newest = row.at
        if wanted is None and (count - 1) % check_every == 0:
            wanted = members()
            if wanted is not None:
                amounts = {k: v for k, v in amounts.items() if k in wanted}
                responses = {k: v for k, v in responses.items() if k in wanted}
                last_seen = {k: v for k, v in last_seen.items() if k in wanted}
                last_seen_from = {k: v for k, v in last_seen_from.items() if k in wanted}
        key = row.user_key
        if wanted is not None and key not in wanted:
            continue
        amounts[key] = amounts.get(key, 0.0) + (row.amount or 0.0)
        if row.answer is not None:
            responses[key] = row.answer
        if row.at is not None and (key not in last_seen or row.at > last_seen[key]):
            last_seen[key] = row.at
            last_seen_from[key] = row.at_from
    return UsageTally(amounts, responses, newest, count, last_seen, last_seen_from, wanted)


def members_usage(
    tally: UsageTally,
    member_keys: AbstractSet[str],
    observed_at: datetime | None,
    *,
    clock: str = "",
    authoritative: bool = False,
) -> UsageIndex:
    """Keep only members' usage. The data's age is `observed_at` when given, else the newest time
    on any row (None when no row has one). An authoritative source records every user, so a
    member it does not list used nothing."""
    if tally.narrowed_to is member_keys:  # cut down to these members already: no second copy
        amounts, responses = tally.amounts, tally.responses
        last_seen, last_seen_from = tally.last_seen, tally.last_seen_from
    else:
        amounts = {key: tally.amounts[key] for key in member_keys if key in tally.amounts}
        responses = {key: tally.responses[key] for key in member_keys if key in tally.responses}
        last_seen = {key: tally.last_seen[key] for key in member_keys if key in tally.last_seen}
        last_seen_from = {key: tally.last_seen_from.get(key, "") for key in last_seen}
    matched = len(amounts)
    if authoritative:
        amounts = {key: amounts.get(key, 0.0) for key in member_keys}
    return UsageIndex(
        observed_at=observed_at or tally.newest,
        amounts=amounts,
        rows_read=tally.rows_read,
        responses=responses,
        clock=clock,
        matched=matched,
        authoritative=authoritative,
        dated_by_rows=observed_at is None,
        last_seen=last_seen,
        last_seen_from=last_seen_from,
    )


def index_usage(
    rows: Iterable[UsageRow],
    member_keys: AbstractSet[str],
    observed_at: datetime | None,
    *,
    clock: str = "",
    authoritative: bool = False,
) -> UsageIndex:
    """Members' usage from streamed rows, when the members are already known."""
    return members_usage(
        tally_usage(rows, lambda: member_keys, check_every=1),
        member_keys,
        observed_at,
        clock=clock,
        authoritative=authoritative,
    )


@dataclass(frozen=True, slots=True)
class Joined:
    """When a member joined, as far as the evidence goes; `at` None means before tracking."""

    at: datetime | None
    evidence: str


BASELINE = "join date unknown (baseline)"


def also_direct(sku: str) -> str:
    return (
        f"also holds {sku} by direct assignment: a removal from the group frees no seat "
        "(reclaim the direct assignment with directory.kind entra-licence)"
    )


def member_since(
    member: Member, state: PolicyState, key: str, now: datetime, policy: Policy
) -> Joined:
    """The directory's own join date wins; otherwise reclaim's snapshots (DESIGN's baseline rule),
    raised to the user's creation when that is later and within the grace (nobody joins a group
    before they exist; an older creation date proves nothing)."""
    if member.added_at is not None:
        return Joined(member.added_at, member.added_from or "the directory's join date")
    joined = _tracked(state, key, now, policy)
    created = member.created_at
    recent = created is not None and now - created < policy.new_member_grace
    if created is not None and recent and (joined.at is None or created > joined.at):
        return Joined(created, f"user created {created:%Y-%m-%d}, so joined since")
    return joined


def _tracked(state: PolicyState, key: str, now: datetime, policy: Policy) -> Joined:
    seen = state.first_seen.get(key)
    at_baseline = state.baseline_at is None or (seen is not None and seen <= state.baseline_at)
    if at_baseline:
        if policy.first_run is FirstRun.NEW:
            return Joined(seen or now, "present at the first snapshot (first_run: new)")
        return Joined(None, BASELINE)  # present at the baseline: a member from before tracking
    if seen is None:
        return Joined(now, "first seen in this snapshot")
    return Joined(seen, f"first seen by reclaim on {seen:%Y-%m-%d}")


def decide(
    member: Member, usage: UsageIndex, state: PolicyState, policy: Policy, now: datetime
) -> Decision:
    """The first rule that applies wins: EXCLUDED, DISABLED, NEW, UNKNOWN_USAGE, ACTIVE, KEPT,
    PENDING, CANDIDATE."""
    match_on = policy.usage.match_on
    key = member.user.key(match_on)
    state_key = member.user.state_key(match_on)
    window = format_duration(policy.usage.lookback)
    unit = (
        "" if policy.usage.by_recency else "sign-ins" if policy.usage.counts_sign_ins else "minutes"
    )

    def made(
        kind: DecisionKind, reason: str, evidence: Evidence, without_asking: bool = False
    ) -> Decision:
        # The facts every decision shares, added in one replace (a member's hot path).
        shared: dict[str, Any] = {}
        if kind is not DecisionKind.NESTED:
            shared.update(
                usage_as_of=usage.observed_at,
                usage_clock=usage.clock,
                left_at=member.account.left_at,
                account_unread=member.account.unread,
            )
        if policy.seat_sku and policy.seat_sku.lower() in member.direct_skus:
            shared["seat_note"] = also_direct(policy.seat_sku)
        if kind not in (DecisionKind.NESTED, DecisionKind.EXCLUDED, DecisionKind.NEW):
            last = usage.last_seen.get(key) if key else None
            inactive_for = policy.usage.inactive_for
            shared.update(
                counted=policy.usage.counted,
                last_seen=last,
                last_seen_from=usage.last_seen_from.get(key, "") if last else "",
                inactive_for=format_duration(inactive_for) if inactive_for else "",
                account_created=member.created_at,
            )
            if inactive_for is not None:  # judged by the last sign-in's date, not an amount
                shared.update(used=None, threshold=None)
        if shared:
            evidence = replace(evidence, **shared)
        return Decision(member, kind, reason, evidence, state_key, without_asking)

    if member.via_group:
        return made(
            DecisionKind.NESTED,
            f"member through nested group {member.via_group}: not evaluated, remove them from "
            f"{member.via_group} or add its members to the group directly",
            Evidence(rule="nested_group", via_group=member.via_group),
        )

    if member.inherited_from:
        return made(
            DecisionKind.NESTED,
            f"licence inherited from group {member.inherited_from}; use a group policy for "
            f"{member.inherited_from}: removing the direct assignment would free no seat",
            Evidence(rule="inherited_licence", via_group=member.inherited_from),
        )

    excluded_by = _exclusion(member, policy)
    if excluded_by:
        return made(
            DecisionKind.EXCLUDED,
            f"excluded by policy ({excluded_by})",
            Evidence(rule="exclude", excluded_by=excluded_by),
        )

    joined = member_since(member, state, state_key, now, policy)
    since = joined.at
    disabled = member.account.disabled(now)
    if disabled:
        seen = Evidence(
            rule="disabled_accounts",
            used=usage.amounts.get(key) if key else None,
            threshold=policy.usage.threshold,
            unit=unit,
            window=window,
            member_since=since,
            joined=joined.evidence,
        )
        return made(*_disabled(disabled, seen, state, state_key, policy, now))
    if since is not None and now - since < policy.new_member_grace:
        days = max(0, (now - since).days)
        return made(
            DecisionKind.NEW,
            f"member for {days}d ({joined.evidence}), less than the grace of "
            f"{format_duration(policy.new_member_grace)}",
            Evidence(rule="new_member_grace", member_since=since, joined=joined.evidence),
        )

    spec = policy.usage
    used = usage.amounts.get(key) if key else None
    last = usage.last_seen.get(key) if key else None
    threshold = spec.threshold
    threshold_text = amount_text(threshold, policy)
    if used is None and spec.unknown_users is UnknownUsers.SKIP:
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
                joined=joined.evidence,
            ),
        )

    if spec.inactive_for is not None:
        active = last is not None and now - last < spec.inactive_for
    else:
        active = used is not None and used >= threshold
    existed = existed_since(member, joined)
    if (
        not active
        and used is not None
        and (spec.authoritative or spec.by_recency)
        and existed is not None
        and existed[0] > now - spec.lookback
    ):
        # Absence from a log proves no use only over time the member could have used it.
        return made(
            DecisionKind.UNKNOWN_USAGE,
            f"{existed[1]}, within the {window} window: "
            f"{usage_text(used, last, usage, key, policy)} over part of it proves nothing; kept",
            Evidence(
                rule="partial_window",
                used=used,
                threshold=threshold,
                unit=unit,
                window=window,
                member_since=since,
                joined=joined.evidence,
            ),
        )

    if active:
        if spec.by_recency:
            reason = f"{usage_text(used, last, usage, key, policy)}, within inactive_for {window}"
        else:
            reason = (
                f"used {amount_text(used or 0.0, policy)} in {window}, at least the threshold "
                f"of {threshold_text}"
            )
        return made(
            DecisionKind.ACTIVE,
            reason,
            Evidence(
                rule="inactive_for" if spec.by_recency else "threshold",
                used=used,
                threshold=threshold,
                unit=unit,
                window=window,
                member_since=since,
                joined=joined.evidence,
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
    elif spec.by_recency:
        reason = usage_text(used, last, usage, key, policy) + (
            f", longer ago than inactive_for {window}"
            if last is not None
            else f", and the account is older than inactive_for {window}"
        )
        if yes_at is not None:
            reason += f'; the "yes" of {yes_at:%Y-%m-%d} has expired'
        rule = "inactive_for"
    else:
        reason = (
            f"used {amount_text(used, policy)} in {window}, under the threshold of {threshold_text}"
        )
        if yes_at is not None:
            reason += f'; the "yes" of {yes_at:%Y-%m-%d} has expired'
        rule = "threshold"
    reason += (
        f"; member since {since:%Y-%m-%d} ({joined.evidence})"
        if since is not None
        else f"; {joined.evidence}"
    )
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
            joined=joined.evidence,
        ),
    )


def _disabled(
    why: str, seen: Evidence, state: PolicyState, state_key: str, policy: Policy, now: datetime
) -> tuple[DecisionKind, str, Evidence, bool]:
    """A leaver: usage (shown in `seen`), grace and campaigns do not apply. Removed without asking
    when the policy reclaims disabled accounts, unless a "yes" (or a restore) inside
    keep_after_yes protects them."""
    yes_at = state.last_yes.get(state_key)
    evidence = replace(
        seen,
        disabled=why,
        answered_yes_at=yes_at,
        request_id=state.open_requests.get(state_key, ""),
    )
    if policy.disabled_accounts is DisabledAccounts.KEEP:
        return DecisionKind.DISABLED, f"{why}; kept (disabled_accounts: keep)", evidence, False
    if yes_at is not None and now - yes_at < policy.keep_after_yes:
        reason = (
            f'{why}; kept: "yes" (or a restore) on {yes_at:%Y-%m-%d}, protected for '
            f"{format_duration(policy.keep_after_yes)}"
        )
        return DecisionKind.DISABLED, reason, evidence, False
    reason = f"{why}; removed without asking (disabled_accounts: reclaim)"
    return DecisionKind.DISABLED, reason, evidence, True


def _exclusion(member: Member, policy: Policy) -> str:
    if policy.exclude.users:  # no per-member work for a rule the policy does not use
        for value in member.user.identifiers().values():
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


def evaluated(decisions: Iterable[Decision]) -> list[Decision]:
    """The decisions about direct members: what caps and coverage are measured against."""
    return [d for d in decisions if d.kind is not DecisionKind.NESTED]


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

"""The per-member rules, in order: nested, excluded, disabled, new, unknown usage, active, kept,
pending, candidate."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from reclaim.domain.durations import format_duration
from reclaim.domain.model import Member, PolicyState, UsageIndex
from reclaim.domain.policy import DisabledAccounts, Policy, UnknownUsers
from reclaim.domain.selection.decision import Decision, DecisionKind, Evidence
from reclaim.domain.selection.joined import member_since
from reclaim.domain.usage_text import amount_text, existed_since, usage_text


def also_direct(sku: str) -> str:
    return (
        f"also holds {sku} by direct assignment: a removal from the group frees no seat "
        "(reclaim the direct assignment with directory.kind entra-licence)"
    )


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

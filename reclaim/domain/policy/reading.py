"""Reading policies from parsed YAML: every section, then the checks across sections."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reclaim.domain.appeal import appeal_window
from reclaim.domain.durations import format_duration
from reclaim.domain.policy.checks import unworkable
from reclaim.domain.policy.escalation import read_escalation
from reclaim.domain.policy.fields import (
    _bool,
    _choice,
    _count,
    _duration,
    _kind,
    _money,
    _name,
    _nql_id,
    _percent,
    _positive_duration,
    _Reader,
    _reminders,
    _schedule,
    _share,
    _string_map,
    _text,
    _texts,
    _timezone,
)
from reclaim.domain.policy.model import (
    M365_REPORT_MAX_AGE,
    RECENCY_SOURCES,
    SIGN_IN_LOG_RETENTION,
    CampaignSpec,
    Channel,
    DirectoryKind,
    DirectorySpec,
    DisabledAccounts,
    Exclusions,
    FirstRun,
    Licence,
    Limits,
    M365Product,
    MatchOn,
    Mode,
    OnNoResponse,
    Policy,
    PolicyError,
    Rate,
    UnknownUsers,
    UsageSourceKind,
    UsageSpec,
    UsageUnit,
)
from reclaim.domain.policy.notice import read_notice


def _read_directory(r: _Reader) -> DirectorySpec:
    kind = r.get("kind", _choice(DirectoryKind), DirectoryKind.ENTRA, required=True)
    by_sku = kind is DirectoryKind.ENTRA_LICENCE
    sku_id = r.get("sku_id", _text, "", required=by_sku)
    if by_sku and r.data.get("group") is not None:
        r.seen.add("group")
        r.problem("group", "entra-licence reclaims a SKU, not a group: name it in sku_id only")
    spec = DirectorySpec(
        kind=kind,
        # The users holding the SKU directly are the "group" the directory lists and changes.
        group=sku_id if by_sku else r.get("group", _text, "", required=True),
        sku_id=sku_id,
        file=r.get("file", _text, "", required=kind is DirectoryKind.CSV),
        remote_action_id=r.get("remote_action_id", _nql_id, DirectorySpec.remote_action_id),
        devices=r.get("devices", _texts, (), required=kind is DirectoryKind.NEXTHINK_REMOTE_ACTION),
    )
    r.finish()
    return spec


def _read_usage(r: _Reader) -> UsageSpec:
    source = r.get("source", _choice(UsageSourceKind), UsageSourceKind.CSV, required=True)
    activity = source in RECENCY_SOURCES
    inactive_for = r.get("inactive_for", _positive_duration, None, required=activity)
    default_unit = (
        UsageUnit.SIGN_INS if source is UsageSourceKind.ENTRA_SIGNINS else UsageUnit.MINUTES
    )
    if activity:  # judged by inactive_for: an amount is refused in checks.py, not parsed
        r.seen.update(("unit", "threshold", "lookback"))
        unit, threshold = default_unit, UsageSpec.threshold
    else:
        unit = r.get("unit", _choice(UsageUnit), default_unit)
        if unit is UsageUnit.SIGN_INS:
            threshold = float(r.get("threshold", _count, 1))
        else:
            threshold = r.get("threshold", _duration, timedelta(minutes=5)).total_seconds() / 60
    if source is UsageSourceKind.ENTRA_SIGNINS and unit is not UsageUnit.SIGN_INS:
        r.problem("unit", "entra-signins counts sign-ins: use unit: sign-ins")
    signins = source is UsageSourceKind.ENTRA_SIGNINS
    match_default = MatchOn.UPN if signins or activity else MatchOn.MAIL
    retention = r.get("log_retention", _positive_duration, SIGN_IN_LOG_RETENTION)
    # The sign-in log's retention is its default window (a longer one is refused in checks);
    # entra-activity's window is inactive_for (a lookback is refused in checks).
    lookback_default = min(UsageSpec.lookback, retention) if signins else UsageSpec.lookback
    # An NQL export always carries its clock; a CSV file without one falls back to its mtime.
    timestamp_default = "last_event" if source is UsageSourceKind.NEXTHINK else ""
    spec = UsageSpec(
        source=source,
        lookback=inactive_for
        if activity and inactive_for is not None
        else r.get("lookback", _positive_duration, lookback_default),
        threshold=threshold,
        unit=unit,
        unknown_users=r.get("unknown_users", _choice(UnknownUsers), UnknownUsers.SKIP),
        # Microsoft refreshes its usage reports a day or two late: a fresh report is days old.
        max_age=r.get(
            "max_age",
            _positive_duration,
            M365_REPORT_MAX_AGE if source is UsageSourceKind.M365_REPORTS else UsageSpec.max_age,
        ),
        match_on=r.get("match_on", _choice(MatchOn), match_default),
        query_id=r.get("query_id", _nql_id, UsageSpec.query_id),
        parameters=r.get("parameters", _string_map, {}),
        query_parameters=r.get("query_parameters", _texts, UsageSpec.query_parameters),
        user_column=r.get("user_column", _text, UsageSpec.user_column),
        usage_column=r.get("usage_column", _text, UsageSpec.usage_column),
        answer_column=r.get("answer_column", _text, ""),
        answered_at_column=r.get("answered_at_column", _text, ""),
        file=r.get("file", _text, "", required=source is UsageSourceKind.CSV),
        app_id=r.get("app_id", _text, "", required=signins),
        timestamp_column=r.get("timestamp_column", _text, timestamp_default),
        timezone=r.get("timezone", _timezone, UsageSpec.timezone),
        min_coverage=r.get("min_coverage", _share, UsageSpec.min_coverage),
        log_retention=retention,
        non_interactive_beta=r.get("non_interactive_beta", _bool, False),
        inactive_for=inactive_for,
        product=r.get("product", _choice(M365Product), M365Product.ANY),
    )
    r.finish()
    return spec


def _read_campaign(r: _Reader, asking: bool) -> CampaignSpec:
    channel = r.get("channel", _choice(Channel), Channel.NONE, required=asking)
    spec = CampaignSpec(
        channel=channel,
        id=r.get("id", _nql_id, CampaignSpec.id),
        respond_within=r.get("respond_within", _positive_duration, CampaignSpec.respond_within),
        on_no_response=r.get("on_no_response", _choice(OnNoResponse), OnNoResponse.RECLAIM),
        url=r.get("url", _text, "", required=channel is Channel.WEBHOOK),
        require_justification_for_keep=r.get("require_justification_for_keep", _bool, False),
        reminders=r.get("reminders", _reminders, ()),
    )
    if asking and channel is Channel.NONE:
        r.problem("channel", "ask_permission is true: choose nexthink, webhook, email or teams")
    if spec.reminders and channel is Channel.NONE:
        r.problem("reminders", "reminders go through the campaign's channel: choose one")
    for before in spec.reminders:
        if before >= spec.respond_within:
            r.problem(
                "reminders",
                f"{format_duration(before)} before the deadline is at or before the ask "
                f"(respond_within is {format_duration(spec.respond_within)}): use a shorter offset",
            )
    if spec.url and not spec.url.startswith("https://"):
        r.problem("url", f"expected an https:// address, got {spec.url!r}")
    r.finish()
    return spec


def _read_policy(r: _Reader) -> Policy:
    name = r.get("name", _name, "", required=True)
    application = r.get("application", _text, "", required=True)
    schedule = r.get("schedule", _schedule, Policy.schedule)
    mode = r.get("mode", _choice(Mode), Mode.DRY_RUN)
    directory = _read_directory(r.sub("directory"))
    usage = _read_usage(r.sub("usage"))
    ask = r.get("ask_permission", _bool, False)
    campaign = _read_campaign(r.sub("campaign"), ask)
    keep_after_yes = r.get("keep_after_yes", _duration, Policy.keep_after_yes)
    grace = r.get("new_member_grace", _duration, Policy.new_member_grace)
    ex = r.sub("exclude")
    users: tuple[str, ...] = ex.get("users", _texts, ())
    exclude = Exclusions(
        users=frozenset(u.lower() for u in users),
        groups=ex.get("groups", _texts, ()),
    )
    ex.finish()
    lim = r.sub("limits")
    per_run = lim.get("max_removals_per_run", _count, 50)
    rate = lim.sub("rate")
    limits = Limits(
        max_removals_per_run=per_run,
        max_percent_of_group=lim.get("max_percent_of_group", _percent, 10.0),
        rate=Rate(
            count=rate.get("count", _count, per_run),
            window=rate.get("window", _positive_duration, Rate.window),
        ),
        max_wait=lim.get("max_wait", _positive_duration, Limits.max_wait),
    )
    rate.finish()
    lim.finish()
    lic = r.sub("licence")
    licence = Licence(
        monthly_cost=lic.get("monthly_cost", _money, 0.0),
        currency=lic.get("currency", _text, "USD").upper(),
        sku_id=lic.get("sku_id", _text, ""),
        entra_sku_id=lic.get("entra_sku_id", _text, ""),
        seat_check_after=lic.get("seat_check_after", _duration, Licence.seat_check_after),
        seat_check_within=lic.get(
            "seat_check_within", _positive_duration, Licence.seat_check_within
        ),
    )
    if licence.entra_sku_id and directory.kind is DirectoryKind.ENTRA:
        lic.problem(
            "entra_sku_id", "is for AD and remote-action policies: an Entra group uses sku_id"
        )
    lic.finish()
    decision_max_age = r.get("decision_max_age", _positive_duration, Policy.decision_max_age)
    first_run = r.get("first_run", _choice(FirstRun), FirstRun.BASELINE)
    disabled = r.get("disabled_accounts", _choice(DisabledAccounts), DisabledAccounts.KEEP)
    appeal_within = r.get("appeal_within", appeal_window, None)
    escalation = read_escalation(r, ask, campaign, directory.kind)
    r.seen.add("notice")  # read by policy/notice.py, which reports its own problems
    notice = read_notice(
        r.data.get("notice"), r._at("notice"), r.problems, asking=ask, channel=campaign.channel
    )
    r.finish()
    return Policy(
        name=name,
        application=application,
        directory=directory,
        usage=usage,
        schedule=schedule,
        mode=mode,
        ask_permission=ask,
        campaign=campaign,
        keep_after_yes=keep_after_yes,
        new_member_grace=grace,
        exclude=exclude,
        limits=limits,
        licence=licence,
        decision_max_age=decision_max_age,
        first_run=first_run,
        disabled_accounts=disabled,
        appeal_within=appeal_within,
        escalation=escalation,
        notice=notice,
    )


def policies_from_data(data: Any, source: str = "policies") -> tuple[Policy, ...]:
    """Build policies from parsed YAML, or raise PolicyError listing every problem with its path."""
    problems: list[str] = []
    top = _Reader(data, "", problems)
    entries = top.data.get("policies")
    top.seen.add("policies")
    policies: list[Policy] = []
    if entries is None:
        problems.append("policies: is required (a list of policies)")
    elif not isinstance(entries, list):
        problems.append(f"policies: expected a list, got {_kind(entries)}")
    elif not entries:
        problems.append("policies: the list is empty")
    else:
        names: dict[str, int] = {}
        for index, entry in enumerate(entries):
            policy = _read_policy(_Reader(entry, f"policies[{index}]", problems))
            problems += unworkable(policy, entry, f"policies[{index}]")
            if policy.name in names:
                problems.append(
                    f"policies[{index}].name: {policy.name!r} is already used by "
                    f"policies[{names[policy.name]}]"
                )
            elif policy.name:
                names[policy.name] = index
            policies.append(policy)
    for key in top.data:
        if key != "policies":
            problems.append(f"{key}: unknown key")
    if problems:
        raise PolicyError(source, [p.lstrip(".") for p in problems])
    return tuple(policies)

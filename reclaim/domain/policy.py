"""Policies: one per application and licensing group, validated with every problem reported at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from reclaim.domain.appeal import appeal_window
from reclaim.domain.durations import format_duration, parse_duration
from reclaim.domain.policy_notice import NoticeSpec, read_notice
from reclaim.domain.reminders import in_time_order

if TYPE_CHECKING:
    from reclaim.domain.policy_escalation import Escalation


class PolicyError(ValueError):
    """A policy file with problems; `problems` lists each one with its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{listed}")


class Mode(StrEnum):
    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


class DirectoryKind(StrEnum):
    ENTRA = "entra"
    ENTRA_LICENCE = "entra-licence"  # a SKU assigned directly to users, not through a group
    AD = "ad"
    NEXTHINK_REMOTE_ACTION = "nexthink-remote-action"
    CSV = "csv"


class UsageSourceKind(StrEnum):
    NEXTHINK = "nexthink"
    ENTRA_SIGNINS = "entra-signins"
    ENTRA_ACTIVITY = "entra-activity"  # user.signInActivity: tenant-wide, judged by inactive_for
    M365_REPORTS = "m365-reports"  # Microsoft 365 usage reports: last activity per product
    CSV = "csv"


class MatchOn(StrEnum):
    """Which identifier links a member to usage rows and answers."""

    UPN = "upn"
    MAIL = "mail"
    SID = "sid"
    OBJECT_ID = "object_id"
    SAM_ACCOUNT_NAME = "sam_account_name"


class M365Product(StrEnum):
    """The product whose "Last Activity Date" an m365-reports policy judges (any: the newest)."""

    ANY = "any"
    EXCHANGE = "exchange"
    ONEDRIVE = "onedrive"
    SHAREPOINT = "sharepoint"
    SKYPE_FOR_BUSINESS = "skype-for-business"
    YAMMER = "yammer"
    TEAMS = "teams"


M365_REPORT_MAX_AGE = timedelta(days=4)  # m365-reports' default usage.max_age

# Sources judged by the time since the last activity (usage.inactive_for), not by an amount.
RECENCY_SOURCES = frozenset({UsageSourceKind.ENTRA_ACTIVITY, UsageSourceKind.M365_REPORTS})


class UnknownUsers(StrEnum):
    SKIP = "skip"
    RECLAIM = "reclaim"


class UsageUnit(StrEnum):
    """The unit of the usage column; sign-ins are counted, the others are time."""

    MILLISECONDS = "milliseconds"
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    SIGN_INS = "sign-ins"


class FirstRun(StrEnum):
    """How members with no evidence of their join date are judged on the first snapshot."""

    BASELINE = "baseline"  # members since before tracking began (DESIGN's baseline rule)
    NEW = "new"  # joined at the first snapshot: NEW until new_member_grace has passed


# How far back the Entra ID sign-in log reaches with Entra ID P1/P2 (api-facts.md section 8):
# the default and the most usage.log_retention may claim (a Free tenant keeps 7 days).
SIGN_IN_LOG_RETENTION = timedelta(days=30)
# The Nexthink usage query's parameters reclaim fills itself (the policy's application and
# look-back) when the query declares them (usage.query_parameters); usage.parameters fills others.
SUPPLIED_QUERY_PARAMETERS = ("application", "lookback")


class Channel(StrEnum):
    NEXTHINK = "nexthink"
    WEBHOOK = "webhook"
    EMAIL = "email"  # Graph sendMail from RECLAIM_MAIL_SENDER, with signed links
    TEAMS = "teams"  # a Teams Workflows webhook, an Adaptive Card in a 1:1 chat
    NONE = "none"


class OnNoResponse(StrEnum):
    RECLAIM = "reclaim"
    KEEP = "keep"


class DisabledAccounts(StrEnum):
    """What happens to members whose account is disabled or whose leave date has passed."""

    KEEP = "keep"  # reported (DISABLED), nothing asked or removed
    RECLAIM = "reclaim"  # removed without asking, under the same caps, ledger and restore


@dataclass(frozen=True)
class DirectorySpec:
    kind: DirectoryKind
    group: str
    file: str = ""  # csv: the members export
    remote_action_id: str = "#invoke_remove_user_from_ad_group"
    devices: tuple[str, ...] = ()  # nexthink-remote-action: collector ids that can reach AD
    sku_id: str = ""  # entra-licence: the SKU whose direct assignments are reclaimed (= group)


@dataclass(frozen=True)
class UsageSpec:
    source: UsageSourceKind
    lookback: timedelta = timedelta(days=90)
    threshold: float = 5.0  # minutes, or sign-ins when unit is sign-ins
    unit: UsageUnit = UsageUnit.MINUTES
    unknown_users: UnknownUsers = UnknownUsers.SKIP
    max_age: timedelta = timedelta(days=2)
    match_on: MatchOn = MatchOn.MAIL
    query_id: str = "#license_reclamation_usage"
    parameters: Mapping[str, str] = field(default_factory=dict)
    # nexthink: the $names the saved query declares; only these are sent
    query_parameters: tuple[str, ...] = ("application",)
    user_column: str = "user.ad.email_address"
    usage_column: str = "focus_time"
    answer_column: str = ""  # optional: campaign response (yes / no / pending) in the same export
    answered_at_column: str = ""  # optional: when that response was given
    file: str = ""  # csv: the usage export
    app_id: str = ""  # entra-signins: the application's appId
    timestamp_column: str = ""  # csv, nexthink: each row's newest event time (the data's clock)
    timezone: str = "UTC"  # how timestamps written without an offset are read (IANA name)
    min_coverage: float = 0.5  # share of members a source of observed users must report
    log_retention: timedelta = SIGN_IN_LOG_RETENTION  # entra-signins: what the tenant's log keeps
    # entra-signins: also read non-interactive sign-ins, from Graph's beta sign-in log
    non_interactive_beta: bool = False
    # entra-activity, m365-reports: a member whose last activity is older is a candidate
    inactive_for: timedelta | None = None
    product: M365Product = M365Product.ANY  # m365-reports: whose last activity counts

    @property
    def counts_sign_ins(self) -> bool:
        return self.unit is UsageUnit.SIGN_INS

    @property
    def by_recency(self) -> bool:
        """Judged by the time since the last sign-in (inactive_for), not by an amount."""
        return self.inactive_for is not None

    @property
    def authoritative(self) -> bool:
        """A log of every sign-in: a member absent from it signed in zero times."""
        return self.source is UsageSourceKind.ENTRA_SIGNINS

    @property
    def retention(self) -> timedelta | None:
        """How far back the source reaches, when it is a log that forgets (None: as exported)."""
        return self.log_retention if self.authoritative else None

    @property
    def counted(self) -> str:
        """What the source counts, when that is narrower than its name says (for the plan)."""
        if self.source is UsageSourceKind.ENTRA_SIGNINS:
            if self.non_interactive_beta:
                return (
                    "interactive sign-ins (Graph v1.0) and non-interactive sign-ins "
                    "(Graph beta, unsupported in production)"
                )
            return "interactive sign-ins only (Graph v1.0 sign-in log; cached sessions and token refreshes are not counted)"
        if self.source is UsageSourceKind.ENTRA_ACTIVITY:
            return "last successful sign-in to any application, interactive or not (user.signInActivity)"
        if self.source is UsageSourceKind.M365_REPORTS:
            products = "any product" if self.product is M365Product.ANY else self.product.value
            return f"last activity date in {products} (Microsoft 365 usage report, a day or two behind)"
        return ""


@dataclass(frozen=True)
class CampaignSpec:
    channel: Channel = Channel.NONE
    id: str = "#license_reclamation_request"
    respond_within: timedelta = timedelta(days=7)
    on_no_response: OnNoResponse = OnNoResponse.RECLAIM
    url: str = ""  # webhook channel: where the ask is posted
    require_justification_for_keep: bool = False  # a "yes" without a reason does not protect
    reminders: tuple[timedelta, ...] = ()  # offsets before the deadline, the earliest first


@dataclass(frozen=True)
class Exclusions:
    users: frozenset[str] = frozenset()  # lower-cased identifiers of any kind
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rate:
    """At most `count` removals released in any `window` (runs and ticks together)."""

    count: int = 50
    window: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Limits:
    max_removals_per_run: int = 50
    max_percent_of_group: float = 10.0
    rate: Rate = field(default_factory=Rate)  # count defaults to max_removals_per_run
    max_wait: timedelta = timedelta(days=7)  # a due request held longer than this is cancelled


@dataclass(frozen=True)
class Licence:
    monthly_cost: float = 0.0
    currency: str = "USD"
    sku_id: str = ""  # Entra group: the SKU it assigns; each removal's seat is verified in Entra
    entra_sku_id: str = ""  # AD / remote action: the Entra SKU the synced users hold, verified too
    seat_check_after: timedelta = timedelta(minutes=15)  # licence processing takes minutes
    seat_check_within: timedelta = timedelta(hours=48)  # then the seat stays unverified


@dataclass(frozen=True)
class Policy:
    name: str
    application: str
    directory: DirectorySpec
    usage: UsageSpec
    schedule: str = "0 0 6 * * 1"
    mode: Mode = Mode.DRY_RUN
    ask_permission: bool = False
    campaign: CampaignSpec = field(default_factory=CampaignSpec)
    keep_after_yes: timedelta = timedelta(days=90)
    new_member_grace: timedelta = timedelta(days=90)
    exclude: Exclusions = field(default_factory=Exclusions)
    limits: Limits = field(default_factory=Limits)
    licence: Licence = field(default_factory=Licence)
    decision_max_age: timedelta = timedelta(days=1)  # older removal decisions are taken again
    first_run: FirstRun = FirstRun.BASELINE
    disabled_accounts: DisabledAccounts = DisabledAccounts.KEEP
    appeal_within: timedelta | None = None  # reclaim.domain.appeal: self-service restore window
    escalation: Escalation | None = None  # the approver's say (policy_escalation.py)
    notice: NoticeSpec | None = None  # told the date before a decided removal (policy_notice.py)

    @property
    def enforcing(self) -> bool:
        return self.mode is Mode.ENFORCE

    @property
    def seat_sku(self) -> str:
        """The Entra SKU whose release is verified after each removal ("" = unverified)."""
        if self.directory.kind is DirectoryKind.ENTRA:
            return self.licence.sku_id
        if self.directory.kind is DirectoryKind.ENTRA_LICENCE:
            return self.directory.sku_id
        return self.licence.entra_sku_id


# ---- validation -------------------------------------------------------------------------------

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_NQL_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


def is_valid_schedule(expression: str) -> bool:
    """NCRONTAB as Azure Functions reads it: six fields, seconds first."""
    return (
        isinstance(expression, str)
        and len(expression.split()) == 6
        and croniter.is_valid(expression, second_at_beginning=True)
    )


class _Reader:
    """Reads one mapping, collecting problems with their paths instead of stopping at the first."""

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            problems.append(f"{path}: expected a mapping, got {_kind(data)}")

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self._at(key)}: {message}")

    def get(self, key: str, convert: Callable[[Any], T], default: T, required: bool = False) -> T:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.problem(key, "is required")
            return default
        try:
            return convert(self.data[key])
        except (ValueError, TypeError) as error:
            self.problem(key, str(error))
            return default

    def sub(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.data.get(key) or {}, self._at(key), self.problems)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problems.append(f"{self._at(str(key))}: unknown key")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 5m, got {value!r}")
    return parse_duration(value)


def _positive_duration(value: Any) -> timedelta:
    result = _duration(value)
    if result <= timedelta(0):
        raise ValueError(f"must be longer than 0s, got {value!r}")
    return result


def _reminders(value: Any) -> tuple[timedelta, ...]:
    if not isinstance(value, list):
        raise ValueError(
            f"expected a list of durations before the deadline like [3d, 1d], got {_kind(value)}"
        )
    offsets = [_positive_duration(item) for item in value]
    repeated = sorted({format_duration(o) for o in offsets if offsets.count(o) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} is listed more than once: list each offset once")
    return in_time_order(offsets)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {value!r}")
    return value


def _percent(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError(f"expected a percentage from 0 to 100, got {value!r}")
    return float(value)


def _money(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected an amount of 0 or more, got {value!r}")
    return float(value)


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"expected a share from 0 to 1 (0.5 = half), got {value!r}")
    return float(value)


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone like UTC or Europe/Zurich, got {value!r}"
        ) from None
    return name


def _choice(enum: type[T]) -> Callable[[Any], T]:
    def convert(value: Any) -> T:
        try:
            return enum(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = " | ".join(e.value for e in enum)  # type: ignore[attr-defined]
            raise ValueError(f"expected one of {allowed}, got {value!r}") from None

    return convert


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {_kind(value)}")
    bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"entry {bad[0]} is not a non-empty text")
    return tuple(v.strip() for v in value)


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {_kind(value)}")
    return {str(k): str(v) for k, v in value.items()}


def _schedule(value: Any) -> str:
    if not is_valid_schedule(value):
        raise ValueError(
            f'expected an NCRONTAB schedule of six fields, seconds first, like "0 0 6 * * 1", '
            f"got {value!r}"
        )
    return str(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"expected a lower-case name of letters, digits, '.', '_' or '-', got {value!r}"
        )
    return value


def _nql_id(value: Any) -> str:
    if not isinstance(value, str) or not _NQL_ID.match(value):
        raise ValueError(
            f"expected a Nexthink NQL id like #license_reclamation_usage, got {value!r}"
        )
    return value


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
    if activity:  # judged by inactive_for: an amount is refused in policy_checks, not parsed
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
    from reclaim.domain.policy_escalation import read_escalation  # reads with this module's helpers

    escalation = read_escalation(r, ask, campaign, directory.kind)
    r.seen.add("notice")  # read by policy_notice.py, which reports its own problems
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
    # Imported here: the checks read the types this module defines.
    from reclaim.domain.policy_checks import unworkable

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

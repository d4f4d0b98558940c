"""What a policy is: its parts as frozen dataclasses, and the choices they take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reclaim.domain.policy.escalation import Escalation
    from reclaim.domain.policy.notice import NoticeSpec


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
    escalation: Escalation | None = None  # the approver's say (policy/escalation.py)
    notice: NoticeSpec | None = None  # told the date before a decided removal (policy/notice.py)

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

"""The things reclaim reasons about: users, usage, answers and the state of past runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum

from reclaim.domain.policy import MatchOn


@dataclass(frozen=True, slots=True)
class User:
    """A group member as the directory knows them; any identifier may be empty."""

    object_id: str = ""  # Entra object id, or AD objectGUID
    upn: str = ""
    mail: str = ""
    sam_account_name: str = ""
    sid: str = ""
    display_name: str = ""

    def key(self, match_on: MatchOn) -> str:
        """The normalised identifier that links this user to usage rows ("" when unknown)."""
        return normalise_key(getattr(self, match_on.value))

    def state_key(self, match_on: MatchOn) -> str:
        """The key under which reclaim remembers this user for a policy."""
        return self.key(match_on) or next(
            (f"{f}:{normalise_key(v)}" for f, v in self.identifiers().items() if v), ""
        )

    def identifiers(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in _IDENTIFIER_FIELDS}

    def matches(self, identifier: str) -> bool:
        """Whether any of this user's identifiers equals `identifier` (case-insensitive)."""
        wanted = normalise_key(identifier)
        return bool(wanted) and any(normalise_key(v) == wanted for v in self.identifiers().values())

    @property
    def label(self) -> str:
        return self.upn or self.mail or self.sam_account_name or self.sid or self.object_id

    def to_dict(self) -> dict[str, str]:
        return {name: value for name in _USER_FIELDS if (value := getattr(self, name))}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> User:
        return cls(**{name: str(data.get(name) or "") for name in _USER_FIELDS})


# Computed once: these run for every member and every usage row of a large group.
_USER_FIELDS = tuple(f.name for f in fields(User))
_IDENTIFIER_FIELDS = tuple(name for name in _USER_FIELDS if name != "display_name")


def normalise_key(value: str) -> str:
    """UPNs, mail, SIDs and ids compare case-insensitively and without surrounding space.
    A value already in that form is returned as it is, not copied (one string per member)."""
    stripped = (value or "").strip()
    lowered = stripped.lower()
    return stripped if lowered == stripped else lowered


@dataclass(frozen=True, slots=True)
class Account:
    """Whether the account can still be used, as the directory says; each part may be unknown."""

    enabled: bool | None = None  # None: the directory did not say (see `unread`)
    left_at: datetime | None = None  # leave date (Entra employeeLeaveDateTime, AD accountExpires)
    source: str = ""  # what said it is disabled: "Entra accountEnabled: false", ...
    leave_source: str = ""  # what gave left_at
    unread: str = ""  # why a part is unknown, naming the permission that would tell

    def disabled(self, now: datetime) -> str:
        """Why the account counts as disabled at `now` (disabled, or its leave date passed), or ""."""
        if self.enabled is False:
            return f"account disabled ({self.source})" if self.source else "account disabled"
        if self.left_at is not None and self.left_at <= now:
            return f"left on {self.left_at:%Y-%m-%d} ({self.leave_source or 'leave date'})"
        return ""


@dataclass(frozen=True, slots=True)
class Member:
    user: User
    added_at: datetime | None = None  # when the directory says the user joined, if it knows
    groups: frozenset[str] = frozenset()  # other groups known to hold the user (for exclusions)
    added_from: str = ""  # the evidence behind added_at, e.g. "msDS-ReplValueMetaData"
    created_at: datetime | None = None  # when the user object was created: a join lower bound
    via_group: str = ""  # held only through this nested group: not a direct member
    # entra-licence: the licence (also) comes from this group, so a direct removal frees nothing
    inherited_from: str = ""
    # entra: the SKUs the user also holds by direct assignment (lower-case skuIds)
    direct_skus: frozenset[str] = frozenset()
    account: Account = field(default_factory=Account)  # enabled, leave date (if the source says)


@dataclass(frozen=True, slots=True)
class UsageRow:
    user_key: str  # already normalised
    amount: float | None  # minutes, or sign-ins; None when observed with no usage recorded
    # The seed's NQL joins the campaign's responses into the usage query; when a policy names
    # that column, its answers count like answers reclaim collected itself.
    answer: CampaignResponse | None = None
    at: datetime | None = None  # when the source last saw this row's activity (its own clock)
    at_from: str = ""  # which of the source's dates `at` is, when it has several (evidence)


@dataclass(frozen=True)
class CampaignResponse:
    """A campaign response read from the usage source: yes/no with its date, or still pending."""

    state: str  # "yes" | "no" | "pending"
    at: datetime | None = None


@dataclass(frozen=True)
class UsageIndex:
    """Usage for the members of one group: who the source observed, and how much they used."""

    observed_at: datetime | None  # the data's own clock; None when the data carried no time
    amounts: Mapping[str, float]  # normalised key -> amount; absent means never observed
    rows_read: int
    responses: Mapping[str, CampaignResponse] = field(default_factory=dict)
    clock: str = ""  # where observed_at comes from, for the plan
    matched: int = 0  # members the source itself reported (before absent ones count as zero)
    authoritative: bool = False  # the source records every user: absent means zero use
    dated_by_rows: bool = False  # observed_at is the newest time written in the data itself
    last_seen: Mapping[str, datetime] = field(default_factory=dict)  # key -> newest row time
    last_seen_from: Mapping[str, str] = field(default_factory=dict)  # key -> that row's at_from


class AnswerValue(StrEnum):
    YES = "yes"  # "I still need it"
    NO = "no"  # "take it back"


@dataclass(frozen=True)
class Answer:
    request_id: str
    value: AnswerValue
    answered_at: datetime
    source: str = ""  # webhook, nexthink-nql, ...
    justification: str = ""  # the reason the person gave, if any (limits.justification_problem)


@dataclass(frozen=True)
class PolicyState:
    """What earlier runs left behind that selection must respect."""

    baseline_at: datetime | None = None  # when the first membership snapshot was taken
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    last_yes: Mapping[str, datetime] = field(default_factory=dict)  # state key -> answered at
    open_requests: Mapping[str, str] = field(default_factory=dict)  # state key -> request id

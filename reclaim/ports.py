"""One small Protocol per outside system; adapters in reclaim/adapters/ implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable

from reclaim.domain.access import Caller
from reclaim.domain.breaker import Breaker
from reclaim.domain.history import RunHistory
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.messages import Message
from reclaim.domain.model import Answer, AnswerValue, Member, PolicyState, UsageRow, User
from reclaim.domain.notice import Notice
from reclaim.domain.policy import Policy
from reclaim.domain.records import DecisionRecord, Lease, LedgerEntry, RemovalMessage, RunRecord
from reclaim.domain.reminders import DueReminder
from reclaim.domain.switches import SwitchChange
from reclaim.domain.write_budget import Bucket

T = TypeVar("T")

# ---- directory ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupInfo:
    id: str
    display_name: str
    member_count: int | None = None


class RemovalOutcome(StrEnum):
    REMOVED = "REMOVED"
    NOT_MEMBER = "NOT_MEMBER"
    REQUESTED = "REQUESTED"  # handed to an asynchronous executor (Nexthink remote action)
    FAILED = "FAILED"  # an asynchronous removal finished without success (RemovalTracker.finished)


@dataclass(frozen=True)
class RemovalResult:
    outcome: RemovalOutcome
    detail: str = ""  # e.g. the Nexthink request id
    # NOT_MEMBER answered to a retry of a write this call sent (its answer was lost): the user is
    # absent after our own write, which is a removal, not someone else's.
    after_own_write: bool = False


class AddOutcome(StrEnum):
    ADDED = "ADDED"
    ALREADY_MEMBER = "ALREADY_MEMBER"


Sending = Callable[[], None]


def unmarked() -> None:
    """`sending` of a removal no request tracks (a direct call of the adapter)."""


class Directory(Protocol):
    """A directory holding licensing groups: Entra ID, Active Directory, or a members export.

    Raises reclaim.errors: GroupRefused (pre-flight), ConfigurationError (permissions, settings),
    TransientError (retry later), PermanentError/UserNotFound (this user cannot be acted on).
    """

    def check_group(self, group: str) -> GroupInfo: ...

    def members(self, group: str) -> Iterator[Member]:
        """The group's direct members that are users (the ones a removal can take out)."""
        ...

    def member_groups(self, group: str) -> list[GroupInfo]:
        """The groups that are direct members of `group` (nested groups)."""
        ...

    def transitive_users(self, group: str) -> Iterator[User]:
        """Every user in `group` at any depth of nesting (for exclusions and nested groups)."""
        ...

    def remove(
        self,
        group: str,
        user: User,
        *,
        request_id: str = "",
        run_id: str = "",
        sending: Sending = ...,
    ) -> RemovalResult:
        """Remove one user. request_id and run_id travel with asynchronous executors (Nexthink
        remote actions) for traceability. Whether a seat was freed is checked later (Licences).
        `sending` is called right before the write itself goes out (after any lookups, tokens
        and binds): the worker stores then that a write was sent (README "Our own writes")."""
        ...

    def add(self, group: str, user: User, *, removed: str = "") -> AddOutcome:
        """Add one user back. `removed` is the detail the removal recorded (entra-licence keeps
        the assignment's disabled plans there, to restore them as they were)."""
        ...


class RemovalTracker(Protocol):
    """A directory whose removals finish later (REQUESTED): reports the ones that have finished."""

    def finished(self, requests: Sequence[Request]) -> dict[str, RemovalResult]: ...


# ---- licences ----------------------------------------------------------------------------------


class SeatState(StrEnum):
    FREED = "freed"  # the SKU is no longer assigned to the user: the seat is free
    STILL_LICENSED = "still-licensed"  # still assigned, directly or by another group
    PENDING = "pending"  # licence processing (or sync) has not caught up yet: ask again later
    UNKNOWN = "unknown"  # the user cannot be found: nothing can be said


@dataclass(frozen=True)
class SeatQuery:
    key: str  # the removal's request id
    user_id: str  # the Entra object id, or the UPN of a user synced from AD
    sku_id: str
    group: str = ""  # the Entra group the licence came from; "" when not known (AD paths)
    # entra-licence: a direct assignment was taken away, so any assignment left, a group's
    # included, means the seat is still held (nothing is waiting for group processing)
    direct: bool = False


@dataclass(frozen=True)
class SeatResult:
    state: SeatState
    detail: str = ""


class Licences(Protocol):
    """Where licence seats are counted (Entra ID, also for users synced from AD)."""

    def seats(self, queries: Sequence[SeatQuery]) -> dict[str, SeatResult]:
        """The state of each query's seat by key; absent when it could not be read this time."""
        ...


# ---- usage -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageExport:
    """Rows are an iterator, read once: a million-row export is streamed, never held.

    The data's age comes from its own clock: the newest `UsageRow.at`, or `observed_at` when the
    source dates the whole export (only a CSV file's modification time, as a last resort).
    `clock` says which, for the plan."""

    observed_at: datetime | None
    rows: Iterable[UsageRow]
    clock: str = ""


class UsageSource(Protocol):
    def usage(self, policy: Policy, now: datetime) -> UsageExport: ...


# ---- campaign ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AskResult:
    asked: dict[str, str] = field(default_factory=dict)  # request id -> the channel's own reference
    not_asked: dict[str, str] = field(default_factory=dict)  # request id -> why not


@dataclass(frozen=True)
class ChannelAnswer:
    """An answer as a channel reports it: by request id, or by a user identifier."""

    value: AnswerValue
    answered_at: datetime
    request_id: str = ""
    user: str = ""


class Campaign(Protocol):
    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult: ...

    def answers(self, policy: Policy, since: datetime) -> Iterable[ChannelAnswer]:
        """Answers of channels that cannot push; a pushing channel returns none."""
        ...

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        """Remind each request's user that the ask waits for an answer by its deadline; asked:
        reminded, not_asked: the channel said no, with why. Raises when nothing was sent."""
        ...


@runtime_checkable
class MessageChannel(Protocol):
    """A campaign channel that reaches each person with signed links (email, teams): every
    message kind (reclaim.domain.messages.KINDS) goes through `send`."""

    def send(self, outgoing: Sequence[Message]) -> AskResult:
        """Deliver each message (one per request id); asked: sent, with the channel's
        reference; not_asked: why not. Raises TransientError when nothing could be sent."""
        ...


@dataclass(frozen=True)
class ApprovalAsk:
    """What an approver is asked (escalation): the request, with its approval's approvers, the
    user's answer the approver is shown (None: she stayed silent), and the approver's deadline
    (request.deadline)."""

    request: Request
    answer: Answer | None = None


class ApprovalChannel(Protocol):
    """A campaign channel that can also reach an approver (webhook; email and Teams next)."""

    def ask_approval(self, policy: Policy, asks: Sequence[ApprovalAsk]) -> AskResult:
        """Ask each request's approvers to keep or release; asked: delivered, not_asked: the
        channel said no, with why. Raises when nothing was sent."""
        ...


class Managers(Protocol):
    """Who manages a user, in the directory the policy reads (Graph /manager, AD `manager`)."""

    def manager(self, user: User) -> User | None:
        """The user's manager, None when she has none. Raises TransientError (try later),
        ConfigurationError (permissions) or UserNotFound."""


class NoticeChannel(Protocol):
    """A campaign channel that can tell a user the removal date (policy.notice.NOTICE_CHANNELS);
    reclaim.usecases.send_notices is its one caller."""

    def notify(
        self, policy: Policy, notices: Sequence[tuple[Request, Notice]], now: datetime
    ) -> AskResult:
        """Tell each request's user `Notice.text()`: her licence goes on or after
        `Notice.remove_after` unless she answers yes before then. asked: delivered; not_asked:
        the channel said no, with why. Raises when nothing was delivered."""
        ...


# ---- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compaction:
    """What retention took away from one policy's state (reclaim.usecases.retention)."""

    runs: int = 0  # runs whose decision records were cut to the ones that chose someone
    decisions: int = 0  # decision records deleted
    requests: int = 0  # finished requests deleted (their ledger entries stay)
    histories: int = 0  # runs whose history (reclaim.domain.history) was deleted


class StateStore(Protocol):
    """Requests, answers, first-seen dates, runs, the ledger and the operators' switches.
    Every write is idempotent, except that a switch flip is appended each time (repeating one
    leaves the switch in the same state and shows in its history)."""

    # How many candidates' writes (request, ledger entry, queue message) a use case may send at
    # once: the store's own limit (reclaim.usecases.bookkeeping.each).
    write_concurrency: int

    def policy_state(self, policy: str, now: datetime) -> PolicyState: ...

    def atomic(self) -> AbstractContextManager[None]:
        """The writes inside are stored together where the store can (SQLite: one transaction);
        elsewhere one by one, in order, as without it. Never spans a call to another system."""
        ...

    def record_run(
        self,
        run: RunRecord,
        decisions: Sequence[DecisionRecord],
        snapshot: Iterable[str] | None,
    ) -> None:
        """Keep a run and its decisions; with a snapshot (state keys of the current members),
        first-seen dates are updated: new keys get run.started_at, departed keys are dropped."""
        ...

    def add_request(self, request: Request) -> bool:
        """False when a request with that id exists already."""
        ...

    def update_request(self, request: Request) -> bool:
        """Compare-and-set on the version: stores `request` only when the stored one has
        version request.version - 1; False when another writer got there first."""
        ...

    def get_request(self, request_id: str, policy: str | None = None) -> Request | None:
        """`policy`, when the caller knows it (a removal message carries it), spares a store
        that partitions by policy a lookup; a wrong one is no error, only slower."""
        ...

    def requests(
        self, policy: str | None = None, states: Iterable[RequestState] | None = None
    ) -> list[Request]: ...

    def user_requests(self, policy: str, user: str) -> list[Request]:
        """The policy's requests for the user with this identifier (any of the user's), oldest
        first: what an answer by policy and user looks up."""
        ...

    def record_answer(self, policy: str, state_key: str, answer: Answer) -> bool:
        """False when the same answer to the same request was recorded before."""
        ...

    def answers(self, policy: str, state_key: str) -> list[Answer]:
        """Every answer recorded for this user under this policy, oldest first, each with the
        justification it carried ("" for none, and for rows stored before there were any)."""
        ...

    def latest_yes(self, policy: str, state_key: str) -> datetime | None:
        """When this user last answered yes under this policy, if ever."""
        ...

    def schedule_cursor(self, policy: str) -> datetime | None:
        """The due time of the policy's last scheduled run."""
        ...

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        """Compare-and-set of the cursor: only one of several overlapping ticks wins a due time."""
        ...

    def take_lease(self, policy: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        """Take the policy's run lease until now + ttl, or extend it when `holder` has it; a
        lease another holder took that has not expired is left alone. Compare-and-set: of
        several callers at once, one gets it. Returns the lease as stored afterwards (ours when
        its holder is `holder`)."""
        ...

    def release_lease(self, policy: str, holder: str) -> None:
        """Give the lease up, if `holder` still has it."""
        ...

    def append_ledger(self, entry: LedgerEntry) -> bool:
        """False when an entry with that id exists already."""
        ...

    def ledger(
        self, since: datetime | None = None, policy: str | None = None
    ) -> list[LedgerEntry]: ...

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]: ...

    def user_decisions(self, policy: str, state_key: str) -> list[DecisionRecord]: ...

    def run_decisions(self, policy: str, run_id: str) -> list[DecisionRecord]:
        """Every decision a run of the policy recorded (after retention, the CANDIDATE ones), by
        state key; [] for a run that is not stored."""
        ...

    def compact(self, policy: str, before: datetime) -> Compaction:
        """Retention. Runs that started before `before` keep only the decision records that
        chose someone (CANDIDATE, with their reason and evidence: what explain shows) and lose
        their history; finished requests (FINAL_STATES) last changed before it are deleted. The
        ledger, the runs, the answers and REMOVED requests (restore needs them) are kept.
        Idempotent."""
        ...

    def record_history(self, history: RunHistory) -> None:
        """Keep a recorded run's members' inputs (what `simulate` replays); idempotent."""
        ...

    def histories(self, policy: str, since: datetime | None = None) -> list[RunHistory]:
        """The policy's run histories from runs that started at or after `since`, oldest
        first."""
        ...

    def record_switch(self, change: SwitchChange) -> None:
        """Keep one flip of an operator's switch; earlier flips stay as its history."""
        ...

    def latest_switch(self, name: str) -> SwitchChange | None:
        """The newest flip of the switch (by its time), None when it was never set."""
        ...

    def switch_history(self, name: str, limit: int = 20) -> list[SwitchChange]:
        """The newest `limit` flips of the switch, newest first."""
        ...

    def get_breaker(self, policy: str, directory: str) -> Breaker | None: ...

    def save_breaker(self, breaker: Breaker) -> bool:
        """Compare-and-set on the version, like update_request; version 1 creates it."""
        ...

    def breakers(self) -> list[Breaker]: ...


class WriteBudget(Protocol):
    """The Graph write bucket every instance of the app shares (reclaim.domain.write_budget),
    kept in the state store and changed by compare-and-set (Table ETag, SQLite transaction)."""

    def change(self, update: Callable[[Bucket | None], tuple[Bucket, T]]) -> T:
        """Read the bucket (None before the first write), store update's bucket unless another
        instance changed it meanwhile (then read and call update again), return update's value.
        Raises reclaim.errors.TransientError when the store cannot be reached or stays contended."""
        ...


class WorkQueue(Protocol):
    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None: ...


class Notifier(Protocol):
    def notify(self, text: str) -> None:
        """Post a short message for administrators (Teams or Slack incoming webhook)."""
        ...


class AdminIdentities(Protocol):
    """Who calls a manage route: a verified Entra ID token (or the platform's forwarded principal)."""

    def identify(self, authorization: str, platform_principal: str = "") -> Caller:
        """The caller behind the Authorization header (or, when the platform's authentication is
        trusted, the X-MS-CLIENT-PRINCIPAL header). Raises reclaim.errors.Unauthenticated (no or
        no acceptable token), TransientError (the tenant's keys cannot be fetched now) or
        ConfigurationError (the audience or tenant is not set)."""
        ...


class Secrets(Protocol):
    def get(self, name: str) -> str:
        """The secret's value; raises ConfigurationError naming the secret (never the value)."""
        ...


__all__ = [
    "AddOutcome",
    "AdminIdentities",
    "ApprovalAsk",
    "ApprovalChannel",
    "AskResult",
    "Campaign",
    "ChannelAnswer",
    "Compaction",
    "Directory",
    "GroupInfo",
    "Managers",
    "MessageChannel",
    "NoticeChannel",
    "Notifier",
    "RemovalOutcome",
    "RemovalResult",
    "RemovalTracker",
    "Secrets",
    "StateStore",
    "UsageExport",
    "UsageSource",
    "WorkQueue",
    "WriteBudget",
]

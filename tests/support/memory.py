"""In-memory implementations of the Directory and Campaign ports, for use-case tests where
which directory it is does not matter (the real adapters have their own tests against real servers
and HTTPS fakes)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reclaim.domain.lifecycle import Request
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.notice import Notice
from reclaim.domain.policy import Policy
from reclaim.domain.records import RemovalMessage
from reclaim.domain.reminders import DueReminder
from reclaim.errors import TransientError
from reclaim.ports import (
    AddOutcome,
    ApprovalAsk,
    AskResult,
    ChannelAnswer,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    SeatQuery,
    SeatResult,
    SeatState,
    Sending,
    UsageExport,
    unmarked,
)


class WorkerDied(Exception):
    """The worker's process ends here (SIGKILL): nothing after this line of it runs. No use case
    catches it (they catch reclaim's own errors only), so it leaves as a kill would."""


@dataclass
class MemoryDirectory:
    groups: dict[str, list[Member]] = field(default_factory=dict)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (group, label), in order
    transient_failures: int = 0  # the next N removals raise TransientError
    failures: dict[str, Exception] = field(default_factory=dict)  # label -> raised by remove()
    add_failures: dict[str, Exception] = field(default_factory=dict)  # label -> raised by add()
    read_delay: float = 0.0  # seconds each listing takes, so overlapping runs really overlap
    nested: dict[str, list[str]] = field(default_factory=dict)  # group -> groups among its members
    # labels whose removal is done and then its answer lost (the connection dropped after it)
    lost_answers: set[str] = field(default_factory=set)
    unreachable: int = 0  # the next N removals find the directory unreachable: nothing sent
    refuse_all: Exception | None = None  # raised by every remove() (a missing permission, ...)
    remove_calls: int = 0
    # The next removal's worker dies (WorkerDied): "before" its write is sent, or "after" the
    # directory applied it, before the answer.
    dies: str = ""

    def holds(self, group: str, label: str) -> bool:
        return any(m.user.label == label for m in self.groups.get(group, []))

    def check_group(self, group: str) -> GroupInfo:
        return GroupInfo(group, group, len(self.groups.get(group, [])))

    def members(self, group: str) -> Iterator[Member]:
        listed = list(self.groups.get(group, []))
        time.sleep(self.read_delay)
        yield from listed

    def member_groups(self, group: str) -> list[GroupInfo]:
        return [GroupInfo(inner, inner) for inner in self.nested.get(group, [])]

    def transitive_users(self, group: str, _seen: frozenset[str] = frozenset()) -> Iterator[User]:
        if group in _seen:
            return  # a cycle of nested groups, as directories allow
        yield from (m.user for m in list(self.groups.get(group, [])))
        for inner in self.nested.get(group, []):
            yield from self.transitive_users(inner, _seen | {group})

    def remove(
        self, group: str, user: User, *, sending: Sending = unmarked, **_: str
    ) -> RemovalResult:
        self.remove_calls += 1
        dies, self.dies = self.dies, ""
        if dies == "before":
            raise WorkerDied("killed before sending its write")
        sending()  # as the real adapters do, right before the call
        if self.refuse_all is not None:
            raise self.refuse_all
        if user.label in self.failures:
            raise self.failures[user.label]
        if self.unreachable:
            self.unreachable -= 1
            raise TransientError("connection refused", retry_after=2, unsent=True)
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("throttled", retry_after=2)
        members = self.groups.get(group, [])
        for member in members:
            if member.user == user:
                members.remove(member)
                self.removed.append((group, user.label))
                if dies == "after":
                    raise WorkerDied("killed after its write was applied, before the answer")
                if user.label in self.lost_answers:
                    self.lost_answers.discard(user.label)
                    raise TransientError("connection reset before the answer")
                return RemovalResult(RemovalOutcome.REMOVED)
        return RemovalResult(RemovalOutcome.NOT_MEMBER)

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        if user.label in self.add_failures:
            raise self.add_failures[user.label]
        members = self.groups.setdefault(group, [])
        if any(m.user == user for m in members):
            return AddOutcome.ALREADY_MEMBER
        members.append(Member(user))
        return AddOutcome.ADDED


@dataclass
class MemoryUsage:
    rows: list[UsageRow]
    observed_at: datetime

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        return UsageExport(self.observed_at, iter(self.rows), clock="the test's observed_at")


@dataclass
class MemoryCampaign:
    refuse: set[str] = field(default_factory=set)  # user labels the channel will not ask
    asked: list[str] = field(default_factory=list)
    reminded: list[tuple[str, int]] = field(default_factory=list)  # request id, reminder number
    noticed: list[tuple[str, datetime]] = field(default_factory=list)  # request id, date told
    pending_answers: list[ChannelAnswer] = field(default_factory=list)
    approval_asks: list[ApprovalAsk] = field(default_factory=list)  # escalation, as delivered
    refuse_approvals: bool = False  # the channel answers every approval ask "not sent"

    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult:
        result = AskResult()
        for request in requests:
            if request.user.label in self.refuse:
                result.not_asked[request.id] = "no device seen for this user"
            else:
                self.asked.append(request.user.label)
                result.asked[request.id] = f"ext-{request.id[:6]}"
        return result

    def answers(self, policy: Policy, since: datetime) -> Iterable[ChannelAnswer]:
        answers, self.pending_answers = self.pending_answers, []
        return answers

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        result = AskResult()
        for request, due in reminders:
            if request.user.label in self.refuse:
                result.not_asked[request.id] = "no device seen for this user"
            else:
                self.reminded.append((request.id, due.number))
                result.asked[request.id] = f"ext-{request.id[:6]}"
        return result

    def notify(
        self, policy: Policy, notices: Sequence[tuple[Request, Notice]], now: datetime
    ) -> AskResult:
        result = AskResult()
        for request, notice in notices:
            if request.user.label in self.refuse:
                result.not_asked[request.id] = "no device seen for this user"
            else:
                self.noticed.append((request.id, notice.remove_after))
                result.asked[request.id] = f"ext-{request.id[:6]}"
        return result

    def ask_approval(self, policy: Policy, asks: Sequence[ApprovalAsk]) -> AskResult:
        if self.refuse_approvals:
            return AskResult(not_asked={a.request.id: "receiver answered HTTP 400" for a in asks})
        self.approval_asks.extend(asks)
        return AskResult(asked={a.request.id: a.request.id for a in asks})


@dataclass
class MemoryManagers:
    """Managers by user label; `down` makes every lookup fail like a directory that is away."""

    of: dict[str, User] = field(default_factory=dict)
    down: bool = False
    looked_up: list[str] = field(default_factory=list)

    def manager(self, user: User) -> User | None:
        if self.down:
            raise TransientError("directory unavailable (memory)")
        self.looked_up.append(user.label)
        return self.of.get(user.label)


@dataclass
class MemoryQueue:
    """A WorkQueue that keeps messages so a test can deliver them (or deliver them twice)."""

    messages: list[tuple[RemovalMessage, timedelta | None]] = field(default_factory=list)

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        self.messages.append((message, delay))

    def drain(self) -> list[RemovalMessage]:
        taken = [m for m, _ in self.messages]
        self.messages.clear()
        return taken


@dataclass
class MemoryLicences:
    """Seats by user id (object id or UPN): freed unless listed as still licensed or pending."""

    still_licensed: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)  # licence processing not finished yet
    asked: list[list[SeatQuery]] = field(default_factory=list)  # each call's queries

    def seats(self, queries: Sequence[SeatQuery]) -> dict[str, SeatResult]:
        self.asked.append(list(queries))
        results = {}
        for query in queries:
            if query.user_id in self.pending:
                results[query.key] = SeatResult(SeatState.PENDING, "processing")
            elif query.user_id in self.still_licensed:
                results[query.key] = SeatResult(SeatState.STILL_LICENSED, "another group")
            else:
                results[query.key] = SeatResult(SeatState.FREED, "no longer assigned")
        return results


@dataclass
class MemoryAdapters:
    directory_: MemoryDirectory
    usage_: MemoryUsage
    campaign_: MemoryCampaign = field(default_factory=MemoryCampaign)
    licences_: MemoryLicences = field(default_factory=MemoryLicences)
    managers_: MemoryManagers = field(default_factory=MemoryManagers)

    def directory(self, policy: Policy) -> MemoryDirectory:
        return self.directory_

    def usage_source(self, policy: Policy) -> MemoryUsage:
        return self.usage_

    def campaign(self, policy: Policy) -> MemoryCampaign:
        return self.campaign_

    def licences(self, policy: Policy) -> MemoryLicences:
        return self.licences_

    def managers(self, policy: Policy) -> MemoryManagers:
        return self.managers_

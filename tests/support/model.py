"""A model of the world reclaim acts on, and a hypothesis state machine that drives the real use
cases through it while checking DESIGN §8's invariants after every step.

The world is small on purpose (8 users, one licensing group, one exclusion group with a nested
group inside it) so that random interleavings hit the interesting corners often: answers racing
deadlines, usage arriving after the ask, people joining and leaving, accounts disabled and enabled
again (leavers, under disabled_accounts keep or reclaim), nested exclusion changing, manager
escalation (the approver keeps, releases or stays silent; strangers are refused),
the kill switch flipping, stale data, a failing directory, overlapping runs and redelivered
messages. The truth the invariants are judged by is the model's own record of what happened
(usage events, membership changes, answers), never what reclaim stored.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reclaim import usecases
from reclaim.domain.approval import ApproverDecision
from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import FINAL_STATES, OPEN_STATES, QueueReason, Request, RequestState
from reclaim.domain.model import Account, AnswerValue, Member, User
from reclaim.domain.notice import Notice
from reclaim.domain.policy import Policy
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import LedgerOutcome, RemovalMessage
from reclaim.domain.reminders import DueReminder
from reclaim.errors import TransientError
from reclaim.ports import (
    AddOutcome,
    ApprovalAsk,
    AskResult,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    Sending,
    UsageExport,
    unmarked,
)
from reclaim.usecases.context import InputError
from reclaim.usecases.lease import PolicyBusy
from reclaim.usecases.record_approval import ApprovalCommand, NotApprover, record_approval
from tests.conftest import NOW, make_policy
from tests.support.memory import MemoryCampaign, WorkerDied
from tests.support.model_links import LinkRules, approve_by_link

GROUP = "SF"
EXCLUDE = "XAdmins"
NESTED = "XTier0"
LOOKBACK = timedelta(days=30)
THRESHOLD = 5.0  # minutes
GRACE = timedelta(days=14)
KEEP = timedelta(days=30)
RESPOND = timedelta(days=7)
REMINDERS = (timedelta(days=3), timedelta(days=1))  # before the deadline, the earliest first
NOTICE = timedelta(days=4)  # policy.notice.period, when the example's policy gives notice
CAP = 4
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(8)]
LABELS = [u.label for u in USERS]
BY_LABEL = {u.label: u for u in USERS}
# Slack for clocks: a decision made at the start of a step may act a moment later.
SLACK = timedelta(minutes=1)
# escalation: u0..u3 have a manager, the others go to the fallback approver.
BOSS = User(object_id="boss", upn="boss@c.com")
FALLBACK = "owner@c.com"
MANAGED = {u.label for u in USERS[:4]}
# (when, the approver's silence) of the policy's escalation; None: the policy does not escalate
ESCALATIONS = [None, ("keep", "keep"), ("keep", "reclaim"), ("always", "reclaim"),
               (["keep", "no_response"], "keep")]  # fmt: skip


@dataclass
class World:
    """The truth: who is in which group since when, who used the app when, who answered what."""

    now: datetime = NOW
    members: dict[str, datetime] = field(default_factory=dict)  # label -> joined at
    nested: set[str] = field(default_factory=set)  # labels in XTier0 (inside XAdmins)
    nested_history: list[tuple[int, frozenset[str]]] = field(default_factory=list)  # (seq, who)
    # (seq, who) after every change of who also gets the licence from another group (an
    # entra-licence policy must never remove them: the seat stays held)
    inherited_history: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)  # labels whose account is disabled (leavers)
    disabled_history: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    # (seq, label -> joined at) after every membership change, to judge by data at the release
    members_history: list[tuple[int, dict[str, datetime]]] = field(default_factory=list)
    # (label, when, minutes, seq): seq orders events that share a timestamp with a decision.
    usage: list[tuple[str, datetime, float, int]] = field(default_factory=list)
    seq: int = 0  # bumped by every step: what happened before a decision has a smaller seq
    yes: dict[str, list[datetime]] = field(default_factory=dict)  # label -> yes (and restore) times
    no: dict[str, list[datetime]] = field(default_factory=dict)
    stale_usage: bool = False
    directory_down: bool = False
    # (request id, label, at): every removal reclaim's writes performed, in order.
    removed: list[tuple[str, str, datetime]] = field(default_factory=list)
    restored: list[tuple[str, datetime]] = field(default_factory=list)
    # escalation: request id -> (when the approver was asked, the approver's deadline), and the
    # approvers' decisions: request id -> [(decision, at)]
    approval_asked: dict[str, tuple[datetime, datetime | None]] = field(default_factory=dict)
    approver_decisions: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def members_changed(self) -> None:
        self.members_history.append((self.seq, dict(self.members)))

    def members_before(self, seq: int | None) -> dict[str, datetime]:
        """Who was a member (and since when) before step `seq` (now, without a seq)."""
        if seq is None:
            return dict(self.members)
        earlier = [who for at, who in self.members_history if at < seq]
        return earlier[-1] if earlier else {}

    def nested_before(self, seq: int | None) -> frozenset[str]:
        """Who was in the nested exclusion group before step `seq` (now, without a seq)."""
        if seq is None:
            return frozenset(self.nested)
        earlier = [who for at, who in self.nested_history if at < seq]
        return earlier[-1] if earlier else frozenset()

    def inherited_before(self, seq: int | None) -> frozenset[str]:
        """Who held the licence through another group before step `seq` (now, without one)."""
        history = [who for at, who in self.inherited_history if seq is None or at < seq]
        return history[-1] if history else frozenset()

    def disabled_before(self, seq: int | None) -> frozenset[str]:
        """Whose account was disabled before step `seq` (now, without a seq)."""
        if seq is None:
            return frozenset(self.disabled)
        earlier = [who for at, who in self.disabled_history if at < seq]
        return earlier[-1] if earlier else frozenset()

    def used(self, label: str, at: datetime, before_seq: int | None = None) -> float:
        """Minutes in the look-back up to `at`; with before_seq, only events logged before it."""
        return sum(
            m
            for who, when, m, seq in self.usage
            if who == label
            and at - LOOKBACK <= when <= at
            and (before_seq is None or seq < before_seq)
        )


class ModelDirectory:
    """The Directory port over the world; checks invariant 1 at the moment of each removal."""

    def __init__(self, world: World, judge: Callable[[str, str], None]) -> None:
        self.world = world
        self.judge = judge
        self.lock = threading.Lock()
        self.dies = ""  # the next removal's worker dies: "before" its write, or "after" it

    def check_group(self, group: str) -> GroupInfo:
        if self.world.directory_down:
            raise TransientError("directory unavailable (model)")
        return GroupInfo(group, group, None)

    def _users(self, group: str) -> list[str]:
        if group == GROUP:
            return sorted(self.world.members)
        if group in (EXCLUDE, NESTED):
            return sorted(self.world.nested)
        return []

    def members(self, group: str) -> Iterator[Member]:
        if self.world.directory_down:
            raise TransientError("directory unavailable (model)")
        if group == EXCLUDE:
            return iter([])  # its only member is the group XTier0; users are inside that
        # The directory knows when each member joined (as AD's replication metadata would say).
        inherited = self.world.inherited_before(None) if group == GROUP else frozenset()
        return iter(
            [
                Member(
                    BY_LABEL[label],
                    added_at=self._joined(group, label),
                    inherited_from="LicGroup" if label in inherited else "",
                    account=Account(enabled=label not in self.world.disabled, source="model"),
                )
                for label in self._users(group)
            ]
        )

    def _joined(self, group: str, label: str) -> datetime | None:
        return self.world.members.get(label) if group == GROUP else None

    def member_groups(self, group: str) -> list[GroupInfo]:
        if self.world.directory_down:
            raise TransientError("directory unavailable (model)")
        return [GroupInfo(NESTED, NESTED)] if group == EXCLUDE else []

    def transitive_users(self, group: str) -> Iterator[User]:
        if self.world.directory_down:
            raise TransientError("directory unavailable (model)")
        return iter([BY_LABEL[label] for label in self._users(group)])

    def remove(
        self, group: str, user: User, *, sending: Sending = unmarked, **context: str
    ) -> RemovalResult:
        dies, self.dies = self.dies, ""
        if dies == "before":
            raise WorkerDied("killed before sending its write")
        if self.world.directory_down:  # connection refused: the write never went out
            raise TransientError("directory unavailable (model)", unsent=True)
        sending()
        with self.lock:
            if user.label not in self.world.members:
                return RemovalResult(RemovalOutcome.NOT_MEMBER)
            request_id = context.get("request_id", "")
            self.judge(request_id, user.label)
            del self.world.members[user.label]
            self.world.members_changed()
            self.world.removed.append((request_id, user.label, self.world.now))
        if dies == "after":
            raise WorkerDied("killed after the directory applied its write, before the answer")
        return RemovalResult(RemovalOutcome.REMOVED)

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        with self.lock:
            if user.label in self.world.members:
                return AddOutcome.ALREADY_MEMBER
            # Re-added now, as the directory dates it (Graph's audit log: a new "Add member").
            self.world.members[user.label] = self.world.now
            self.world.members_changed()
            return AddOutcome.ADDED


@dataclass
class ModelUsage:
    world: World

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        from reclaim.domain.model import UsageRow

        observed = now - timedelta(days=10) if self.world.stale_usage else now
        rows = [UsageRow(u.upn, self.world.used(u.label, observed)) for u in USERS]
        return UsageExport(observed, iter(rows))


class ModelCampaign(MemoryCampaign):
    """Judges each reminder as the channel receives it, by the store and the world's clock:
    only to a request still PENDING, before its deadline, inside that reminder's own window
    (not late once the next one's time has come), and never the same one twice. Each notice:
    only to a request in NOTICE, its date a full period after its delivery; `told` keeps every
    date told, for the judge. While `down`, every notice fails (the channel is unreachable)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.store: Any = None
        self.lock = threading.Lock()
        self.down = False
        self.told: dict[str, list[datetime]] = {}  # request id -> every removal date told

    def notify(
        self, policy: Policy, notices: Sequence[tuple[Request, Notice]], now: datetime
    ) -> AskResult:
        if self.down:
            raise TransientError("notice channel unavailable (model)")
        with self.lock:
            for request, notice in notices:
                stored = self.store.get_request(request.id)
                if stored is None or stored.state is not RequestState.NOTICE:
                    self.world.violations.append(
                        f"notice to {request.user.label}: the request is "
                        f"{stored.state.value if stored else 'gone'}"
                    )
                if notice.remove_after < self.world.now + NOTICE:
                    self.world.violations.append(
                        f"notice to {request.user.label} at {self.world.now:%m-%d %H:%M} tells "
                        f"{notice.remove_after:%m-%d %H:%M}: shorter than {NOTICE}"
                    )
                self.told.setdefault(request.id, []).append(notice.remove_after)
            return super().notify(policy, notices, now)

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        with self.lock:
            for request, due in reminders:
                stored = self.store.get_request(request.id)
                deadline = request.deadline or request.created_at + RESPOND
                opens = deadline - REMINDERS[due.number - 1]
                closes = (
                    deadline - REMINDERS[due.number] if due.number < len(REMINDERS) else deadline
                )
                problems = []
                if stored is None or stored.state is not RequestState.PENDING:
                    problems.append(f"the request is {stored.state.value if stored else 'gone'}")
                if not opens <= now < closes:
                    problems.append(f"outside its window {opens:%m-%d %H:%M}..{closes:%m-%d %H:%M}")
                if (request.id, due.number) in self.reminded:
                    problems.append("sent twice")
                if problems:
                    self.world.violations.append(
                        f"reminder {due.number} to {request.user.label} at {now:%m-%d %H:%M}: "
                        + "; ".join(problems)
                    )
            return super().remind(policy, reminders, now)

    def ask_approval(self, policy: Policy, asks: Sequence[ApprovalAsk]) -> AskResult:
        with self.lock:
            for ask in asks:
                stored = self.store.get_request(ask.request.id)
                if stored is None or stored.state is not RequestState.AWAITING_APPROVAL:
                    self.world.violations.append(
                        f"approval asked for {ask.request.user.label} while "
                        f"{stored.state.value if stored else 'gone'}"
                    )
                self.world.approval_asked.setdefault(
                    ask.request.id, (self.world.now, ask.request.deadline)
                )
            return super().ask_approval(policy, asks)


class ModelManagers:
    def manager(self, user: User) -> User | None:
        return BOSS if user.label in MANAGED else None


@dataclass
class ModelAdapters:
    directory_: ModelDirectory
    usage_: ModelUsage
    campaign_: MemoryCampaign

    def directory(self, policy: Policy) -> ModelDirectory:
        return self.directory_

    def usage_source(self, policy: Policy) -> ModelUsage:
        return self.usage_

    def campaign(self, policy: Policy) -> MemoryCampaign:
        return self.campaign_

    def managers(self, policy: Policy) -> ModelManagers:
        return ModelManagers()


@dataclass
class ModelQueue:
    """A WorkQueue with visibility times, so delays and redeliveries happen as on Azure."""

    world: World
    waiting: list[tuple[datetime, RemovalMessage]] = field(default_factory=list)
    delivered: list[RemovalMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    released_in: dict[tuple[str, datetime | None], int] = field(default_factory=dict)

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        with self.lock:
            self.released_in.setdefault((message.request_id, message.decided_at), self.world.seq)
            self.waiting.append((self.world.now + (delay or timedelta()), message))

    def take_visible(self) -> list[RemovalMessage]:
        with self.lock:
            visible = [m for at, m in self.waiting if at <= self.world.now]
            self.waiting = [(at, m) for at, m in self.waiting if at > self.world.now]
            self.delivered += visible
            return visible


def asking_policy_data(
    ask: bool,
    on_no_response: str,
    disabled_accounts: str = "keep",
    escalation: Any = None,
    notice: bool = False,
) -> Policy:
    campaign = {
        "channel": "webhook",
        "url": "https://survey.example/ask",
        "respond_within": "7d",
        "on_no_response": on_no_response,
        "reminders": [format_duration(r) for r in REMINDERS],
    }
    return make_policy(
        mode="enforce",
        ask_permission=ask,
        campaign=campaign if ask else {"channel": "none"},
        usage={
            "source": "csv",
            "file": "usage.csv",
            "match_on": "upn",
            "threshold": "5m",
            "lookback": "30d",
            "max_age": "2d",
        },
        exclude={"groups": [EXCLUDE]},
        new_member_grace="14d",
        keep_after_yes="30d",
        limits={"max_removals_per_run": CAP, "max_percent_of_group": 100},
        disabled_accounts=disabled_accounts,
        appeal_within="14d",
        escalation=None
        if escalation is None or not ask
        else {
            "fallback": [FALLBACK],
            "when": escalation[0],
            "respond_within": "3d",
            "on_no_response": escalation[1],
        },
        notice={"period": format_duration(NOTICE)} if ask and notice else None,
    )


class ReclaimMachine(LinkRules, RuleBasedStateMachine):
    """Subclasses say which store the use cases run over (`make_store`)."""

    steps = 0  # rules run, over every example: CI's budget is checked against it
    escalating = False  # True: every example asks and escalates (EscalationMachine)

    def make_store(self) -> Any:  # pragma: no cover - every subclass names its store
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.ids = (f"id-{n:05d}" for n in itertools.count())
        self.releases_before = 0
        self.working: RemovalMessage | None = None  # the message perform_removal is acting on

    @initialize(
        ask=st.booleans(),
        on_no_response=st.sampled_from(["reclaim", "keep"]),
        joined_days_ago=st.lists(st.integers(0, 60), min_size=8, max_size=8),
        nested=st.sets(st.sampled_from(LABELS), max_size=3),
        active=st.sets(st.sampled_from(LABELS), min_size=3, max_size=6),
        disabled=st.sets(st.sampled_from(LABELS), max_size=2),
        disabled_accounts=st.sampled_from(["keep", "reclaim"]),
        escalation=st.sampled_from(ESCALATIONS),
        notice=st.booleans(),
    )
    def setup(
        self,
        ask: bool,
        on_no_response: str,
        joined_days_ago: list[int],
        nested: set[str],
        active: set[str],
        disabled: set[str],
        disabled_accounts: str,
        escalation: Any,
        notice: bool,
    ) -> None:
        if self.escalating:  # every example asks and escalates, and a first run is under the cap
            ask, escalation = True, escalation or ESCALATIONS[1]
            active = active | set(LABELS[len(LABELS) - CAP :])
        self.policy = asking_policy_data(ask, on_no_response, disabled_accounts, escalation, notice)
        self.world.disabled = set(disabled)
        self.world.disabled_history.append((0, frozenset(disabled)))
        for label, days in zip(LABELS, joined_days_ago, strict=True):
            self.world.members[label] = NOW - timedelta(days=days)
        self.world.members_changed()
        self.world.nested = set(nested)
        self.world.nested_history.append((0, frozenset(nested)))
        for label in active:
            self.world.usage.append((label, NOW - timedelta(days=1), 60.0, 0))
        self.campaign = ModelCampaign(self.world)
        self.directory = ModelDirectory(self.world, self.judge)
        self.queue = ModelQueue(self.world)
        self.adapters = ModelAdapters(self.directory, ModelUsage(self.world), self.campaign)
        self.store = self.make_store()
        self.campaign.store = self.store
        self.ctx = self.context(self.store)
        self.deadlines: dict[
            str, datetime | None
        ] = {}  # request id -> its deadline when first seen

    def context(self, store: Any) -> usecases.Context:
        return usecases.Context(
            store,
            self.queue,
            self.adapters,
            {self.policy.name: self.policy},
            new_id=lambda: next(self.ids),
        )

    # ---- the judge: invariant 1 at the moment of removal -------------------------------------

    def judge(self, request_id: str, label: str) -> None:
        """Is removing `label` now allowed by the truth? Records why not."""
        world, policy, now = self.world, self.policy, self.world.now
        request = self.store.get_request(request_id) if request_id else None
        if request is None:
            world.violations.append(f"{label}: removed without a known request ({request_id!r})")
            return
        decided_at = self.working.decided_at if self.working is not None else None
        problems = []
        if decided_at is None:
            world.violations.append(f"{label}: removed on a message that carries no decision time")
            return
        if now - decided_at > policy.decision_max_age + SLACK:
            problems.append(
                f"decision of {decided_at:%m-%d %H:%M} is older than {policy.decision_max_age}"
            )
        released_in = self.queue.released_in.get((request_id, decided_at))
        if label in world.nested_before(released_in):
            problems.append("excluded through the nested group")
        if label in world.inherited_before(released_in):
            problems.append("licence inherited from another group (a removal frees no seat)")
        # A leaver the policy reclaims is removed whatever the usage, join date or campaign.
        disabled = label in world.disabled_before(released_in)
        leaver = disabled and policy.disabled_accounts.value == "reclaim"
        if disabled and not leaver:
            problems.append("a disabled account removed under disabled_accounts: keep")
        used = world.used(label, decided_at, released_in)
        if used >= THRESHOLD and not leaver:
            problems.append(f"active: {used} minutes by {decided_at:%m-%d %H:%M}")
        members_then = world.members_before(released_in)
        if label not in members_then:
            problems.append("not a member when the removal was released")
        elif decided_at - members_then[label] < GRACE and not leaver:
            problems.append("new member")
        # A "yes" her approver had seen when asked no longer protects her once released.
        released_after = self.approver_released(request_id)
        if any(
            now - at < KEEP and (released_after is None or at > released_after)
            for at in world.yes.get(label, [])
        ):
            problems.append("answered yes inside the keep window")
        # policy.notice: never before a date she was told, never untold after a "no", silence or
        # her approver's release.
        told = self.campaign.told.get(request_id, [])
        if told and now < max(told):
            problems.append(f"removed before {max(told):%m-%d %H:%M}, the date she was told")
        campaign_removal = request.queue_reason in (
            QueueReason.CONSENT,
            QueueReason.NO_RESPONSE,
            QueueReason.APPROVER,
        )
        if policy.notice is not None and campaign_removal and not told:
            problems.append("removed without a notice")
        if policy.ask_permission and not leaver:
            asked_at = request.created_at
            said_no = any(at >= asked_at for at in world.no.get(label, []))
            deadline = request.deadline or asked_at + RESPOND
            silent = policy.campaign.on_no_response.value == "reclaim" and now >= deadline
            escalation = policy.escalation
            if escalation is not None:  # what her approver decides stands in for her no or silence
                said_no = said_no and not escalation.covers(EscalateOn.NO)
                silent = silent and not escalation.covers(EscalateOn.NO_RESPONSE)
            if not (said_no or silent or released_after is not None):
                problems.append("no consent and the deadline has not passed")
        if problems:
            world.violations.append(f"{label} at {now:%m-%d %H:%M}: " + "; ".join(problems))

    def approver_released(self, request_id: str) -> datetime | None:
        """When her approver was asked, if the approver then released her: by a decision, or by
        staying silent past the approver's deadline under on_no_response: reclaim."""
        asked = self.world.approval_asked.get(request_id)
        escalation = self.policy.escalation
        if asked is None or escalation is None:
            return None
        decisions = [d for d, _ in self.world.approver_decisions.get(request_id, [])]
        if "release" in decisions:
            return asked[0]
        respond_by = asked[1]
        silent_reclaims = escalation.on_no_response.value == "reclaim" and not decisions
        if silent_reclaims and respond_by is not None and self.world.now >= respond_by:
            return asked[0]
        return None

    # ---- rules ----------------------------------------------------------------------------------

    def step(self, action: Callable[[], object]) -> None:
        self.world.seq += 1
        before = len(self._releases())
        action()
        releases = self._releases()
        if len(releases) - before > CAP:
            self.world.violations.append(
                f"{len(releases) - before} removals released in one step, over the cap of {CAP}"
            )
        rate = self.policy.limits.rate
        for at, _ in releases:
            # A request released again (handed back, its worker dead) is still one removal.
            inside = {r for when, r in releases if at - rate.window < when <= at}
            if len(inside) > rate.count:
                self.world.violations.append(
                    f"{len(inside)} removals released in the {rate.window} up to {at}, "
                    f"over {rate.count}"
                )
                break

    def _releases(self) -> list[tuple[datetime, str]]:
        """When each request was released to the worker (a QUEUED ledger entry each)."""
        return [
            (e.at, e.request_id)
            for e in self.store.ledger(policy=self.policy.name)
            if e.outcome is LedgerOutcome.QUEUED
        ]

    def deliver(self, message: RemovalMessage) -> None:
        self.working = message
        try:
            usecases.perform_removal(self.ctx, usecases.RemovalCommand(message), self.world.now)
        finally:
            self.working = None

    @rule(hours=st.sampled_from([1, 6, 24, 72, 24 * 8]))
    def advance(self, hours: int) -> None:
        self.world.now += timedelta(hours=hours)

    @rule(label=st.sampled_from(LABELS), minutes=st.sampled_from([1.0, 10.0, 600.0]))
    def use(self, label: str, minutes: float) -> None:
        self.world.seq += 1
        self.world.usage.append((label, self.world.now, minutes, self.world.seq))

    @rule(label=st.sampled_from(LABELS))
    def join_or_leave(self, label: str) -> None:
        self.world.seq += 1
        if label in self.world.members:
            del self.world.members[label]
        else:
            self.world.members[label] = self.world.now
        self.world.members_changed()

    @rule(label=st.sampled_from(LABELS))
    def toggle_nested_exclusion(self, label: str) -> None:
        self.world.seq += 1
        self.world.nested ^= {label}
        self.world.nested_history.append((self.world.seq, frozenset(self.world.nested)))

    @rule(label=st.sampled_from(LABELS))
    def toggle_inherited_licence(self, label: str) -> None:
        self.world.seq += 1
        held = self.world.inherited_before(None) ^ {label}
        self.world.inherited_history.append((self.world.seq, held))

    @rule(label=st.sampled_from(LABELS))
    def toggle_disabled(self, label: str) -> None:
        """The account is disabled (a leaver), or enabled again (a return, a mistake undone)."""
        self.world.seq += 1
        self.world.disabled ^= {label}
        self.world.disabled_history.append((self.world.seq, frozenset(self.world.disabled)))

    @rule()
    def toggle_stale_usage(self) -> None:
        self.world.stale_usage = not self.world.stale_usage

    @precondition(lambda self: self.policy.notice is not None)
    @rule()
    def toggle_notice_channel_down(self) -> None:
        self.campaign.down = not self.campaign.down

    @rule()
    def toggle_directory_down(self) -> None:
        self.world.directory_down = not self.world.directory_down

    @rule()
    def toggle_kill_switch(self) -> None:
        self.ctx.kill_switch = not self.ctx.kill_switch

    @rule()
    def run(self) -> None:
        self.step(lambda: usecases.run_policy(self.ctx, self.policy, self.world.now))

    @rule()
    def overlapping_runs(self) -> None:
        """Two triggers of the same policy at once (scheduler and "run now"), each its own store
        client, as two instances of the function app would have."""
        contexts = [self.ctx, self.context(self.make_store())]
        errors: list[BaseException] = []
        busy: list[usecases.Context] = []

        def go(ctx: usecases.Context) -> None:
            try:
                usecases.run_policy(ctx, self.policy, self.world.now)
            except PolicyBusy:
                busy.append(ctx)
            except BaseException as error:  # surfaced below, in the test's thread
                errors.append(error)

        def both() -> None:
            threads = [threading.Thread(target=go, args=(c,)) for c in contexts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        self.step(both)
        if errors:
            raise errors[0]
        assert len(busy) < 2, "both overlapping runs were refused: the lease was not released"

    @precondition(lambda self: self.policy.ask_permission)
    @rule(
        label=st.sampled_from(LABELS),
        yes=st.booleans(),
        twice=st.booleans(),
        reason=st.sampled_from(["", "needed for the quarterly audit"]),
    )
    def answer(self, label: str, yes: bool, twice: bool, reason: str) -> None:
        open_ones = [
            r
            for r in self.store.requests(
                self.policy.name,
                [
                    RequestState.PENDING,
                    RequestState.AWAITING_APPROVAL,
                    RequestState.NOTICE,
                    RequestState.QUEUED,
                ],
            )
            if r.user.label == label
        ]
        if not open_ones:
            return
        value = AnswerValue.YES if yes else AnswerValue.NO
        (self.world.yes if yes else self.world.no).setdefault(label, []).append(self.world.now)
        command = usecases.AnswerCommand(
            value, self.world.now, request_id=open_ones[-1].id, justification=reason
        )

        def answer() -> None:
            for _ in range(2 if twice else 1):
                usecases.record_answer(self.ctx, command, self.world.now)

        self.step(answer)

    @precondition(lambda self: self.policy.escalation is not None)
    @rule(
        pick=st.integers(0, 7),
        yes=st.booleans(),
        then=st.sampled_from(
            ["keep", "release", "stranger", "silence", "keep by link", "release by link"]
        ),
    )
    def escalate(self, pick: int, yes: bool, then: str) -> None:
        """One of the pending asks (after a run, if there is none) is answered, a tick asks her
        approver, who then keeps or releases her, or a stranger tries, or nobody decides. In one
        rule: swarm testing turns rules off at random, and five in a row would rarely all be on."""
        pending = self.store.requests(self.policy.name, [RequestState.PENDING])
        if not pending:  # a run first, which may ask someone
            self.step(lambda: usecases.run_policy(self.ctx, self.policy, self.world.now))
            pending = self.store.requests(self.policy.name, [RequestState.PENDING])
        if not pending:
            return
        request = pending[pick % len(pending)]
        value = AnswerValue.YES if yes else AnswerValue.NO
        (self.world.yes if yes else self.world.no).setdefault(request.user.label, []).append(
            self.world.now
        )
        command = usecases.AnswerCommand(value, self.world.now, request_id=request.id)
        self.step(lambda: usecases.record_answer(self.ctx, command, self.world.now))
        self.step(lambda: usecases.expire_requests(self.ctx, self.world.now))
        stored = self.store.get_request(request.id)
        if then != "silence" and stored is not None and stored.approval is not None:
            by_link = then.endswith(" by link")  # through the answer page's approval link
            self.decide(stored, then.startswith("keep"), then == "stranger", by_link)

    @precondition(lambda self: self.policy.escalation is not None)
    @rule(pick=st.integers(0, 7), keep=st.booleans(), stranger=st.booleans(), by_link=st.booleans())
    def approve(self, pick: int, keep: bool, stranger: bool, by_link: bool) -> None:
        """Any escalated request still open is decided (`pick` chooses which), through the
        approvals route's use case or the answer page's approval link (`by_link`)."""
        # As for her own answers: not while a worker holds the removal (a decision then is
        # recorded, and too late to stop it).
        deciding = [RequestState.AWAITING_APPROVAL, RequestState.DUE, RequestState.QUEUED]
        escalated = [
            r for r in self.store.requests(self.policy.name, deciding) if r.approval is not None
        ]
        if escalated:
            self.decide(escalated[pick % len(escalated)], keep, stranger, by_link)

    def decide(self, request: Request, keep: bool, stranger: bool, by_link: bool = False) -> None:
        """Her approver keeps or releases her; a stranger (or anyone before the approver was
        asked) is refused, and nothing changes. `by_link`: through the answer page, which may
        also refuse a decision no longer open (nothing changes then either)."""
        label = request.user.label
        approvers = request.approval.approvers if request.approval else ()
        who = "mallory@c.com" if stranger or not approvers else approvers[0].upn
        decision = ApproverDecision.KEEP if keep else ApproverDecision.RELEASE
        command = ApprovalCommand(self.policy.name, request.id, who, decision, "model")
        before = (self.store.get_request(request.id), len(self.store.ledger()))

        def decide() -> None:
            try:
                if by_link and not approve_by_link(self.ctx, command, self.world.now):
                    after = (self.store.get_request(request.id), len(self.store.ledger()))
                    assert after == before, f"a refused approval link changed {request.id}"
                    return
                if not by_link:
                    record_approval(self.ctx, command, self.world.now)
            except NotApprover:
                after = (self.store.get_request(request.id), len(self.store.ledger()))
                assert after == before, f"a refused approval changed {request.id}"
                assert who == "mallory@c.com", f"the approver {who} was refused"
                return
            except InputError as error:  # e.g. a justification the policy requires
                raise AssertionError(f"approval refused: {error}") from None
            assert who != "mallory@c.com", "a stranger's decision was accepted"
            decisions = self.world.approver_decisions.setdefault(request.id, [])
            if decision.value not in [d for d, _ in decisions]:
                decisions.append((decision.value, self.world.now))
                if keep:  # her approver's keep protects her like her own "yes"
                    self.world.yes.setdefault(label, []).append(self.world.now)

        self.step(decide)

    @rule()
    def expire(self) -> None:
        self.step(lambda: usecases.expire_requests(self.ctx, self.world.now))

    @precondition(lambda self: self.policy.ask_permission)
    @rule()
    def overlapping_expiry(self) -> None:
        """Two expiry ticks at once (two instances), each its own store client: each due
        reminder is still sent once."""
        contexts = [self.ctx, self.context(self.make_store())]
        errors: list[BaseException] = []

        def go(ctx: usecases.Context) -> None:
            try:
                usecases.expire_requests(ctx, self.world.now)
            except BaseException as error:  # surfaced below, in the test's thread
                errors.append(error)

        def both() -> None:
            threads = [threading.Thread(target=go, args=(c,)) for c in contexts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        self.step(both)
        if errors:
            raise errors[0]

    @rule(redeliver=st.booleans())
    def work(self, redeliver: bool) -> None:
        def deliver() -> None:
            messages = self.queue.take_visible()
            if redeliver and self.queue.delivered:
                messages.append(self.queue.delivered[0])
            for message in messages:
                self.deliver(message)

        self.step(deliver)

    @rule(
        point=st.sampled_from(["before", "after"]),
        meanwhile=st.sampled_from(["", "re-add", "remove"]),
    )
    def worker_dies(self, point: str, meanwhile: str) -> None:
        """A worker takes the next visible removal and dies in it: before its write is sent, or
        after the directory applied it and before the answer (its message is gone with it, as
        the local queue's would be after its visibility; the claim is left REMOVING). Then
        someone else may re-add the user, or remove her, before anyone recovers the claim."""

        def die() -> None:
            messages = self.queue.take_visible()
            if not messages:
                return
            message = messages[0]
            with self.queue.lock:  # the others were not taken
                self.queue.waiting += [(self.world.now, m) for m in messages[1:]]
            self.directory.dies = point
            try:
                self.deliver(message)
            except WorkerDied:
                pass
            finally:
                self.directory.dies = ""
            label = message.user.label
            if meanwhile == "re-add" and label not in self.world.members:
                self.world.members[label] = self.world.now
                self.world.members_changed()
            elif meanwhile == "remove" and label in self.world.members:
                del self.world.members[label]
                self.world.members_changed()

        self.step(die)

    @rule(label=st.sampled_from(LABELS))
    def restore(self, label: str) -> None:
        removed = [
            r
            for r in self.store.requests(self.policy.name, [RequestState.REMOVED])
            if r.user.label == label
        ]
        if not removed or self.world.directory_down:
            return
        request = removed[-1]
        usecases.restore(
            self.ctx,
            usecases.RestoreCommand(self.policy.name, user=request.user.upn),
            self.world.now,
        )
        self.world.yes.setdefault(request.user.label, []).append(self.world.now)
        self.world.restored.append((request.id, self.world.now))

    # ---- invariants -----------------------------------------------------------------------------

    @invariant()
    def no_wrong_removal_and_caps_hold(self) -> None:
        type(self).steps += 1
        if hasattr(self, "store"):
            assert not self.world.violations, self.world.violations

    @invariant()
    def one_open_request_per_user(self) -> None:
        if not hasattr(self, "store"):
            return
        open_ones = self.store.requests(self.policy.name, sorted(_OPEN, key=str))
        labels = [r.user.label for r in open_ones]
        assert len(labels) == len(set(labels)), f"several open requests: {sorted(labels)}"

    @invariant()
    def ledger_is_the_directory_history(self) -> None:
        if not hasattr(self, "store"):
            return
        removals = [r for r, _, _ in self.world.removed]
        assert len(removals) == len(set(removals)), "a request removed its user twice"
        ledger = self.store.ledger(policy=self.policy.name)
        said_removed = {e.request_id for e in ledger if e.outcome is LedgerOutcome.REMOVED}
        # A removal whose worker died before recording it is not in the ledger yet: its request
        # must still know that its write went out (it is settled when recovered; teardown ends
        # every request, so there the two sets are equal).
        remembered = {
            r.id
            for r in self.store.requests(self.policy.name, sorted(_OPEN, key=str))
            if r.unanswered_writes > 0
        }
        assert said_removed <= set(removals) <= said_removed | remembered, (
            f"ledger says removed {sorted(said_removed)}, the directory lost {sorted(removals)}, "
            f"open requests whose write went out unanswered: {sorted(remembered)}"
        )

    @invariant()
    def reminders_are_recorded_once_and_never_move_a_deadline(self) -> None:
        if not hasattr(self, "store"):
            return
        # While a request waits for its answer, its deadline is the one it was asked with (an
        # answer may end the wait early; reminders never move it).
        for request in self.store.requests(self.policy.name, [RequestState.PENDING]):
            first = self.deadlines.setdefault(request.id, request.deadline)
            assert request.deadline == first, f"{request.id}: deadline moved to {request.deadline}"
        sent = self.campaign.reminded
        assert len(sent) == len(set(sent)), f"a reminder sent twice: {sorted(sent)}"
        claimed = {
            (e.request_id, int(e.id.rsplit(":", 1)[1]))
            for e in self.store.ledger(policy=self.policy.name)
            if e.outcome is LedgerOutcome.REMINDED
        }
        assert set(sent) <= claimed, f"sent without a ledger entry: {sorted(set(sent) - claimed)}"

    @invariant()
    def every_notice_told_is_in_the_ledger(self) -> None:
        if not hasattr(self, "store"):
            return
        recorded = {
            e.request_id
            for e in self.store.ledger(policy=self.policy.name)
            if e.outcome is LedgerOutcome.NOTICE_SENT
        }
        told = set(self.campaign.told)
        assert told <= recorded, f"told without a ledger entry: {sorted(told - recorded)}"

    def teardown(self) -> None:
        """Give the world time to settle: every request must reach exactly one end."""
        if not hasattr(self, "store"):
            return
        self.world.directory_down = False
        self.campaign.down = False
        self.world.stale_usage = False
        self.ctx.kill_switch = False

        def settle() -> None:
            usecases.expire_requests(self.ctx, self.world.now)
            for message in self.queue.take_visible():
                self.deliver(message)

        for _ in range(6):
            self.world.now += timedelta(days=3)
            self.step(lambda: usecases.run_policy(self.ctx, self.policy, self.world.now))
            self.step(settle)
        self.world.now += timedelta(days=60)
        for _ in range(4):
            self.step(settle)
            self.world.now += timedelta(hours=2)
        if self.policy.escalation is not None:  # silence escalated above waits for the approver
            self.world.now += self.policy.escalation.respond_within
            for _ in range(4):
                self.step(settle)
                self.world.now += timedelta(hours=2)
        if self.policy.notice is not None:  # notices told by the last ticks run their period out
            self.world.now += NOTICE
            for _ in range(2):
                self.step(settle)
                self.world.now += timedelta(hours=2)
        stuck = [
            (r.user.label, r.state.value)
            for r in self.store.requests(self.policy.name)
            if r.state not in FINAL_STATES and r.state is not RequestState.REMOVED
        ]
        assert not stuck, f"requests without an end: {stuck}"
        assert not self.world.violations, self.world.violations
        self.ledger_is_the_directory_history()  # every request ended: now strictly equal


_OPEN = OPEN_STATES

"""Manager escalation and approval (policy key escalation) over the real SQLite store: a "keep",
a "no" or silence waits for the user's approver, who is looked up (manager, else fallback) and
asked on the expiry tick; only that approver may decide; "keep" protects like a "yes"; "release"
is re-decided and released by a tick like every removal, her "yes" no longer protecting her; the
approver's silence applies the policy's default, and an approver never reached never reclaims."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.answer_links import LinkPurpose, SignedLink, sign_link
from reclaim.domain.approval import ApproverDecision
from reclaim.domain.lifecycle import QueueReason, RequestState
from reclaim.domain.messages import Message, MessageKind
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import Policy, PolicyError
from reclaim.domain.policy.escalation import ApproverKind, EscalateOn
from reclaim.domain.policy.notice import NoticeSpec
from reclaim.domain.records import LedgerOutcome
from reclaim.ports import AskResult
from reclaim.usecases.answer_link import LinkProblem, open_link
from reclaim.usecases.context import InputError
from reclaim.usecases.record_approval import (
    ApprovalCommand,
    ApprovalStatus,
    NotApprover,
    record_approval,
)
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryManagers,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sam_account_name=f"u{i}") for i in range(3)]
BOSS = User(object_id="boss", upn="grace@c.com", mail="grace.hopper@c.com", display_name="Grace")
FALLBACK = "licences@c.com"
USAGE = [UsageRow(u.upn, 1.0) for u in USERS]  # all three barely used it: all three are asked


def escalating(**escalation: Any) -> Policy:
    spec = {"fallback": [FALLBACK], "when": "keep", "respond_within": "3d", **escalation}
    return asking_policy(escalation=spec, keep_after_yes="30d")


def context(tmp_path: Path, policy: Policy, managers: MemoryManagers | None = None) -> Any:
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    ids = (f"id-{n:03d}" for n in itertools.count())
    adapters = MemoryAdapters(
        directory,
        MemoryUsage(USAGE, NOW),
        MemoryCampaign(),
        managers_=managers or MemoryManagers({USERS[0].label: BOSS}),
    )
    return usecases.Context(
        SqliteStore(tmp_path / "state.sqlite3"),
        MemoryQueue(),
        adapters,
        {policy.name: policy},
        new_id=lambda: next(ids),
    )


def asked_ids(ctx: Any) -> dict[str, str]:
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    return {r.user.upn: r.id for r in ctx.store.requests(states=[RequestState.PENDING])}


def answer(ctx: Any, request_id: str, value: AnswerValue, at: Any, why: str = "") -> Any:
    command = usecases.AnswerCommand(value, at, request_id=request_id, justification=why)
    return usecases.record_answer(ctx, command, at)


def decide(ctx: Any, request_id: str, who: str, decision: str, at: Any, why: str = "") -> Any:
    command = ApprovalCommand("salesforce", request_id, who, ApproverDecision(decision), why)
    return record_approval(ctx, command, at)


def outcomes(ctx: Any, request_id: str) -> list[tuple[LedgerOutcome, str]]:
    return [(e.outcome, e.detail) for e in ctx.store.ledger() if e.request_id == request_id]


# ---- the policy ---------------------------------------------------------------------------------


def test_the_policy_reads_escalation_with_always_meaning_a_no_and_silence() -> None:
    spec = escalating(when=["keep", "always"], on_no_response="reclaim").escalation
    assert spec is not None
    assert spec.approver is ApproverKind.MANAGER and spec.fallback == (FALLBACK,)
    assert spec.when == {EscalateOn.KEEP, EscalateOn.NO, EscalateOn.NO_RESPONSE}
    assert spec.respond_within == timedelta(days=3) and spec.on_no_response.value == "reclaim"
    assert asking_policy().escalation is None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"ask_permission": False, "campaign": {"channel": "none"}},
            "policies[0].escalation: asks the approver about the user's answer: set "
            "ask_permission: true",
        ),
        (
            {"campaign": {"channel": "nexthink", "url": None}},
            "policies[0].escalation: the approver is asked through campaign.channel, and nexthink",
        ),
        ({"escalation": {"when": "keep"}}, "policies[0].escalation.fallback: is required"),
        (
            {"escalation": {"fallback": [FALLBACK]}},
            "policies[0].escalation.when: is required",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": ["keep", "sometimes"]}},
            "policies[0].escalation.when: expected one of keep | no | no_response | always",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": []}},
            "policies[0].escalation.when: the list is empty",
        ),
        (
            {"escalation": {"fallback": ["nobody"], "when": "keep"}},
            "policies[0].escalation.fallback: expected a UPN or mail address",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": "keep", "respond_within": "0s"}},
            "policies[0].escalation.respond_within: must be longer than 0s",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": "keep", "approver": "boss"}},
            "policies[0].escalation.approver: expected one of manager | fallback",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": "keep", "on_no_response": "ask"}},
            "policies[0].escalation.on_no_response: expected one of reclaim | keep",
        ),
        (
            {"escalation": {"fallback": [FALLBACK], "when": "keep", "stages": 2}},
            "policies[0].escalation.stages: unknown key",
        ),
    ],
)
def test_validation_refuses_an_escalation_that_cannot_work(
    overrides: dict[str, Any], problem: str
) -> None:
    base: dict[str, Any] = {
        "mode": "enforce",
        "ask_permission": True,
        "campaign": {"channel": "webhook", "url": "https://survey.example/ask"},
        "escalation": {"fallback": [FALLBACK], "when": "keep"},
    }
    with pytest.raises(PolicyError) as raised:
        make_policy(**{**base, **overrides})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


@pytest.mark.parametrize("channel", ["email", "teams"])
def test_validation_lets_email_and_teams_ask_the_approver(channel: str) -> None:
    """The answer page serves approval links: the personal channels may escalate."""
    policy = make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={"channel": channel},
        escalation={"fallback": [FALLBACK], "when": "keep"},
    )
    assert policy.escalation is not None and policy.campaign.channel.value == channel


def test_a_csv_export_has_no_managers_but_may_name_its_approvers() -> None:
    csv = {"kind": "csv", "group": "SF", "file": "members.csv"}
    spec = {"fallback": [FALLBACK], "when": "keep"}
    campaign = {"channel": "webhook", "url": "https://survey.example/ask"}
    with pytest.raises(PolicyError, match=r"escalation.approver: a csv members export"):
        make_policy(directory=csv, ask_permission=True, campaign=campaign, escalation=spec)
    policy = make_policy(
        directory=csv,
        ask_permission=True,
        campaign=campaign,
        escalation={**spec, "approver": "fallback"},
    )
    assert policy.escalation is not None and policy.escalation.approver is ApproverKind.FALLBACK


# ---- keep, asked, decided -----------------------------------------------------------------------


def test_a_keep_waits_for_the_manager_who_keeps_her_with_a_reason(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    asked = asked_ids(ctx)
    later = NOW + timedelta(hours=1)
    status = answer(ctx, asked["u0@c.com"], AnswerValue.YES, later, "quarterly audit")
    assert status is usecases.AnswerStatus.ESCALATED
    waiting = ctx.store.get_request(asked["u0@c.com"])
    assert waiting.state is RequestState.AWAITING_APPROVAL
    assert waiting.deadline == later + timedelta(days=3)  # the approver's own deadline

    usecases.expire_requests(ctx, later)
    sent = ctx.adapters.campaign_.approval_asks
    assert [(a.request.id, a.request.approval.approvers) for a in sent] == [
        (asked["u0@c.com"], (BOSS,))
    ]
    assert sent[0].answer is not None and sent[0].answer.justification == "quarterly audit"

    decided = later + timedelta(hours=2)
    assert decide(ctx, asked["u0@c.com"], "Grace.Hopper@c.com", "keep", decided, "needs it")
    kept = ctx.store.get_request(asked["u0@c.com"])
    assert kept.state is RequestState.KEPT
    assert [o for o, _ in outcomes(ctx, asked["u0@c.com"])] == [
        LedgerOutcome.ASKED,
        LedgerOutcome.ANSWERED,
        LedgerOutcome.ESCALATED,
        LedgerOutcome.APPROVAL_ASKED,
        LedgerOutcome.APPROVER_KEPT,
    ]
    assert (
        LedgerOutcome.APPROVER_KEPT,
        "keep by Grace.Hopper@c.com (manager) via webhook: needs it",
    ) in outcomes(ctx, asked["u0@c.com"])
    # Her approver's keep is a "yes" of its own: it protects her for keep_after_yes.
    approvals = [
        a for a in ctx.store.answers("salesforce", "u0@c.com") if ":approval" in a.request_id
    ]
    assert [(a.value, a.source, a.justification) for a in approvals] == [
        (AnswerValue.YES, "approver Grace.Hopper@c.com", "needs it")
    ]
    assert ctx.store.latest_yes("salesforce", "u0@c.com") == decided
    assert decide(ctx, asked["u0@c.com"], BOSS.upn, "keep", decided) is ApprovalStatus.DUPLICATE


def test_a_release_is_re_decided_and_removed_although_she_said_yes(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    asked = asked_ids(ctx)
    request_id = asked["u0@c.com"]
    at = NOW + timedelta(hours=1)
    answer(ctx, request_id, AnswerValue.YES, at, "I use it")
    usecases.expire_requests(ctx, at)
    assert decide(ctx, request_id, BOSS.upn, "release", at, "moved to sales ops") is (
        ApprovalStatus.RELEASED
    )
    due = ctx.store.get_request(request_id)
    assert (due.state, due.queue_reason) == (RequestState.DUE, QueueReason.APPROVER)
    assert not ctx.queue.messages  # nothing leaves before a tick has re-decided it

    tick = at + timedelta(minutes=5)
    report = usecases.expire_requests(ctx, tick)
    assert report.queued == 1  # her "yes" of an hour ago is the one her approver overruled
    queued = ctx.store.get_request(request_id)
    assert queued.state is RequestState.QUEUED
    released = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.QUEUED]
    assert [e.request_id for e in released] == [request_id]  # counted by the rate like any

    (message,) = ctx.queue.drain()
    usecases.perform_removal(ctx, usecases.RemovalCommand(message), tick)
    assert ctx.store.get_request(request_id).state is RequestState.REMOVED
    assert not ctx.adapters.directory_.holds("SF", "u0@c.com")
    assert any(
        o is LedgerOutcome.APPROVER_RELEASED and "release by grace@c.com (manager)" in d
        for o, d in outcomes(ctx, request_id)
    )


def test_a_yes_given_after_the_escalation_still_protects_her(tmp_path: Path) -> None:
    """Her approver released her without having seen it: the re-decision keeps her."""
    ctx = context(tmp_path, escalating(when="no"))
    request_id = asked_ids(ctx)["u0@c.com"]
    at = NOW + timedelta(hours=1)
    assert answer(ctx, request_id, AnswerValue.NO, at) is usecases.AnswerStatus.ESCALATED
    usecases.expire_requests(ctx, at)
    answer(ctx, request_id, AnswerValue.YES, at + timedelta(minutes=1), "changed my mind")
    decide(ctx, request_id, BOSS.upn, "release", at + timedelta(minutes=2))
    report = usecases.expire_requests(ctx, at + timedelta(minutes=5))
    assert (report.queued, report.cancelled) == (0, 1)
    ended = ctx.store.get_request(request_id)
    assert ended.state is RequestState.CANCELLED and "kept" in ended.detail


def test_a_keep_after_the_release_cancels_the_removal(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    request_id = asked_ids(ctx)["u0@c.com"]
    at = NOW + timedelta(hours=1)
    answer(ctx, request_id, AnswerValue.YES, at)
    usecases.expire_requests(ctx, at)
    decide(ctx, request_id, BOSS.upn, "release", at)
    assert decide(ctx, request_id, BOSS.upn, "keep", at, "wrong user") is ApprovalStatus.CANCELLED
    assert ctx.store.get_request(request_id).state is RequestState.CANCELLED


def test_only_her_approver_may_decide_and_a_refusal_changes_nothing(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    asked = asked_ids(ctx)
    at = NOW + timedelta(hours=1)
    answer(ctx, asked["u0@c.com"], AnswerValue.YES, at)
    not_escalated = asked["u2@c.com"]
    with pytest.raises(NotApprover):  # not asked yet: nobody may decide
        decide(ctx, asked["u0@c.com"], BOSS.upn, "release", at)
    usecases.expire_requests(ctx, at)
    before = (ctx.store.get_request(asked["u0@c.com"]), ctx.store.ledger())
    answers = ctx.store.answers("salesforce", "u0@c.com")
    for who in ("u0@c.com", FALLBACK, "mallory@c.com", "id0"):  # herself, others, her own id
        with pytest.raises(NotApprover):
            decide(ctx, asked["u0@c.com"], who, "keep", at)
    with pytest.raises(InputError, match="was not escalated"):
        decide(ctx, not_escalated, BOSS.upn, "release", at)
    with pytest.raises(InputError, match="unknown request"):
        decide(ctx, "nope", BOSS.upn, "release", at)
    with pytest.raises(InputError, match="justification"):
        decide(ctx, asked["u0@c.com"], BOSS.upn, "keep", at, "x" * 10_000)
    assert (ctx.store.get_request(asked["u0@c.com"]), ctx.store.ledger()) == before
    assert ctx.store.answers("salesforce", "u0@c.com") == answers


def test_without_a_manager_the_fallback_approvers_are_asked(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating(), MemoryManagers({}))
    request_id = asked_ids(ctx)["u1@c.com"]
    at = NOW + timedelta(hours=1)
    answer(ctx, request_id, AnswerValue.YES, at)
    usecases.expire_requests(ctx, at)
    approval = ctx.store.get_request(request_id).approval
    assert (approval.approvers, approval.via) == ((User(upn=FALLBACK),), "fallback")
    assert decide(ctx, request_id, FALLBACK.upper(), "keep", at) is ApprovalStatus.KEPT


# ---- silence ------------------------------------------------------------------------------------


def test_silence_goes_to_the_approver_and_the_approvers_silence_reclaims(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating(when="no_response", on_no_response="reclaim"))
    request_id = asked_ids(ctx)["u0@c.com"]
    deadline = NOW + timedelta(days=7)
    report = usecases.expire_requests(ctx, deadline)
    assert (report.escalated, report.approvals_asked, report.queued) == (3, 3, 0)
    waiting = ctx.store.get_request(request_id)
    assert waiting.state is RequestState.AWAITING_APPROVAL
    assert ctx.adapters.campaign_.approval_asks[0].answer is None  # she said nothing

    usecases.expire_requests(ctx, deadline + timedelta(days=2))  # the approver still has time
    assert ctx.store.get_request(request_id).state is RequestState.AWAITING_APPROVAL
    ctx.adapters.usage_.observed_at = deadline + timedelta(days=3)  # a fresh export
    report = usecases.expire_requests(ctx, deadline + timedelta(days=3))
    assert (report.approver_defaults, report.queued) == (3, 3)
    assert ctx.store.get_request(request_id).state is RequestState.QUEUED
    assert any(
        o is LedgerOutcome.APPROVER_SILENT and "escalation.on_no_response: reclaim" in d
        for o, d in outcomes(ctx, request_id)
    )


def test_the_approvers_silence_keeps_by_default(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating(when=["keep", "no_response"]))
    asked = asked_ids(ctx)
    answer(ctx, asked["u0@c.com"], AnswerValue.YES, NOW)
    deadline = NOW + timedelta(days=7)
    usecases.expire_requests(ctx, deadline)
    usecases.expire_requests(ctx, deadline + timedelta(days=3))
    states = {upn: ctx.store.get_request(i).state for upn, i in asked.items()}
    # After her "yes" she keeps it (KEPT); after silence the ask lapses.
    assert states == {
        "u0@c.com": RequestState.KEPT,
        "u1@c.com": RequestState.LAPSED,
        "u2@c.com": RequestState.LAPSED,
    }
    assert not ctx.queue.messages


def test_an_approver_never_reached_never_reclaims(tmp_path: Path) -> None:
    managers = MemoryManagers({USERS[0].label: BOSS}, down=True)
    ctx = context(tmp_path, escalating(when="no_response", on_no_response="reclaim"), managers)
    request_id = asked_ids(ctx)["u0@c.com"]
    deadline = NOW + timedelta(days=7)
    for hours in range(0, 72, 12):  # the directory is down for the approver's whole window
        usecases.expire_requests(ctx, deadline + timedelta(hours=hours))
    assert ctx.store.get_request(request_id).approval.asked_at is None
    usecases.expire_requests(ctx, deadline + timedelta(days=3))
    ended = ctx.store.get_request(request_id)
    assert ended.state is RequestState.LAPSED and "never reached" in ended.detail
    failures = [o for o, _ in outcomes(ctx, request_id) if o is LedgerOutcome.APPROVAL_ASK_FAILED]
    assert failures == [LedgerOutcome.APPROVAL_ASK_FAILED]  # recorded once, tried every tick
    assert not ctx.queue.messages


def test_an_ask_the_channel_refuses_is_asked_again_on_the_next_tick(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW)
    ctx.adapters.campaign_.refuse_approvals = True
    assert usecases.expire_requests(ctx, NOW).approvals_asked == 0
    assert ctx.store.get_request(request_id).approval.asked_at is None
    ctx.adapters.campaign_.refuse_approvals = False
    later = NOW + timedelta(minutes=10)
    assert usecases.expire_requests(ctx, later).approvals_asked == 1
    assert ctx.store.get_request(request_id).approval.asked_at == later
    assert usecases.expire_requests(ctx, later).approvals_asked == 0  # asked once


def test_the_kill_switch_holds_the_asks(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW)
    ctx.kill_switch = True
    assert usecases.expire_requests(ctx, NOW).approvals_asked == 0
    assert not ctx.adapters.campaign_.approval_asks


def test_explain_shows_the_approvers_decision(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating())
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW, "I run the board deck")
    usecases.expire_requests(ctx, NOW)
    decide(ctx, request_id, BOSS.upn, "release", NOW, "she moved teams")
    _, ledger = usecases.user_history(ctx, ctx.policies["salesforce"], "u0@c.com")
    shown = [f"{e.outcome.value}: {e.detail}" for e in ledger]
    assert "ANSWERED: yes via webhook: I run the board deck" in shown
    assert any(
        s.startswith("ESCALATED: answered yes: I run the board deck: the manager") for s in shown
    )
    assert any(
        s.startswith("APPROVAL_ASKED: asked grace@c.com (manager) through webhook") for s in shown
    )
    assert (
        "APPROVER_RELEASED: release by grace@c.com (manager) via webhook: she moved teams" in shown
    )
    lines = usecases.answers_report(ctx)
    assert [(x.answer.source, x.answer.value, x.answer.justification) for x in lines] == [
        ("webhook", AnswerValue.YES, "I run the board deck"),
        ("approver grace@c.com", AnswerValue.NO, "she moved teams"),
    ]


def test_approver_fallback_asks_the_named_approvers_without_a_lookup(tmp_path: Path) -> None:
    ctx = context(tmp_path, escalating(approver="fallback"))
    request_id = asked_ids(ctx)["u0@c.com"]  # she has a manager, who is not asked
    answer(ctx, request_id, AnswerValue.YES, NOW)
    usecases.expire_requests(ctx, NOW)
    assert ctx.store.get_request(request_id).approval.approvers == (User(upn=FALLBACK),)
    assert ctx.adapters.managers_.looked_up == []
    with pytest.raises(NotApprover):
        decide(ctx, request_id, BOSS.upn, "keep", NOW)


def test_her_own_link_says_her_approver_decides_now(tmp_path: Path) -> None:
    """While her approver decides, her answer link says so (410, nothing written), not that the
    deadline passed."""
    ctx = context(tmp_path, escalating())
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW)
    key = b"k" * 32
    link = SignedLink(
        request_id, "salesforce", "u0@c.com", LinkPurpose.ANSWER, NOW + timedelta(days=7)
    )
    before = ctx.store.ledger()
    with pytest.raises(LinkProblem) as refused:
        open_link(ctx, sign_link(link, key), key, NOW)
    assert refused.value.status == 410
    assert refused.value.message == "your approver decides now: nothing left to do here"
    assert ctx.store.ledger() == before


class RecordingMessages:
    """A personal channel (email, Teams) as the use cases see it: messages in, results out."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, outgoing: Any) -> AskResult:
        self.sent.extend(outgoing)
        return AskResult(asked={m.request_id: "sent" for m in outgoing})

    def ask(self, policy: Policy, requests: Any) -> AskResult:
        return AskResult(asked={r.id: "sent" for r in requests})


def test_email_asks_each_approver_with_an_approval_message(tmp_path: Path) -> None:
    policy = make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={"channel": "email"},
        escalation={"fallback": [FALLBACK, "deputy@c.com"], "when": "keep"},
    )
    ctx = context(tmp_path, policy, MemoryManagers({}))
    channel = RecordingMessages()
    ctx.adapters.campaign_ = channel
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW, "I present with it")
    channel.sent.clear()
    assert usecases.expire_requests(ctx, NOW).approvals_asked == 1
    assert [(m.kind, m.recipient) for m in channel.sent] == [
        (MessageKind.APPROVAL_ASK, FALLBACK),
        (MessageKind.APPROVAL_ASK, "deputy@c.com"),
    ]
    facts = dict(channel.sent[0].facts)
    assert facts["Their answer"] == "yes: I present with it"
    assert channel.sent[0].deadline == NOW + timedelta(days=7)  # respond_within by default
    # The recipient a signed link names is an approver: the answer page may decide as them.
    assert decide(ctx, request_id, channel.sent[1].recipient, "keep", NOW) is ApprovalStatus.KEPT


def with_notice(policy: Policy) -> Policy:
    return replace(policy, notice=NoticeSpec(period=timedelta(days=3)))


def test_the_approvers_release_gives_her_the_notice_first(tmp_path: Path) -> None:
    """policy.notice: a release by her approver is a decided removal like her own "no": she is
    told the date (NOTICE), and her approver may still keep her until it has passed."""
    ctx = context(tmp_path, with_notice(escalating()))
    request_id = asked_ids(ctx)["u0@c.com"]
    answer(ctx, request_id, AnswerValue.YES, NOW, "I present with it")
    usecases.expire_requests(ctx, NOW)
    assert decide(ctx, request_id, BOSS.upn, "release", NOW) is ApprovalStatus.RELEASED
    noticed = ctx.store.get_request(request_id)
    assert noticed.state is RequestState.NOTICE
    assert noticed.queue_reason is QueueReason.APPROVER
    assert "the notice goes out with the next expiry tick" in noticed.detail

    later = NOW + timedelta(hours=1)
    assert decide(ctx, request_id, BOSS.upn, "keep", later) is ApprovalStatus.CANCELLED
    assert ctx.store.get_request(request_id).state is RequestState.CANCELLED


def test_the_approvers_silence_that_reclaims_gives_her_the_notice_first(tmp_path: Path) -> None:
    ctx = context(tmp_path, with_notice(escalating(when="no_response", on_no_response="reclaim")))
    request_id = asked_ids(ctx)["u0@c.com"]
    deadline = NOW + timedelta(days=7)
    usecases.expire_requests(ctx, deadline)
    usecases.expire_requests(ctx, deadline + timedelta(days=3))
    noticed = ctx.store.get_request(request_id)
    assert noticed.state is RequestState.NOTICE
    assert noticed.queue_reason is QueueReason.APPROVER

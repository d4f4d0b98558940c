"""Use cases, one module each: run_policy, record_answer, record_approval, expire_requests,
perform_removal, restore, report, set_kill_switch, what_if.

Triggers in reclaim/functions/ and the CLI build a command, call one of these, and map the result.
Each use case takes its outside systems through `Context` and the time as `now`.
"""

from reclaim.usecases.context import (
    CLAIM_TIMEOUT,
    KILL_SWITCH_DELAY,
    Adapters,
    Context,
    InputError,
    RemovalLimits,
)
from reclaim.usecases.expire_requests import RESEND_AFTER, ExpiryReport, expire_requests
from reclaim.usecases.kill_switch import KillSwitchReport, kill_switch_report, set_kill_switch
from reclaim.usecases.lease import LEASE_TTL, PolicyBusy, policy_lease
from reclaim.usecases.perform_removal import (
    RemovalCommand,
    RemovalReport,
    RemovalStatus,
    perform_removal,
)
from reclaim.usecases.record_answer import (
    AnswerCommand,
    AnswerStatus,
    find_request,
    record_answer,
    unjustified_keep,
)
from reclaim.usecases.record_approval import (
    ApprovalCommand,
    ApprovalStatus,
    NotApprover,
    record_approval,
)
from reclaim.usecases.recover_claims import recover_and_redecide, recover_claims, redecide
from reclaim.usecases.report import AnswerLine, PolicyReport, answers_report, report, user_history
from reclaim.usecases.restore import RestoreCommand, RestoreReport, restore
from reclaim.usecases.retention import apply_retention
from reclaim.usecases.run_policy import RunOutcome, digest, run_policy
from reclaim.usecases.what_if import WhatIfOutcome, what_if

__all__ = [
    "CLAIM_TIMEOUT",
    "KILL_SWITCH_DELAY",
    "LEASE_TTL",
    "RESEND_AFTER",
    "Adapters",
    "AnswerCommand",
    "AnswerLine",
    "AnswerStatus",
    "ApprovalCommand",
    "ApprovalStatus",
    "Context",
    "ExpiryReport",
    "InputError",
    "KillSwitchReport",
    "NotApprover",
    "PolicyBusy",
    "PolicyReport",
    "RemovalCommand",
    "RemovalLimits",
    "RemovalReport",
    "RemovalStatus",
    "RestoreCommand",
    "RestoreReport",
    "RunOutcome",
    "WhatIfOutcome",
    "answers_report",
    "apply_retention",
    "digest",
    "expire_requests",
    "find_request",
    "kill_switch_report",
    "perform_removal",
    "policy_lease",
    "record_answer",
    "record_approval",
    "recover_and_redecide",
    "recover_claims",
    "redecide",
    "report",
    "restore",
    "run_policy",
    "set_kill_switch",
    "unjustified_keep",
    "user_history",
    "what_if",
]

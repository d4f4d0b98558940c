"""what_if: the plan's one read of the directory and the usage, re-decided at other thresholds.

Read-only like `plan`: it reads what `assess` reads, once, and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reclaim.domain.guardrails import Halt
from reclaim.domain.policy import Policy
from reclaim.domain.selection import DecisionKind
from reclaim.domain.what_if import WhatIf, threshold_curve
from reclaim.usecases.context import Context
from reclaim.usecases.decide import assess


@dataclass(frozen=True)
class WhatIfOutcome:
    policy: Policy
    curve: WhatIf | None  # None when the directory or the usage could not be read
    candidates: int  # the plan's own CANDIDATE count, from the same read
    halt: Halt | None = None  # what halts the plan at today's threshold, if anything


def what_if(ctx: Context, policy: Policy, now: datetime) -> WhatIfOutcome:
    assessment = assess(ctx, policy, now, kill_switch=ctx.kill_switch and policy.enforcing)
    candidates = sum(1 for d in assessment.decisions if d.kind is DecisionKind.CANDIDATE)
    usage, state = assessment.usage, assessment.state
    if usage is None or state is None:
        return WhatIfOutcome(policy, None, candidates, assessment.halt)
    curve = threshold_curve(assessment.members, usage, state, policy, now)
    return WhatIfOutcome(policy, curve, candidates, assessment.halt)

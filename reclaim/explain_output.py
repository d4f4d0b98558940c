"""`explain` as JSON: one user's decisions, ledger entries and what would change the latest."""

from __future__ import annotations

import json
from typing import Any

from reclaim.usecases.explain import UserExplanation


def as_dict(explanation: UserExplanation) -> dict[str, Any]:
    policy = explanation.policy
    return {
        "policy": policy.name,
        "application": policy.application,
        "user": explanation.user,
        "decisions": [
            {
                "at": j.run.started_at.isoformat(),
                "run_id": j.run.id,
                "mode": j.run.mode,
                "status": j.run.status.value,
                "user": j.decision.user.label,
                "decision": j.decision.decision,
                "reason": j.decision.reason,
                "evidence": j.decision.evidence,
            }
            for j in explanation.decisions
        ],
        "ledger": [
            {
                "at": e.at.isoformat(),
                "outcome": e.outcome.value,
                "detail": e.detail,
                "request_id": e.request_id,
                "run_id": e.run_id,
            }
            for e in explanation.ledger
        ],
        "what_would_change": explanation.what_would_change,
    }


def as_json(explanation: UserExplanation) -> str:
    return json.dumps(as_dict(explanation), indent=2, default=str) + "\n"

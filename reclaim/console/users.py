"""The console's user page: `explain` for one user, as a timeline and a decision table."""

from __future__ import annotations

from datetime import datetime

from reclaim.console.layout import (
    evidence,
    facts,
    link,
    page,
    policy_url,
    run_url,
    table,
    text,
    when,
)
from reclaim.usecases.explain import JudgedInRun, UserExplanation


def user_page(explanation: UserExplanation, now: datetime) -> str:
    name = explanation.policy.name
    latest = explanation.latest
    about = facts(
        [
            ("Policy", link(policy_url(name), name)),
            ("Looked up as", text(explanation.user)),
            ("Display name", text(latest.decision.user.display_name if latest else "") or "-"),
            (
                "Latest decision",
                f'<span data-field="latest">{text(latest.decision.decision)}</span>'
                if latest
                else "none",
            ),
            ("Decisions", f'<span data-field="decisions">{len(explanation.decisions)}</span>'),
            ("Ledger entries", f'<span data-field="ledger">{len(explanation.ledger)}</span>'),
        ],
        "user-facts",
    )
    events = []
    for at, event in explanation.events():
        if isinstance(event, JudgedInRun):
            d = event.decision
            what = (
                f"{link(run_url(name, d.run_id), f'run {d.run_id[:8]}')} "
                f"({text(event.run.mode)}, {text(event.run.status.value)}): "
                f"<b>{text(d.decision)}</b>: {text(d.reason)}"
            )
            events.append((text(when(at)), "decision", what, evidence(d.evidence)))
        else:
            detail = f": {text(event.detail)}" if event.detail else ""
            what = f"<b>{text(event.outcome.value)}</b>{detail}"
            request = f"request <code>{text(event.request_id[:8])}</code>"
            events.append((text(when(at)), "ledger", what, request))
    changes = "".join(f"<li>{text(c)}</li>" for c in explanation.what_would_change)
    body = (
        about
        + "<h2>History</h2>"
        + table(
            f"What happened to {explanation.user} under {name}, oldest first",
            ["When", "Kind", "What", "Evidence"],
            events,
            table_id="history",
        )
        + (
            f"<h2>What would change the latest decision ({text(latest.decision.decision)})</h2>"
            f'<ul id="what-would-change">{changes}</ul>'
            if latest and changes
            else ""
        )
    )
    return page(f"{explanation.user} under {name}", body, now)

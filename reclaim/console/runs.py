"""The console's run page: a run's decisions with their evidence, filtered by a GET form."""

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
    user_url,
)
from reclaim.domain.selection import DecisionKind
from reclaim.usecases.console_run import RunView


def _filter_form(view: RunView) -> str:
    policy, run_id = view.policy.name, view.run.id
    chosen = view.filter.decision
    options = '<option value="">every decision</option>' + "".join(
        f'<option value="{k.value}"{" selected" if k.value == chosen else ""}>{k.value}</option>'
        for k in DecisionKind
    )
    return (
        f'<form class="filters" method="get" action="{text(run_url(policy, run_id))}" '
        'aria-label="Filter the decisions">'
        '<div><label for="decision">Decision</label>'
        f'<select id="decision" name="decision">{options}</select></div>'
        '<div><label for="user">User contains</label><input id="user" name="user" type="search" '
        f'maxlength="200" value="{text(view.filter.user)}"></div>'
        "<button type=submit>Filter</button>"
        f"{link(run_url(policy, run_id), 'Clear the filters', id='clear-filters')}</form>"
    )


def run_page(view: RunView, now: datetime) -> str:
    run, name = view.run, view.policy.name
    counts = "".join(
        f"<li>{link(run_url(name, run.id, decision=k), k)}: "
        f'<span data-count="{text(k)}">{n}</span></li>'
        for k, n in sorted(run.counts.items())
        if n
    )
    about = facts(
        [
            ("Policy", link(policy_url(name), name)),
            ("Started", text(f"{run.started_at:%Y-%m-%d %H:%M} UTC")),
            ("Mode", text(run.mode)),
            ("Status", text(run.status.value)),
            ("Members", f'<span data-field="members">{run.members}</span>'),
            ("Asked", f'<span data-field="asked">{run.asked}</span>'),
            ("Removals queued", f'<span data-field="enqueued">{run.enqueued}</span>'),
            ("Halted by", text(f"{run.halt_check}: {run.halt_reason}" if run.halt_check else "-")),
        ],
        "run-facts",
    )
    rows = (
        (
            link(user_url(name, d.state_key), d.user.label),
            text(d.user.display_name),
            f'<span data-field="decision">{text(d.decision)}</span>',
            text(d.reason),
            evidence(d.evidence),
        )
        for d in view.shown
    )
    kept = (
        ""
        if view.stored >= run.members or run.members == 0
        else f'<p class="muted">{view.stored} of {run.members} decisions are still stored '
        "(retention keeps the CANDIDATE ones of older runs).</p>"
    )
    body = (
        about
        + f'<h2>Decisions by kind</h2><ul id="counts">{counts or "<li>none</li>"}</ul>'
        + "<h2>Decisions</h2>"
        + _filter_form(view)
        + f'<p id="shown" aria-live="polite">{len(view.shown)} of {view.stored} decisions shown.</p>'
        + kept
        + table(
            f"Decisions of run {run.id}",
            ["User", "Name", "Decision", "Reason", "Evidence"],
            rows,
            table_id="decisions",
            empty="no decision matches the filters",
        )
    )
    return page(f"Run {run.id[:8]} of {name}", body, now)

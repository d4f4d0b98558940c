"""The console's policy pages: every policy at a glance, and one policy with its runs and asks."""

from __future__ import annotations

from datetime import datetime

from reclaim.console.layout import (
    facts,
    link,
    page,
    policy_url,
    run_url,
    table,
    text,
    user_url,
    what_if_url,
    when,
)
from reclaim.domain.records import RunRecord
from reclaim.usecases.console_policies import ConsoleOverview, Halt, PolicyDetail, PolicySummary


def _last_run(summary: PolicySummary) -> str:
    run = summary.last_run
    if run is None:
        return '<span class="muted">no run yet</span>'
    return (
        link(run_url(summary.policy.name, run.id), when(run.started_at))
        + f" ({text(run.status.value)})"
    )


def _halts(halts: list[Halt], limit: int) -> str:
    if not halts:
        return "none"
    shown = "".join(
        f'<li class="halt">{text(when(h.at))}, {text(h.what)}: {text(h.reason)}</li>'
        for h in halts[:limit]
    )
    more = f"<li>and {len(halts) - limit} earlier</li>" if len(halts) > limit else ""
    return f"<ul>{shown}{more}</ul>"


def overview_page(overview: ConsoleOverview, now: datetime) -> str:
    rows = [
        (
            link(policy_url(s.policy.name), s.policy.name),
            text(s.policy.application),
            f'<span data-field="mode">{text(s.policy.mode.value)}</span>',
            f"<code>{text(s.policy.schedule)}</code><br>"
            f'<span class="muted">next {text(when(s.next_due))}</span>',
            _last_run(s),
            f'<span data-field="members">{s.last_run.members if s.last_run else 0}</span>',
            f'<span data-field="candidates">'
            f"{s.last_run.counts.get('CANDIDATE', 0) if s.last_run else 0}</span>",
            f'<span data-field="halts">{len(s.halts)}</span>'
            + (f"<br>{_halts(s.halts, 1)}" if s.halts else "")
            + (
                f'<br><span class="halt">{text(s.removals_halted)}</span>'
                if s.removals_halted
                else ""
            ),
            f'<span data-field="pending">{s.pending_asks}</span>',
        )
        for s in overview.policies
    ]
    switch = overview.kill_switch[:1].upper() + overview.kill_switch[1:]  # "kill switch: off..."
    body = f'<p id="kill-switch">{text(switch)}</p>' + table(
        "Policies",
        [
            "Policy",
            "Application",
            "Mode",
            "Schedule (UTC)",
            "Last run",
            "Members",
            "Candidates",
            "Halts",
            "Pending asks",
        ],
        rows,
        numeric=frozenset({5, 6, 7, 8}),
        table_id="policies",
        empty="no policy is configured",
    )
    return page("Policies", body, now)


def _run_row(policy: str, run: RunRecord) -> tuple[str, ...]:
    counts = ", ".join(f"{k} {n}" for k, n in sorted(run.counts.items()) if n)
    halted = f'<br><span class="halt">{text(run.halt_reason)}</span>' if run.halt_reason else ""
    return (
        link(run_url(policy, run.id), when(run.started_at)),
        f"<code>{text(run.id)}</code>",
        text(run.mode),
        text(run.status.value) + halted,
        str(run.members),
        text(counts or "none"),
        str(run.asked),
        str(run.enqueued),
    )


def policy_page(detail: PolicyDetail, now: datetime) -> str:
    s = detail.summary
    policy = s.policy
    name = policy.name
    about = facts(
        [
            ("Application", text(policy.application)),
            ("Mode", f'<span data-field="mode">{text(policy.mode.value)}</span>'),
            ("Schedule", f"<code>{text(policy.schedule)}</code> (next {text(when(s.next_due))})"),
            ("Asks permission", "yes" if policy.ask_permission else "no"),
            ("Last run", _last_run(s)),
            ("Runs", f'<span data-field="runs">{s.runs}</span>'),
            ("Pending asks", f'<span data-field="pending">{s.pending_asks}</span>'),
            ("Due removals", f'<span data-field="due">{s.due_removals}</span>'),
            ("Removals", text(s.removals_halted or "not halted")),
        ],
        "policy-facts",
    )
    runs = table(
        f"Runs of {name}, newest first",
        ["Started", "Run id", "Mode", "Status", "Members", "Decisions", "Asked", "Queued"],
        (_run_row(name, r) for r in detail.runs),
        numeric=frozenset({4, 6, 7}),
        table_id="runs",
        empty="no run recorded yet",
    )
    asks = table(
        "Asks waiting for an answer",
        ["User", "Asked", "Deadline", "Why"],
        (
            (
                link(user_url(name, a.user), a.user),
                text(when(a.asked_at)),
                text(when(a.deadline)),
                text(a.reason),
            )
            for a in detail.asks
        ),
        table_id="asks",
        empty="no ask is waiting",
    )
    halts = "".join(
        f'<li class="halt">{text(when(h.at))}, {text(h.what)} <code>{text(h.run_id)}</code>: '
        f"{text(h.reason)}</li>"
        for h in s.halts
    )
    search = (
        f'<form class="filters" method="get" action="{text(policy_url(name))}/user" role="search">'
        '<div><label for="user-search">User (UPN, mail, sAMAccountName, SID or object id)</label>'
        '<input id="user-search" name="user" type="search" required maxlength="200"></div>'
        "<button type=submit>Show history</button></form>"
    )
    body = (
        about
        + f"<p>{link(what_if_url(name), f'What-if curve for {name}')}</p>"
        + f"<h2>A user's history</h2>{search}"
        + f"<h2>Runs</h2>{runs}"
        + f"<h2>Pending asks</h2>{asks}"
        + f"<h2>Halts</h2>{f'<ul id=halts>{halts}</ul>' if halts else '<p>none</p>'}"
    )
    return page(f"Policy {name}", body, now)

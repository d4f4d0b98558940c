"""The console's chart pages: the savings (from the report's figures) and a policy's what-if curve.

`savings_page` takes the report's typed result (usecases.PolicyReport per policy) and shows the
same figures `report --format json` prints; its charts are the HTML report's (reporting.py, and
savings_output.py for the savings by month).
`what_if_page` takes a usecases.WhatIfOutcome and reuses the SVG of `plan --what-if --format html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reclaim import savings_output
from reclaim.console.layout import link, page, policy_url, table, text
from reclaim.reporting import money, rows, savings, savings_chart
from reclaim.usecases import PolicyReport, WhatIfOutcome
from reclaim.what_if_output import chart

_SAVINGS_COLUMNS = [
    ("seats_freed", "Seats freed (verified)"),
    ("monthly_savings", "Verified savings / month"),
    ("yearly_savings", "Verified savings / year"),
    ("seats_not_freed", "Still licensed"),
    ("unverified", "Unverified removals"),
    ("unverified_monthly", "Unverified / month"),
    ("potential_monthly", "Potential / month"),
    ("candidates", "Candidates"),
    ("removed", "Removed"),
    ("restored", "Restored"),
]
_MONEY = frozenset({"monthly_savings", "yearly_savings", "unverified_monthly", "potential_monthly"})


def savings_page(reports: Sequence[PolicyReport], now: datetime) -> str:
    figures = rows(list(reports))
    currency = next((r["currency"] for r in figures if r["currency"]), "")
    totals = "".join(
        f'<li>{text(title)}: <b id="total-{key}">'
        f"{text(money(sum(r[key] for r in figures), currency) if key in _MONEY else sum(r[key] for r in figures))}"
        "</b></li>"
        for key, title in _SAVINGS_COLUMNS[:7]
    )
    body_rows = (
        (
            link(policy_url(r["policy"]), r["policy"]),
            *(
                f'<span data-field="{key}">'
                f"{text(money(r[key], r['currency']) if key in _MONEY else r[key])}</span>"
                for key, _ in _SAVINGS_COLUMNS
            ),
        )
        for r in figures
    )
    body = (
        '<p class="sub">Verified savings count only seats Entra ID confirmed freed after the '
        "removal, net of restores. Unverified removals and the potential of the latest runs' "
        "candidates are shown apart and never added to them.</p>"
        f'<ul id="totals">{totals}</ul>'
        + savings_chart(list(reports))
        + table(
            "Savings by policy",
            ["Policy", *(title for _, title in _SAVINGS_COLUMNS)],
            body_rows,
            numeric=frozenset(range(1, len(_SAVINGS_COLUMNS) + 1)),
            table_id="savings",
            empty="no run recorded yet",
        )
        + savings_output.as_html(savings(list(reports)))
    )
    return page("Savings", body, now)


def what_if_page(outcome: WhatIfOutcome, now: datetime) -> str:
    name = outcome.policy.name
    curve = outcome.curve
    parts = [f"<p>{link(policy_url(name), f'Back to {name}')}</p>"]
    if outcome.halt is not None:
        parts.append(
            f'<p class="halt">At today\'s threshold the plan halts ({text(outcome.halt.check)}): '
            f"{text(outcome.halt.reason)}</p>"
        )
    if curve is None or not curve.points:
        why = (curve.unavailable if curve else "") or "the directory or the usage was not read"
        parts.append(f'<p id="no-curve">No threshold curve: {text(why)}</p>')
    else:
        parts.append(
            f'<p id="caps">Caps: max_removals_per_run {curve.max_removals_per_run}, '
            f"max_percent_of_group {curve.percent_cap} removal(s) of {curve.group_size} direct "
            f'members. The plan today: <b id="plan-candidates">{outcome.candidates}</b> '
            "candidate(s).</p>"
        )
        parts.append(chart(curve, "whatif"))
        parts.append(
            table(
                f"Candidates by threshold for {name}",
                ["Threshold", "Candidates", "Removals", "Halts", "Today"],
                (
                    (
                        text(p.label),
                        f'<span data-field="candidates">{p.candidates}</span>',
                        f'<span data-field="removals">{p.removals}</span>',
                        text(", ".join(p.capped_by) or "-"),
                        "today's threshold" if p.today else "",
                    )
                    for p in curve.points
                ),
                numeric=frozenset({1, 2}),
                table_id="curve",
            )
        )
    if curve is not None:
        parts.append(f'<p class="muted">Look-back curve not available: {text(curve.lookback)}</p>')
    return page(f"What-if for {name}", "".join(parts), now)

"""Savings by month (reclaim.domain.savings) in the report's forms: rows for the terminal and
CSV, JSON, and for the HTML report one section per policy with a chart of each figure.

Charts are inline SVG (no script, no external asset): every bar carries its figure as text (the
count above it, the full amount in its <title>), and each chart a <title>, a <desc> and a table
with the same numbers beside it, so nothing is only a colour or a height.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

from reclaim.domain.holds import HoldCause
from reclaim.domain.savings import Amount, PolicySavings, SavingsMonth
from reclaim.safe_output import SafeCsvWriter, one_line

FIGURES = ("potential", "realised", "unverified", "restored", "appealed")
TITLES = {
    "potential": "Potential",
    "realised": "Realised (verified)",
    "unverified": "Unverified removals",
    "restored": "Restored",
    "appealed": "Appealed",
    "backlog": "Backlog",
    # the backlog's causes
    "cap": "Per-run caps",
    "rate": "Rolling rate",
    "halt": "Halted ticks",
    "breaker": "Open breaker",
}


def money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}".strip()


def amount_text(amount: Amount | None, currency: str) -> str:
    return "no run" if amount is None else f"{amount.count} ({money(amount.cost, currency)})"


def amount_json(amount: Amount | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"count": amount.count, "monthly": round(amount.cost, 2)}


def month_json(month: SavingsMonth) -> dict[str, Any]:
    backlog = amount_json(month.backlog_total) or {}
    return {
        "month": f"{month.month:%Y-%m}",
        **{figure: amount_json(getattr(month, figure)) for figure in FIGURES},
        "backlog": {
            **backlog,
            "by_cause": {cause.value: amount_json(a) for cause, a in month.backlog},
        },
    }


def months_json(savings: PolicySavings | None) -> list[dict[str, Any]]:
    return [month_json(m) for m in savings.months] if savings else []


CSV_COLUMNS = [
    "policy",
    "month",
    "potential",
    "potential_monthly",
    "realised",
    "realised_monthly",
    "unverified",
    "unverified_monthly",
    "restored",
    "restored_monthly",
    "appealed",
    "appealed_monthly",
    "backlog",
    "backlog_monthly",
    *(f"backlog_{cause.value}" for cause in HoldCause),
    "currency",
]


def _csv_row(savings: PolicySavings, month: SavingsMonth) -> list[Any]:
    row: list[Any] = [savings.policy, f"{month.month:%Y-%m}"]
    for figure in FIGURES:
        amount = getattr(month, figure)
        row += ["", ""] if amount is None else [amount.count, round(amount.cost, 2)]
    total = month.backlog_total
    by_cause = dict(month.backlog)
    row += [total.count, round(total.cost, 2)]
    row += [by_cause.get(cause, Amount()).count for cause in HoldCause]
    return [*row, savings.currency]


def as_csv(all_savings: Sequence[PolicySavings]) -> str:
    """One row per policy and month (a month without a run has no potential: empty cells)."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(CSV_COLUMNS)
    for savings in all_savings:
        for month in savings.months:
            writer.writerow(_csv_row(savings, month))
    return out.getvalue()


def _backlog_text(month: SavingsMonth, currency: str) -> str:
    causes = ", ".join(f"{c.value} {amount_text(a, currency)}" for c, a in month.backlog)
    total = amount_text(month.backlog_total, currency)
    return f"{total}: {causes}" if causes else total


def as_table(all_savings: Sequence[PolicySavings]) -> str:
    if not any(s.months for s in all_savings):
        return ""
    header = ["POLICY", "MONTH", *(TITLES[f].upper() for f in FIGURES), "BACKLOG AT MONTH END"]
    lines = [header]
    for savings in all_savings:
        for month in savings.months:
            lines.append(
                [
                    one_line(savings.policy),
                    f"{month.month:%Y-%m}",
                    *(one_line(amount_text(getattr(month, f), savings.currency)) for f in FIGURES),
                    one_line(_backlog_text(month, savings.currency)),
                ]
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = io.StringIO()
    out.write("savings by month (counts, and what they are worth per month):\n")
    for line in lines:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")
    return out.getvalue()


# ---- HTML --------------------------------------------------------------------------------------

STYLE = """
section.by-month{margin:2rem 0}.charts{display:flex;flex-wrap:wrap;gap:1rem}
section.by-month td,section.by-month th{white-space:nowrap}
figure{margin:0;border:1px solid #d0d7de;border-radius:8px;padding:.6rem}
figcaption{font-weight:600;margin-bottom:.3rem}.legend{font-size:.8rem;color:#424a53}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;
vertical-align:middle}svg text.value{fill:#1b1f24;font-weight:600}
.f-potential{fill:#0969da;background:#0969da}.f-realised{fill:#1a7f37;background:#1a7f37}
.f-unverified{fill:#9a6700;background:#9a6700}.f-restored{fill:#cf222e;background:#cf222e}
.f-appealed{fill:#8250df;background:#8250df}.f-cap{fill:#bc4c00;background:#bc4c00}
.f-rate{fill:#0969da;background:#0969da}.f-halt{fill:#57606a;background:#57606a}
.f-breaker{fill:#cf222e;background:#cf222e}.zero{stroke:#6e7781}
"""

# (figure, css class, the month's amount) for each series a chart draws
Series = tuple[str, str, list[Amount | None]]


def _series(savings: PolicySavings, chart: str) -> list[Series]:
    months = savings.months
    if chart == "backlog":
        causes = [c for c in HoldCause if any(dict(m.backlog).get(c) for m in months)]
        if not causes:  # nothing waited in the period: one series of zeros
            return [("backlog", "f-halt", [Amount() for _ in months])]
        return [
            (c.value, f"f-{c.value}", [dict(m.backlog).get(c, Amount()) for m in months])
            for c in causes
        ]
    if chart == "restored":
        return [(f, f"f-{f}", [getattr(m, f) for m in months]) for f in ("restored", "appealed")]
    return [(chart, f"f-{chart}", [getattr(m, chart) for m in months])]


def _bar_chart(savings: PolicySavings, chart: str, slug: str) -> str:
    """Grouped bars, one group per month; heights by money (by count when nothing is priced),
    a zero line that lets a month of more restores than removals go below it."""
    series = _series(savings, chart)
    labels = [f"{m.month:%Y-%m}" for m in savings.months]
    currency = savings.currency
    amounts = [a for _, _, values in series for a in values if a is not None]
    priced = any(a.cost for a in amounts)

    def size(a: Amount) -> float:
        return a.cost if priced else float(a.count)

    top = max([size(a) for a in amounts] + [0.0])
    bottom = min([size(a) for a in amounts] + [0.0])
    if top == bottom:  # nothing this period: the zero line at the bottom
        top = bottom + 1.0
    span = top - bottom
    group = max(64.0, 24.0 + 36.0 * len(series))
    left, pad_top, pad_bottom = 40.0, 36.0, 48.0
    width = max(300.0, left + group * len(labels) + 16)
    height = 220.0
    plot = height - pad_top - pad_bottom

    def y(value: float) -> float:
        return pad_top + plot * (top - value) / span

    bar = min(32.0, (group - 20.0) / len(series))
    parts = []
    for index, label in enumerate(labels):
        x0 = left + group * index + (group - bar * len(series)) / 2
        for number, (name, css, values) in enumerate(series):
            a = values[index]
            x = x0 + bar * number
            what = TITLES.get(name, name)
            if a is None:
                parts.append(
                    f'<g class="bar" data-month="{label}" data-series="{name}">'
                    f'<text class="value" x="{x + bar / 2:.1f}" y="{y(0) - 4:.1f}" '
                    f'text-anchor="middle">-</text><title>{label} {html.escape(what)}: no run '
                    "recorded this month</title></g>"
                )
                continue
            high, low = y(max(size(a), 0.0)), y(min(size(a), 0.0))
            above = high - 4 if size(a) >= 0 else low + 12
            parts.append(
                f'<g class="bar" data-month="{label}" data-series="{name}">'
                f'<rect class="{css}" x="{x:.1f}" y="{high:.1f}" width="{bar - 2:.1f}" '
                f'height="{max(low - high, 0.0):.1f}"/>'
                f'<text class="value" x="{x + bar / 2:.1f}" y="{above:.1f}" '
                f'text-anchor="middle">{a.count}</text>'
                f"<title>{label} {html.escape(what)}: {a.count}, "
                f"{html.escape(money(a.cost, currency))} per month</title></g>"
            )
        parts.append(
            f'<text x="{left + group * index + group / 2:.1f}" y="{height - 8:.1f}" '
            f'text-anchor="middle">{label}</text>'
        )
    highest = max([size(a) for a in amounts] + [0.0])
    unit = html.escape(money(highest, currency)) if priced else f"{highest:g}"
    title = f"{TITLES[chart]}{' and appealed' if chart == 'restored' else ''} by month"
    latest = ", ".join(
        f"{TITLES.get(name, name)} {amount_text(values[-1], currency)}"
        for name, _, values in series
        if values
    )
    desc = f"{title} for {savings.policy}; the latest month ({labels[-1]}): {latest}."
    legend = "".join(
        f'<span class="{css}" aria-hidden="true"></span>{html.escape(TITLES.get(name, name))}'
        for name, css, _ in series
    )
    return (
        f'<figure><figcaption id="{slug}-caption">{html.escape(title)}</figcaption>'
        f'<svg id="{slug}" role="img" aria-labelledby="{slug}-title {slug}-desc" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}">'
        f'<title id="{slug}-title">{html.escape(title)} for {html.escape(savings.policy)}</title>'
        f'<desc id="{slug}-desc">{html.escape(desc)}</desc>'
        f'<line class="zero" x1="{left - 4}" y1="{y(0):.1f}" x2="{width - 16:.0f}" y2="{y(0):.1f}"/>'
        f'<text x="{left - 8}" y="14">bars by {"money" if priced else "count"}, up to {unit}</text>'
        f'<text x="{left - 8}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>'
        + "".join(parts)
        + f'</svg><div class="legend">{legend}</div></figure>'
    )


def _month_table(savings: PolicySavings, slug: str) -> str:
    currency = savings.currency
    head = "".join(f'<th scope="col">{TITLES[f]}</th>' for f in (*FIGURES, "backlog"))
    body = "".join(
        f'<tr data-month="{m.month:%Y-%m}"><th scope="row">{m.month:%Y-%m}</th>'
        + "".join(
            f'<td data-figure="{f}">{html.escape(amount_text(getattr(m, f), currency))}</td>'
            for f in FIGURES
        )
        + f'<td data-figure="backlog">{html.escape(_backlog_text(m, currency))}</td></tr>'
        for m in savings.months
    )
    return (
        f'<table id="{slug}-table"><caption>Savings by month for {html.escape(savings.policy)}: '
        f'count (per month)</caption><thead><tr><th scope="col">Month</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def as_html(all_savings: Sequence[PolicySavings]) -> str:
    sections = []
    for index, savings in enumerate(s for s in all_savings if s.months):
        slug = f"savings-{index}"
        charts = "".join(
            _bar_chart(savings, chart, f"{slug}-{chart}")
            for chart in ("potential", "realised", "unverified", "restored", "backlog")
        )
        sections.append(
            f'<section class="by-month" id="{slug}" data-policy="{html.escape(savings.policy)}">'
            f"<h2>{html.escape(savings.policy)}: savings by month</h2>"
            f'<div class="charts">{charts}</div>{_month_table(savings, slug)}</section>'
        )
    return "".join(sections)

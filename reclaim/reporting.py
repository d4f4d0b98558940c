"""The report in the forms people take away: a terminal table, CSV, JSON, and one HTML file.

The HTML report is a single self-contained file (inline CSS and SVG, no script, no CDN) so it can
be mailed to finance and opened offline.
"""

from __future__ import annotations

import html
import io
import json
from datetime import date, datetime, timedelta
from typing import Any

from reclaim import savings_output
from reclaim.domain.savings import PolicySavings
from reclaim.safe_output import SafeCsvWriter, one_line
from reclaim.savings_output import money
from reclaim.usecases import AnswerLine, PolicyReport

COLUMNS = [
    ("policy", "POLICY"),
    ("runs", "RUNS"),
    ("halted", "HALTED"),
    ("members", "MEMBERS"),
    ("candidates", "CANDIDATES"),
    ("asked", "ASKED"),
    ("kept", "KEPT"),
    ("removed", "REMOVED"),
    ("not_member", "NOT MEMBER"),
    ("failed", "FAILED"),
    ("restored", "RESTORED"),
    # Three kinds of money, never added together (README, "Savings finance can trust"):
    ("seats_freed", "SEATS FREED (VERIFIED)"),
    ("monthly_savings", "VERIFIED SAVINGS/MONTH"),
    ("yearly_savings", "VERIFIED SAVINGS/YEAR"),
    ("seats_not_freed", "STILL LICENSED"),
    ("unverified", "UNVERIFIED REMOVALS"),
    ("unverified_monthly", "UNVERIFIED/MONTH"),
    ("potential_monthly", "POTENTIAL/MONTH"),
    ("currency", "CURRENCY"),
]
MONEY = frozenset({"monthly_savings", "yearly_savings", "unverified_monthly", "potential_monthly"})


def rows(reports: list[PolicyReport]) -> list[dict[str, Any]]:
    return [
        {
            "policy": r.policy,
            "runs": r.runs_completed + r.runs_planned,
            "halted": len(r.halted),
            "members": r.members,
            "candidates": r.candidates,
            "asked": r.asked,
            "kept": r.kept,
            "removed": r.removed,
            "not_member": r.not_member,
            "failed": r.failed,
            "restored": r.restored,
            "seats_freed": r.seats_freed,
            "monthly_savings": round(r.monthly_savings, 2),
            "yearly_savings": round(r.yearly_savings, 2),
            "seats_not_freed": r.seats_not_freed,
            "unverified": r.unverified,
            "unverified_monthly": round(r.unverified_monthly, 2),
            "potential_monthly": round(r.potential_monthly, 2),
            "currency": r.currency,
        }
        for r in reports
    ]


def savings(reports: list[PolicyReport]) -> list[PolicySavings]:
    return [r.savings for r in reports if r.savings is not None]


def months(reports: list[PolicyReport], form: str) -> str:
    """`report --months`: only the savings by policy and month, as a table or CSV."""
    if form == "csv":
        return savings_output.as_csv(savings(reports))
    return savings_output.as_table(savings(reports)) or "no savings recorded yet\n"


def _cells(row: dict[str, Any]) -> list[str]:
    """A row as people read it: money with its currency (so no currency column)."""
    return [
        one_line(money(row[key], row["currency"]) if key in MONEY else str(row[key]))
        for key, _ in COLUMNS
        if key != "currency"
    ]


def as_table(reports: list[PolicyReport]) -> str:
    if not reports:
        return "no runs recorded yet: `python -m reclaim run --policy NAME` records one\n"
    lines = [[title for key, title in COLUMNS if key != "currency"]]
    lines += [_cells(row) for row in rows(reports)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = io.StringIO()
    for line in lines:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")
    for r in reports:
        for at, why in r.halted:
            out.write(f"halted {one_line(r.policy)} at {at:%Y-%m-%d %H:%M}: {one_line(why)}\n")
        if r.held:
            since, why = min(r.held)
            out.write(
                f"waiting {one_line(r.policy)}: {len(r.held)} due removal(s), the oldest since "
                f"{since:%Y-%m-%d %H:%M}: {one_line(why)}\n"
            )
        if r.removals_halted:
            out.write(f"{one_line(r.policy)}: {one_line(r.removals_halted)}\n")
        if r.appeals_offered or r.appealed:
            out.write(f"appeals {one_line(r.policy)}: {_appeal_text(r)}\n")
    out.write(savings_output.as_table(savings(reports)))
    return out.getvalue()


def _appeal_text(r: PolicyReport) -> str:
    rate = r.appeal_rate
    share = f" ({rate:.1%})" if rate is not None else ""
    return f"{r.appealed} of {r.removed} removal(s) taken back by the user{share}"


def as_csv(reports: list[PolicyReport]) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(key for key, _ in COLUMNS)
    for row in rows(reports):
        writer.writerow(row[key] for key, _ in COLUMNS)
    return out.getvalue()


ANSWER_COLUMNS = [
    "policy",
    "user",
    "request_id",
    "answered_at",
    "answer",
    "source",
    "justification",
]


def _answer_cells(line: AnswerLine) -> list[str]:
    a = line.answer
    return [
        line.policy,
        line.user,
        a.request_id,
        a.answered_at.isoformat(),
        a.value.value,
        a.source,
        a.justification,
    ]


def answers_as_csv(lines: list[AnswerLine]) -> str:
    """One row per recorded answer; a justification is the user's own text, so it goes through
    the safe writer like every cell (a leading "=" cannot become a formula)."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(ANSWER_COLUMNS)
    for line in lines:
        writer.writerow(_answer_cells(line))
    return out.getvalue()


def answers_as_table(lines: list[AnswerLine]) -> str:
    if not lines:
        return "no answers recorded\n"
    return "".join(
        "  ".join(one_line(cell) for cell in _answer_cells(line)).rstrip() + "\n" for line in lines
    )


def as_json(reports: list[PolicyReport]) -> str:
    data = []
    for row, r in zip(rows(reports), reports, strict=True):
        data.append(
            {
                **row,
                "halted_runs": [{"at": at.isoformat(), "reason": why} for at, why in r.halted],
                "due_removals": [{"since": at.isoformat(), "detail": why} for at, why in r.held],
                "removals_halted": r.removals_halted or None,
                "appealed": r.appealed,
                "appeal_rate": None if r.appeal_rate is None else round(r.appeal_rate, 4),
                "timeline": [
                    {"date": d.isoformat(), "seats_freed": s, "monthly_savings": round(m, 2)}
                    for d, (s, m) in sorted(r.timeline.items())
                ],
                "months": savings_output.months_json(r.savings),
            }
        )
    return json.dumps(data, indent=2) + "\n"


def _cumulative(reports: list[PolicyReport]) -> list[tuple[date, int, float]]:
    """Seats freed and monthly savings so far, day by day, over every policy."""
    daily: dict[date, list[float]] = {}
    for r in reports:
        for day, (seats, saved) in r.timeline.items():
            totals = daily.setdefault(day, [0, 0.0])
            totals[0] += seats
            totals[1] += saved
    points, seats_so_far, saved_so_far = [], 0, 0.0
    for day in sorted(daily):
        seats_so_far += int(daily[day][0])
        saved_so_far += daily[day][1]
        points.append((day, seats_so_far, saved_so_far))
    return points


def _chart(points: list[tuple[date, int, float]], currency: str) -> str:
    """An SVG of seats freed (bars) and monthly savings (line) over time."""
    if not points:
        return '<p class="empty">No seats reclaimed in this period yet.</p>'
    width, height, pad = 760, 260, 48
    first, last = points[0][0], points[-1][0]
    span = max((last - first).days, 1)
    top_seats = max(max(p[1] for p in points), 1)
    top_money = max(max(p[2] for p in points), 1.0)

    def x(day: date) -> float:
        return pad + (width - 2 * pad) * ((day - first).days / span if len(points) > 1 else 0.5)

    def y(value: float, top: float) -> float:
        return height - pad - (height - 2 * pad) * max(value, 0) / top

    bar = max(4.0, min(24.0, (width - 2 * pad) / (len(points) * 2)))
    bars = "".join(
        f'<rect class="seats" x="{x(d) - bar / 2:.1f}" y="{y(s, top_seats):.1f}" width="{bar:.1f}" '
        f'height="{height - pad - y(s, top_seats):.1f}"><title>{d}: {s} seats freed</title></rect>'
        for d, s, _ in points
    )
    line = " ".join(f"{x(d):.1f},{y(m, top_money):.1f}" for d, _, m in points)
    return (
        f'<svg id="savings-chart" role="img" aria-label="Seats freed and monthly savings over time" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>'
        f'<line class="axis" x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}"/>'
        f"{bars}"
        f'<polyline class="savings" points="{line}"/>'
        f'<text x="{pad}" y="{pad - 12}">seats freed (bars, up to {top_seats})</text>'
        f'<text x="{width - pad}" y="{pad - 12}" text-anchor="end">savings per month (line, up to '
        f"{html.escape(money(top_money, currency))})</text>"
        f'<text x="{pad}" y="{height - pad + 20}">{first}</text>'
        f'<text x="{width - pad}" y="{height - pad + 20}" text-anchor="end">{last}</text>'
        "</svg>"
    )


def savings_chart(reports: list[PolicyReport]) -> str:
    """The chart of the HTML report (seats freed and monthly savings so far), for other pages."""
    return _chart(_cumulative(reports), next((r.currency for r in reports if r.currency), ""))


_STYLE = (
    """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24}
h1{margin:0 0 .2rem}p.sub{color:#57606a;margin:0 0 1.5rem}
.totals{display:flex;gap:1rem;margin:1rem 0 2rem}.totals div{border:1px solid #d0d7de;
border-radius:8px;padding:.8rem 1.2rem}.totals b{display:block;font-size:1.6rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}th,td{border-bottom:1px solid #d0d7de;
padding:.35rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}
svg text{font-size:12px;fill:#57606a}.axis{stroke:#8c959f}.seats{fill:#54aeff}
.savings{fill:none;stroke:#1a7f37;stroke-width:2.5}.halted{color:#cf222e}
.apart div{border-style:dashed;color:#57606a}.apart span{display:block;font-size:.8rem}
"""
    + savings_output.STYLE
)


def as_html(reports: list[PolicyReport], now: datetime, since: timedelta | None) -> str:
    currency = next((r.currency for r in reports if r.currency), "")
    seats = sum(r.seats_freed for r in reports)
    monthly = sum(r.monthly_savings for r in reports)
    period = f"the last {since.days} days" if since else "all recorded history"
    head = "".join(
        f"<th>{html.escape(title.title())}</th>" for key, title in COLUMNS if key != "currency"
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
        for row in rows(reports)
    )
    unverified = sum(r.unverified for r in reports)
    unverified_monthly = sum(r.unverified_monthly for r in reports)
    potential = sum(r.potential_monthly for r in reports)
    halted = "".join(
        f'<li class="halted">{html.escape(r.policy)} at {at:%Y-%m-%d %H:%M}: {html.escape(why)}</li>'
        for r in reports
        for at, why in r.halted
    ) + "".join(
        f'<li class="halted">{html.escape(r.policy)}: {html.escape(r.removals_halted)}</li>'
        for r in reports
        if r.removals_halted
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reclaim: licences reclaimed</title>
<style>{_STYLE}</style></head><body>
<h1>Licences reclaimed</h1>
<p class="sub">{html.escape(period)}, as of {now:%Y-%m-%d %H:%M} UTC. Verified savings count only seats
Entra ID confirmed freed after the removal, net of restores. Unverified removals and the potential of
the latest runs' candidates are shown apart and never added to them.</p>
<div class="totals">
<div id="total-seats">Seats freed<b>{seats}</b></div>
<div id="total-monthly">Verified savings per month<b>{html.escape(money(monthly, currency))}</b></div>
<div id="total-yearly">Verified savings per year<b>{html.escape(money(monthly * 12, currency))}</b></div>
</div>
<div class="totals apart">
<div id="total-unverified">Unverified removals<b>{unverified}</b>
<span>would save {html.escape(money(unverified_monthly, currency))} per month if confirmed</span></div>
<div id="total-potential">Potential per month<b>{html.escape(money(potential, currency))}</b>
<span>the latest runs' candidates</span></div>
</div>
{_chart(_cumulative(reports), currency)}
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{f"<h2>Halted runs</h2><ul>{halted}</ul>" if halted else ""}
{savings_output.as_html(savings(reports))}
</body></html>
"""

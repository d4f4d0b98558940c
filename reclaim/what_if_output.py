"""`plan --what-if` in every plan format: a terminal table, CSV, JSON, and a self-contained HTML
page with one inline SVG chart per policy (no script, no external assets)."""

from __future__ import annotations

import html
import io
import json
from datetime import datetime
from typing import Any

from reclaim.domain.what_if import CurvePoint, WhatIf
from reclaim.safe_output import SafeCsvWriter, one_line
from reclaim.usecases import WhatIfOutcome


def _caps(curve: WhatIf) -> str:
    return (
        f"caps: max_removals_per_run {curve.max_removals_per_run}, max_percent_of_group "
        f"{curve.percent_cap} removal(s) of {curve.group_size} direct members"
    )


def _note(point: CurvePoint, outcome: WhatIfOutcome) -> str:
    notes = []
    if point.today:
        notes.append(f"today's threshold (the plan: {outcome.candidates} CANDIDATE)")
    if point.capped_by:
        notes.append("halts: " + ", ".join(point.capped_by))
    return "; ".join(notes)


def as_table(outcomes: list[WhatIfOutcome]) -> str:
    out = io.StringIO()
    for outcome in outcomes:
        curve = outcome.curve
        out.write(f"\n== {one_line(outcome.policy.name)}: what-if over the threshold\n")
        if curve is None:
            why = outcome.halt.reason if outcome.halt else "nothing was read"
            out.write(f"no curve: {one_line(why)}\n")
            continue
        if outcome.halt is not None:
            out.write(f"at today's threshold the plan halts ({outcome.halt.check})\n")
        if curve.unavailable:
            out.write(f"threshold curve: not available: {curve.unavailable}\n")
        else:
            out.write(_caps(curve) + "\n")
            rows = [("THRESHOLD", curve.unit.upper(), "CANDIDATES", "REMOVALS", "NOTE")]
            rows += [
                (p.label, f"{p.threshold:g}", str(p.candidates), str(p.removals), _note(p, outcome))
                for p in curve.points
            ]
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            for index, row in enumerate(rows):
                cells = [
                    row[0].ljust(widths[0]),
                    *(c.rjust(w) for c, w in zip(row[1:4], widths[1:], strict=True)),
                ]
                out.write(("  ".join(cells) + "  " + row[4]).rstrip() + "\n")
                if index == 0:
                    out.write("  ".join("-" * w for w in widths) + "  ----\n")
            bite = curve.caps_bite_at
            out.write(
                f"caps bite from {bite.label} ({', '.join(bite.capped_by)})\n"
                if bite
                else "no cap bites on this curve\n"
            )
        out.write(f"look-back curve: not available: {curve.lookback}\n")
    return out.getvalue()


def as_json(outcomes: list[WhatIfOutcome]) -> str:
    data: list[dict[str, Any]] = []
    for outcome in outcomes:
        item: dict[str, Any] = {"policy": outcome.policy.name}
        if outcome.curve is not None:
            item.update(outcome.curve.to_dict())
        item["plan_candidates"] = outcome.candidates
        item["halt_check"] = outcome.halt.check if outcome.halt else None
        item["halt_reason"] = outcome.halt.reason if outcome.halt else None
        data.append(item)
    return json.dumps(data, indent=2) + "\n"


def as_csv(outcomes: list[WhatIfOutcome]) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(["policy", "unit", "threshold", "label", "candidates", "removals", "capped_by",
                     "today"])  # fmt: skip
    for outcome in outcomes:
        curve = outcome.curve
        for p in curve.points if curve else ():
            writer.writerow(
                [outcome.policy.name, curve.unit if curve else "", f"{p.threshold:g}", p.label,
                 p.candidates, p.removals, " ".join(p.capped_by), "yes" if p.today else ""]
            )  # fmt: skip
    return out.getvalue()


def chart(curve: WhatIf, slug: str) -> str:
    """Candidates (line) and removals the caps count (dashed, when they differ) against the
    threshold; the binding caps as horizontal lines, today's threshold as a vertical one."""
    points = curve.points
    width, height, pad = 760, 300, 56
    low, high = points[0].threshold, points[-1].threshold
    cap = min(curve.max_removals_per_run, curve.percent_cap)
    top = max(max(p.removals for p in points), cap, 1)

    def x(value: float) -> float:
        span = high - low
        return pad + (width - 2 * pad) * ((value - low) / span if span else 0.5)

    def y(value: float) -> float:
        return height - pad - (height - 2 * pad) * value / top

    def line(values: list[tuple[float, int]], css: str) -> str:
        joined = " ".join(f"{x(t):.1f},{y(n):.1f}" for t, n in values)
        return f'<polyline class="{css}" points="{joined}"/>'

    parts = [line([(p.threshold, p.candidates) for p in points], "candidates")]
    if any(p.removals != p.candidates for p in points):
        parts.append(line([(p.threshold, p.removals) for p in points], "removals"))
    parts += [
        f'<circle class="{"capped" if p.capped_by else "point"}" cx="{x(p.threshold):.1f}" '
        f'cy="{y(p.candidates):.1f}" r="3.5"><title>{html.escape(p.label)}: {p.candidates} '
        f"candidate(s), {p.removals} removal(s)"
        f"{' (halts: ' + ', '.join(p.capped_by) + ')' if p.capped_by else ''}</title></circle>"
        for p in points
    ]
    for name, limit in (
        ("max_removals_per_run", curve.max_removals_per_run),
        ("max_percent_of_group", curve.percent_cap),
    ):
        if limit <= top:
            parts.append(
                f'<line class="cap" x1="{pad}" y1="{y(limit):.1f}" x2="{width - pad}" '
                f'y2="{y(limit):.1f}"/><text x="{width - pad}" y="{y(limit) - 4:.1f}" '
                f'text-anchor="end">{name} {limit}</text>'
            )
    today = curve.today
    now_at = curve.at_today
    now_label = now_at.label if now_at else f"{today:g}"
    parts.append(
        f'<line class="today" x1="{x(today):.1f}" y1="{pad}" x2="{x(today):.1f}" '
        f'y2="{height - pad}"/><text x="{x(today) + 4:.1f}" y="{pad + 12}">today '
        f"({html.escape(now_label)})</text>"
    )
    desc = (
        f"Candidates from {points[0].candidates} at {points[0].label} to {points[-1].candidates} "
        f"at {points[-1].label}; {now_at.candidates if now_at else 0} at today's threshold. "
        + (
            f"The caps halt the run from {bite.label}."
            if (bite := curve.caps_bite_at)
            else "No cap halts the run on this range."
        )
    )
    return (
        f'<svg role="img" aria-labelledby="{slug}-title {slug}-desc" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title id="{slug}-title">Candidates by threshold for '
        f'{html.escape(curve.policy)}</title><desc id="{slug}-desc">{html.escape(desc)}</desc>'
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>'
        f'<line class="axis" x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}"/>'
        + "".join(parts)
        + f'<text x="{pad}" y="{height - pad + 18}">{html.escape(points[0].label)}</text>'
        f'<text x="{width - pad}" y="{height - pad + 18}" text-anchor="end">'
        f"{html.escape(points[-1].label)}</text>"
        f'<text x="{width / 2:.0f}" y="{height - 12}" text-anchor="middle">threshold '
        f"({curve.unit})</text>"
        f'<text x="{pad - 8}" y="{y(top) + 4:.1f}" text-anchor="end">{top}</text>'
        f'<text x="{pad - 8}" y="{height - pad + 4}" text-anchor="end">0</text>'
        f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" '
        f'text-anchor="middle">candidates</text>'
        "</svg>"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24}
p.sub{color:#57606a}table{border-collapse:collapse;font-size:.85rem;margin:1rem 0 2rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child,th:last-child,td:last-child{text-align:left}tr.today{font-weight:bold}
svg text{font-size:12px;fill:#424a53}.axis{stroke:#6e7781}
.candidates{fill:none;stroke:#0969da;stroke-width:2.5}.removals{fill:none;stroke:#8250df;
stroke-width:2;stroke-dasharray:6 4}.point{fill:#0969da}.capped{fill:#cf222e}
.cap{stroke:#cf222e;stroke-dasharray:4 3}.today{stroke:#1a7f37;stroke-width:2}
"""


def as_html(outcomes: list[WhatIfOutcome], now: datetime) -> str:
    sections = []
    for index, outcome in enumerate(outcomes):
        curve = outcome.curve
        name = html.escape(outcome.policy.name)
        section = [f"<section><h2>{name}</h2>"]
        if curve is None or not curve.points:
            why = (
                curve.unavailable
                if curve
                else (outcome.halt.reason if outcome.halt else "nothing was read")
            )
            section.append(f"<p>No threshold curve: {html.escape(why)}</p>")
        else:
            section.append(f"<p>{html.escape(_caps(curve))}.</p>")
            section.append(chart(curve, f"whatif-{index}"))
            body = "".join(
                f"<tr{' class=today' if p.today else ''}><td>{html.escape(p.label)}</td>"
                f"<td>{p.candidates}</td><td>{p.removals}</td>"
                f"<td>{html.escape(_note(p, outcome))}</td></tr>"
                for p in curve.points
            )
            section.append(
                f"<table><caption>Candidates by threshold for {name}</caption><thead><tr>"
                '<th scope="col">Threshold</th><th scope="col">Candidates</th>'
                '<th scope="col">Removals</th><th scope="col">Note</th></tr></thead>'
                f"<tbody>{body}</tbody></table>"
            )
        if curve is not None:
            section.append(f"<p>Look-back curve not available: {html.escape(curve.lookback)}</p>")
        sections.append("".join(section) + "</section>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reclaim: what-if curves</title>
<style>{_STYLE}</style></head><body>
<h1>What-if curves</h1>
<p class="sub">From one read of the directory and the usage, as of {now:%Y-%m-%d %H:%M} UTC: how
many members the same rules would select at other thresholds, where the caps would halt the run,
and where today's threshold sits.</p>
{"".join(sections)}
</body></html>
"""

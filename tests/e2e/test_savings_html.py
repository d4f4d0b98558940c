"""The HTML report's savings by month as a person sees it, in headless Chromium (Playwright): every
bar's figure and every cell of the month table, read from the rendered DOM, equals the JSON report
of the same state; each chart is labelled for a screen reader; its colours keep their contrast;
and a screenshot is saved under tests/output/screenshots/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reclaim import reporting, usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.savings_output import FIGURES, amount_text, money
from tests.support.chromium import browser, screenshot
from tests.support.savings_history import REPORTED_AT, scripted_months


def luminance(css: str) -> float:
    """Relative luminance (WCAG 2) of an rgb(...) colour as Chromium computes it."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_on_white(css: str) -> float:
    return 1.05 / (luminance(css) + 0.05)


def as_amount(data: dict[str, Any] | None) -> Any:
    from reclaim.domain.savings import Amount

    return None if data is None else Amount(data["count"], data["monthly"])


def test_the_savings_charts_show_the_numbers_the_json_report_gives(tmp_path: Path) -> None:
    reports = usecases.report(
        scripted_months(SqliteStore(tmp_path / "s.sqlite3")), None, REPORTED_AT
    )
    (policy,) = json.loads(reporting.as_json(reports))
    currency = policy["currency"]
    months = {m["month"]: m for m in policy["months"]}
    page_file = tmp_path / "report.html"
    page_file.write_text(reporting.as_html(reports, REPORTED_AT, None), encoding="utf-8")

    with browser() as launched:
        page = launched.new_page(viewport={"width": 1300, "height": 900})
        page.goto(page_file.as_uri())
        section = page.locator(f'section.by-month[data-policy="{policy["policy"]}"]')
        assert section.locator("h2").inner_text() == f"{policy['policy']}: savings by month"

        bars = section.locator("g.bar")
        seen = set()
        for i in range(bars.count()):
            bar = bars.nth(i)
            month, series = bar.get_attribute("data-month"), bar.get_attribute("data-series")
            label = bar.locator("text.value").text_content()
            title = bar.locator("title").text_content() or ""
            if series in FIGURES:
                expected = months[month][series]
            else:  # a backlog cause
                expected = months[month]["backlog"]["by_cause"].get(
                    series, {"count": 0, "monthly": 0.0}
                )
            if expected is None:
                assert label == "-" and "no run recorded this month" in title
            else:
                assert label == str(expected["count"]), (month, series)
                assert f"{money(expected['monthly'], currency)} per month" in title
            seen.add((month, series))
        assert {s for _, s in seen} >= set(FIGURES) | {"rate", "breaker"}
        assert {m for m, _ in seen} == set(months)

        for month, data in months.items():
            row = section.locator(f'tr[data-month="{month}"]')
            for figure in FIGURES:
                cell = row.locator(f'td[data-figure="{figure}"]').inner_text()
                assert cell == amount_text(as_amount(data[figure]), currency), (month, figure)
            backlog = row.locator('td[data-figure="backlog"]').inner_text()
            assert backlog.startswith(amount_text(as_amount(data["backlog"]), currency))
            for cause, amount in data["backlog"]["by_cause"].items():
                assert f"{cause} {amount_text(as_amount(amount), currency)}" in backlog

        charts = section.locator("svg[role=img]")
        assert charts.count() == 5
        for i in range(charts.count()):
            chart = charts.nth(i)
            title_id, desc_id = (chart.get_attribute("aria-labelledby") or "").split()
            assert section.locator(f"#{title_id}").text_content()
            assert "the latest month (2026-11)" in (
                section.locator(f"#{desc_id}").text_content() or ""
            )

        # Bars at least 3:1 against the white page (WCAG 1.4.11), their figures 4.5:1 (1.4.3).
        fills = page.eval_on_selector_all(
            "section.by-month rect", "els => els.map(e => getComputedStyle(e).fill)"
        )
        texts = page.eval_on_selector_all(
            "section.by-month svg text", "els => els.map(e => getComputedStyle(e).fill)"
        )
        assert fills and texts
        assert min(contrast_on_white(c) for c in fills) >= 3.0, sorted(set(fills))
        assert min(contrast_on_white(c) for c in texts) >= 4.5, sorted(set(texts))

        section.scroll_into_view_if_needed()
        shot = screenshot(page, "savings-by-month")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The HTML report as a person sees it: opened in headless Chromium, saved as a PNG, with the chart
and the totals on the rendered page."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

from reclaim import reporting, usecases
from tests.conftest import NOW
from tests.support.chromium import headless
from tests.unit.test_reporting import scripted_history


def test_the_html_report_renders_its_chart_and_totals(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(
        reporting.as_html(usecases.report(scripted_history(tmp_path)), NOW, timedelta(days=90))
    )
    shot = tmp_path / "report.png"
    result = headless(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1000,800",
        page.as_uri(),
    )
    assert shot.exists() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = headless(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert 'id="savings-chart"' in dom and "<rect" in dom and "<polyline" in dom
    assert 'id="total-seats">Seats freed<b>2</b>' in dom
    assert "50.00 USD" in dom and "600.00 USD" in dom
    # Unverified removals and potential savings are shown apart, never added to the verified.
    assert 'id="total-unverified">Unverified removals<b>0</b>' in dom
    assert 'id="total-potential">Potential per month<b>400.00 USD</b>' in dom
    for title in ("Verified Savings/Month", "Unverified/Month", "Potential/Month"):
        assert f"<th>{title}</th>" in dom
    artefacts = os.environ.get("RECLAIM_TEST_ARTEFACTS")
    if artefacts:  # keep the screenshot for a person to look at
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / "report.png")

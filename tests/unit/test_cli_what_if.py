"""`plan --what-if` on the examples: the curve at each policy's own threshold is the plan's
candidate count, in JSON, the table, CSV and the HTML page (whose chart says it too)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import pytest

from tests.unit.test_cli import EXAMPLES, cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}


def _plan_candidates(env: dict[str, str]) -> dict[str, int]:
    code, out, err = cli("plan", "--policies", str(EXAMPLES), "--format", "json", env=env)
    assert code == 0, err
    return {run["policy"]: run["counts"]["CANDIDATE"] for run in json.loads(out)}


def test_the_json_curve_at_the_policys_threshold_is_the_plans_candidate_count(env) -> None:
    planned = _plan_candidates(env)
    code, out, err = cli(
        "plan", "--policies", str(EXAMPLES), "--what-if", "--format", "json", env=env
    )
    assert code == 0, err
    curves = {item["policy"]: item for item in json.loads(out)}
    assert curves.keys() == planned.keys() == {"salesforce-lightning", "visio-plan2"}
    for name, item in curves.items():
        (today,) = [p for p in item["curve"] if p["today"]]
        assert today["threshold"] == item["threshold"]
        assert today["candidates"] == item["plan_candidates"] == planned[name]
        counts = [p["candidates"] for p in item["curve"]]
        assert counts == sorted(counts) and counts[0] < counts[-1]  # the threshold matters
        assert item["lookback_curve_unavailable"].startswith("the csv source gives one total")
    assert planned["salesforce-lightning"] == 43  # the figure test_cli's plan test prints
    assert not Path(env["RECLAIM_STATE_DB"]).exists()  # read-only, like the plan


def test_the_table_csv_and_html_agree_with_the_plan(env) -> None:
    planned = _plan_candidates(env)
    args = ("plan", "--policies", str(EXAMPLES), "--what-if")
    code, table, _ = cli(*args, env=env)
    assert code == 0
    assert f"today's threshold (the plan: {planned['visio-plan2']} CANDIDATE)" in table
    assert "caps: max_removals_per_run 60, max_percent_of_group 75 removal(s)" in table
    code, text, _ = cli(*args, "--format", "csv", env=env)
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["today"] == "yes"]
    assert {r["policy"]: int(r["candidates"]) for r in rows} == planned
    code, page, _ = cli(*args, "--format", "html", env=env)
    assert code == 0 and page.startswith("<!doctype html>")
    assert page.count("<svg") == 2 and "<script" not in page and "http" not in page
    assert (
        '<title id="whatif-0-title">Candidates by threshold for salesforce-lightning</title>'
        in page
    )
    descs = re.findall(r"<desc id=\"whatif-\d-desc\">([^<]*)</desc>", page)
    assert [int(re.search(r"(\d+) at today's threshold", html.unescape(d))[1]) for d in descs] == [
        planned["salesforce-lightning"],
        planned["visio-plan2"],
    ]
    today_rows = re.findall(r"<tr class=today><td>[^<]*</td><td>(\d+)</td>", page)
    assert [int(n) for n in today_rows] == list(planned.values())


def test_html_without_what_if_is_refused_with_what_to_do(env) -> None:
    code, out, err = cli("plan", "--policies", str(EXAMPLES), "--format", "html", env=env)
    assert code == 2 and out == ""
    assert "--format html goes with --what-if" in err and "Traceback" not in err

"""Hostile names from a directory reach every output safely: CSV cells a spreadsheet cannot
evaluate, terminal text that cannot move the cursor, recolour, retitle or reorder, HTML escaped.

The CLI tests run `python -m reclaim` as a separate process (tests/support/cli.py) over a members
export full of hostile names; the writer tests call reclaim.reporting and reclaim.safe_output."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import reporting
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import User
from reclaim.safe_output import csv_cell, one_line, terminal_text
from reclaim.usecases import PolicyReport
from tests.conftest import NOW
from tests.support.cli import reclaim

FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(1)", "\tfoo", "\rfoo"]
CONTROLS = ["\x1b[31mred", "\x1b]0;title\x07", "\u202eevil", "\x9b31mred"]
HOSTILE = FORMULAS + CONTROLS
RAW_CONTROLS = ("\x1b", "\x07", "\u202e", "\x9b", "\r", "\t")


def _no_raw_controls(text: str) -> None:
    found = sorted({repr(c) for c in RAW_CONTROLS if c in text})
    assert not found, f"raw control characters printed: {found}"


POLICIES = """\
policies:
  - name: hostile
    application: Hostile App
    directory: {kind: csv, group: G, file: members.csv}
    usage: {source: csv, file: usage.csv, match_on: upn, user_column: upn, threshold: 5m,
            max_age: 3650d}
    new_member_grace: 0d
    limits: {max_removals_per_run: 100, max_percent_of_group: 100}
    licence: {monthly_cost: 10, currency: "=HYPERLINK(\\"http://x\\",\\"y\\")"}
"""


@pytest.fixture
def tenant(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    with (tmp_path / "members.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "upn", "display_name"])
        for name in [*HOSTILE, "plain@northwind.example"]:
            writer.writerow(["G", name, name])
    with (tmp_path / "usage.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["upn", "focus_time"])
        for name in HOSTILE:
            writer.writerow([name, "0"])
        writer.writerow(["plain@northwind.example", "1741.6"])
    (tmp_path / "policies.yaml").write_text(POLICIES)
    env = {**os.environ, "RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}
    return tmp_path / "policies.yaml", env


# ---- the rules -----------------------------------------------------------------------------------


def test_text_cells_that_start_a_formula_are_quoted_and_computed_numbers_are_not() -> None:
    for text in FORMULAS:
        assert csv_cell(text) == "'" + text
    assert csv_cell("alex@northwind.example") == "alex@northwind.example"
    assert csv_cell("a-b=c") == "a-b=c"  # only the first character counts
    assert csv_cell(-165.5) == -165.5 and csv_cell(-3) == -3  # numbers the code computed
    assert csv_cell("-3") == "'-3"  # text that looks like a number is still text
    assert csv_cell(None) == ""


def test_control_characters_are_escaped_visibly() -> None:
    assert terminal_text("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert terminal_text("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert terminal_text("\u202eevil \u2066x\u2069") == "\\u202eevil \\u2066x\\u2069"
    assert terminal_text("\x9b31m \x85 \x7f") == "\\x9b31m \\x85 \\x7f"  # C1 (8-bit CSI) and DEL
    assert terminal_text("two\nlines\tand\rcr") == "two\nlines\\x09and\\x0dcr"
    assert one_line("two\nlines") == "two\\x0alines"  # inside a cell a newline would forge a row
    assert terminal_text("Zoë Ångström 山田") == "Zoë Ångström 山田"  # ordinary text untouched


# ---- the writers ---------------------------------------------------------------------------------


def _hostile_reports() -> list[PolicyReport]:
    return [
        PolicyReport(
            name,
            currency=name,
            halted=[(NOW, f"halted because of {name}")],
            monthly_savings=-165.0,  # a month of restores outweighing removals
        )
        for name in [*HOSTILE, "<script>alert(1)</script>"]
    ]


def test_the_report_csv_writer_neutralises_text_and_keeps_numbers() -> None:
    text = reporting.as_csv(_hostile_reports())
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["policy"] for r in rows[: len(FORMULAS)]] == ["'" + f for f in FORMULAS]
    assert all(not r[k].startswith(("=", "+", "@", "\t", "\r")) for r in rows for k in r)
    assert {r["monthly_savings"] for r in rows} == {"-165.0"}  # a computed number stays one
    assert {r["yearly_savings"] for r in rows} == {"-1980.0"}


def test_the_report_table_and_html_writers_escape_names() -> None:
    reports = _hostile_reports()
    _no_raw_controls(reporting.as_table(reports))
    page = reporting.as_html(reports, NOW, timedelta(days=30))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in page


# ---- through the CLI, as a separate process -----------------------------------------------------


def test_plan_table_escapes_control_characters(tenant: tuple[Path, dict[str, str]]) -> None:
    policies, env = tenant
    result = reclaim(env, "plan", "--policies", str(policies))
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout)
    assert "\\x1b[31mred" in result.stdout and "\\u202eevil" in result.stdout
    assert "\\x1b]0;title\\x07" in result.stdout and "\\x09foo" in result.stdout
    # every member still has its own line: no name broke or forged a row
    assert sum("under the threshold" in line for line in result.stdout.splitlines()) == len(HOSTILE)


def test_plan_csv_neutralises_formulas_and_escapes_controls(
    tenant: tuple[Path, dict[str, str]],
) -> None:
    policies, env = tenant
    result = reclaim(env, "plan", "--policies", str(policies), "--format", "csv")
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    users = {r["user"] for r in rows}
    assert {"'" + f for f in FORMULAS[:4]} <= users
    assert {"'\\x09foo", "'\\x0dfoo", "\\x1b[31mred", "\\u202eevil"} <= users
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    plain = next(r for r in rows if r["user"] == "plain@northwind.example")
    assert (plain["used"], plain["threshold"]) == ("1741.6", "5")  # numbers stay readable


def test_plan_json_keeps_the_names_exact_and_escaped(tenant: tuple[Path, dict[str, str]]) -> None:
    policies, env = tenant
    result = reclaim(env, "plan", "--policies", str(policies), "--format", "json")
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout)  # JSON escapes them itself (\u001b), so they survive exactly
    (run,) = json.loads(result.stdout)
    assert {d["user"] for d in run["decisions"]} == {*HOSTILE, "plain@northwind.example"}


def test_explain_and_report_through_the_cli(tenant: tuple[Path, dict[str, str]]) -> None:
    policies, env = tenant
    run = reclaim(env, "run", "--policies", str(policies), "--policy", "hostile")
    assert run.returncode == 0, run.stderr
    _no_raw_controls(run.stdout)
    for user in CONTROLS:
        explained = reclaim(
            env, "explain", "--policies", str(policies), "--policy", "hostile", "--user", user
        )
        assert explained.returncode == 0, explained.stderr
        _no_raw_controls(explained.stdout)
        assert terminal_text(user) in explained.stdout
    report = reclaim(env, "report", "--policies", str(policies), "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(report.stdout))
    assert row["currency"] == "'" + '=HYPERLINK("HTTP://X","Y")'
    for fmt in ("table", "html", "json"):
        shown = reclaim(env, "report", "--policies", str(policies), "--format", fmt)
        assert shown.returncode == 0, shown.stderr
        _no_raw_controls(shown.stdout)


def test_restore_messages_escape_the_names(tenant: tuple[Path, dict[str, str]]) -> None:
    policies, env = tenant
    store = SqliteStore(env["RECLAIM_STATE_DB"])
    for number, name in enumerate(CONTROLS):
        user = User(upn=name)
        store.add_request(
            Request(
                f"r{number}", "hostile", "G", user, name, "run1", RequestState.REMOVED, NOW, NOW
            )
        )
    for name in CONTROLS:
        restored = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "hostile", "--user", name
        )
        assert restored.returncode == 1  # a members export is read-only: restore fails, and says
        _no_raw_controls(restored.stdout + restored.stderr)
        assert f"could not restore {terminal_text(name)}" in restored.stdout


def test_validate_messages_escape_the_file_text(tmp_path: Path) -> None:
    bad = tmp_path / "policies.yaml"
    bad.write_text('policies:\n  - name: ok\n    application: x\n    "\\e[31mbogus\\u202e": 1\n')
    result = reclaim({**os.environ}, "validate", "--policies", str(bad))
    assert result.returncode == 2
    _no_raw_controls(result.stderr)
    assert "policies[0].\\x1b[31mbogus\\u202e: unknown key" in result.stderr

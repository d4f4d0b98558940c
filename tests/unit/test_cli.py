"""The command line: exit codes, the plan in three formats, run/report/explain/restore."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reclaim.cli import main
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "policies.yaml"


def cli(*argv: str, env: dict[str, str], now=NOW) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), now=now, env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}


def test_plan_on_the_examples_shows_every_member_with_a_reason(env) -> None:
    code, out, err = cli("plan", "--policies", str(EXAMPLES), env=env)
    assert code == 0, err
    assert (
        "300 members: CANDIDATE 43, PENDING 15, KEPT 14, ACTIVE 191, UNKNOWN_USAGE 16, NEW 16, EXCLUDED 5"
        in out
    )
    line = next(x for x in out.splitlines() if x.startswith("alex.wilber@"))
    assert "CANDIDATE" in line and "used 3m in 90d, under the threshold of 5m" in line
    assert not Path(env["RECLAIM_STATE_DB"]).exists()  # a plan writes nothing, not even a file
    code, report, _ = cli("report", env=env)
    assert "no runs recorded yet" in report


def test_plan_json_has_the_documented_shape(env) -> None:
    code, out, _ = cli("plan", "--policies", str(EXAMPLES), "--format", "json", env=env)
    runs = json.loads(out)
    assert code == 0 and [r["policy"] for r in runs] == ["salesforce-lightning", "visio-plan2"]
    first = runs[0]
    assert first["status"] == "planned" and first["halt_reason"] is None
    assert len(first["decisions"]) == 300
    kinds = {d["decision"] for d in first["decisions"]}
    assert kinds == {"EXCLUDED", "NEW", "UNKNOWN_USAGE", "ACTIVE", "KEPT", "PENDING", "CANDIDATE"}
    assert all({"user", "decision", "reason", "evidence"} <= d.keys() for d in first["decisions"])


def test_plan_csv_and_one_policy(env) -> None:
    code, out, _ = cli(
        "plan", "--policies", str(EXAMPLES), "--policy", "visio-plan2", "--format", "csv", env=env
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 150 and {r["policy"] for r in rows} == {"visio-plan2"}
    assert {"user", "decision", "reason", "used", "threshold", "unit", "window"} <= rows[0].keys()


def test_a_halted_plan_exits_1_with_the_reason(env, tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    shutil.copytree(ROOT / "examples", folder)
    text = (
        (folder / "policies.yaml")
        .read_text()
        .replace("max_removals_per_run: 60", "max_removals_per_run: 10")
    )
    (folder / "policies.yaml").write_text(text)
    code, out, _ = cli(
        "plan", "--policies", str(folder / "policies.yaml"), "--format", "json", env=env
    )
    halted = json.loads(out)[0]
    assert (
        code == 1
        and halted["status"] == "halted"
        and halted["halt_check"] == "max_removals_per_run"
    )
    assert halted["halt_reason"].startswith("43 candidates exceed max_removals_per_run 10")


def test_bad_input_exits_2_on_stderr(env, tmp_path: Path) -> None:
    code, out, err = cli("plan", "--policies", str(tmp_path / "none.yaml"), env=env)
    assert (code, out) == (2, "") and "cannot read the file" in err
    code, _, err = cli("plan", "--policies", str(EXAMPLES), "--policy", "nope", env=env)
    assert (
        code == 2
        and "no policy named 'nope'; the file has: salesforce-lightning, visio-plan2" in err
    )
    code, _, err = cli(
        "plan", "--policies", str(EXAMPLES), env={**env, "RECLAIM_KILL_SWITCH": "maybe"}
    )
    assert code == 2 and "RECLAIM_KILL_SWITCH: expected true or false, got 'maybe'" in err


def test_run_records_then_report_and_explain(env) -> None:
    code, out, _ = cli(
        "run", "--policies", str(EXAMPLES), "--policy", "salesforce-lightning", env=env
    )
    assert code == 0 and "recorded (planned)" in out
    code, out, _ = cli("report", env=env)
    assert code == 0 and "salesforce-lightning" in out
    code, out, _ = cli(
        "explain",
        "--policies",
        str(EXAMPLES),
        "--policy",
        "salesforce-lightning",
        "--user",
        "Alex.Wilber@northwind.example",
        env=env,
    )
    assert code == 0 and "CANDIDATE: used 3m in 90d, under the threshold of 5m" in out
    what_would_change = out.split("what would change the latest decision (CANDIDATE):\n")[1]
    assert "ACTIVE at 2m more use in 90d" in what_would_change
    assert 'KEPT if she answers "yes, I still need it"' in what_would_change
    code, _, err = cli(
        "restore",
        "--policies",
        str(EXAMPLES),
        "--policy",
        "salesforce-lightning",
        "--user",
        "alex.wilber@northwind.example",
        env=env,
    )
    assert code == 2 and "no removal of 'alex.wilber@northwind.example'" in err


def test_explain_as_json_gives_the_same_history_as_the_table(env) -> None:
    for _ in range(2):
        assert cli("run", "--policies", str(EXAMPLES), "--policy", "salesforce-lightning",
                   env=env)[0] == 0  # fmt: skip
    args = ("explain", "--policies", str(EXAMPLES), "--policy", "salesforce-lightning",
            "--user", "Alex.Wilber@northwind.example")  # fmt: skip
    code, out, _ = cli(*args, "--format", "json", env=env)
    assert code == 0
    data = json.loads(out)
    assert (data["policy"], data["user"]) == (
        "salesforce-lightning",
        "Alex.Wilber@northwind.example",
    )
    assert [d["decision"] for d in data["decisions"]] == ["CANDIDATE", "CANDIDATE"]
    assert data["decisions"][0]["reason"].startswith("used 3m in 90d, under the threshold of 5m")
    assert data["decisions"][0]["evidence"]["used"] == 3
    assert "ACTIVE at 2m more use in 90d" in data["what_would_change"]
    _, table, _ = cli(*args, env=env)
    assert table.count("CANDIDATE: used 3m in 90d") == len(data["decisions"])
    for change in data["what_would_change"]:
        assert f"  {change}\n" in table


def test_the_module_runs_as_a_command(env) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reclaim", "validate", "--policies", str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 policy(ies) valid: salesforce-lightning, visio-plan2\n"


def test_run_while_the_policy_is_running_exits_3_and_says_since_when(env, tmp_path) -> None:
    from datetime import timedelta

    from reclaim.adapters.sqlite import SqliteStore

    SqliteStore(env["RECLAIM_STATE_DB"]).take_lease(
        "salesforce-lightning", "scheduler:x", NOW, timedelta(minutes=30)
    )
    code, out, err = cli(
        "run", "--policies", str(EXAMPLES), "--policy", "salesforce-lightning", env=env
    )
    assert code == 3 and out == ""
    assert "already running since 2026-11-28 06:00:00 UTC (scheduler)" in err
    assert SqliteStore(env["RECLAIM_STATE_DB"]).runs() == []

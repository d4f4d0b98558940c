"""`python -m reclaim simulate` over a history recorded by `run` in dry-run, on SQLite and on
Table storage (Azurite): the scripted weeks of tests/unit/test_simulation.py, recorded for real,
give the same removals per month and regret rate, and simulate changes no row."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reclaim.cli import main
from reclaim.domain.model import User
from reclaim.domain.records import LedgerEntry, LedgerOutcome
from reclaim.settings import Settings
from reclaim.wiring import build_store
from tests.conftest import NOW

WEEK = timedelta(days=7)
START = NOW - 8 * WEEK
PEOPLE = ["ada", "bob", "cy", "dan", "eve", *(f"steady{n}" for n in range(5))]
POLICIES = """
policies:
  - name: sf
    application: Salesforce Lightning
    directory: {kind: csv, group: SF, file: members.csv}
    usage:
      source: csv
      file: usage.csv
      user_column: upn
      usage_column: minutes
      match_on: upn
      lookback: 90d
      threshold: 5m
      max_age: 400d
    new_member_grace: 30d
    limits: {max_removals_per_run: 2, max_percent_of_group: 100}
    licence: {monthly_cost: 25.0}
"""


def minutes(name: str, n: int) -> float:
    """Week n's use over the look-back, as in tests/unit/test_simulation.py."""
    return {
        "ada": 45.0 if n >= 3 else 10.0,
        "bob": 12.0,
        "cy": 20.0 if n >= 5 else 300.0,
        "dan": 3.0 if n >= 5 else 300.0,
        "eve": 3.0 if n in (5, 6) else 60.0,
    }.get(name, 600.0)


def cli(*argv: str, env: dict[str, str], now=NOW) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), now=now, env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(params=["sqlite", "tables"])
def state_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}
        return
    env = request.getfixturevalue("storage_env")
    for name, value in env.items():  # the storage account is read from the process environment
        monkeypatch.setenv(name, value)
    yield env


def record_history(folder: Path, env: dict[str, str]) -> Path:
    policies = folder / "policies.yaml"
    policies.write_text(POLICIES)
    with (folder / "members.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "upn", "display_name"])
        writer.writerows(["SF", f"{p}@contoso.test", p.title()] for p in PEOPLE)
    for n in range(9):
        with (folder / "usage.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["upn", "minutes"])
            writer.writerows([f"{p}@contoso.test", minutes(p, n)] for p in PEOPLE)
        code, out, err = cli(
            "run", "--policies", str(policies), "--policy", "sf", env=env, now=START + n * WEEK
        )
        assert code == 0 and "recorded (planned)" in out, err
    # cy was restored a day before the last run (as if a removal had happened)
    build_store(Settings.from_env(env)).append_ledger(
        LedgerEntry(
            "restore-cy",
            NOW - timedelta(days=1),
            "sf",
            "SF",
            "req-cy",
            "run-x",
            User(upn="cy@contoso.test"),
            LedgerOutcome.RESTORED,
        )
    )
    return policies


def every_row(env: dict[str, str]) -> Any:
    """Everything the store holds, to compare before and after."""
    if env.get("RECLAIM_STATE_BACKEND") != "tables":
        with sqlite3.connect(env["RECLAIM_STATE_DB"]) as db:
            return list(db.iterdump())
    from reclaim.adapters.storage import storage_from_env

    service = storage_from_env(env).table_service()
    prefix = env["RECLAIM_TABLE_PREFIX"]
    return {
        table.name: sorted(
            (e["PartitionKey"], e["RowKey"], e.metadata["etag"])
            for e in service.get_table_client(table.name).list_entities()
        )
        for table in service.list_tables()
        if table.name.startswith(prefix)
    }


def test_simulate_a_higher_threshold_over_a_recorded_history(state_env, tmp_path) -> None:
    policies = record_history(tmp_path, state_env)
    before = every_row(state_env)
    args = ("simulate", "--policies", str(policies), "--policy", "sf", "--since", "60d")
    code, out, err = cli(*args, "--threshold", "30m", "--format", "json", env=state_env)
    assert code == 0, err
    report = json.loads(out)
    assert report["runs"] == 9 and report["runs_without_history"] == 0
    assert report["changed"] == {"threshold": {"file": "5m", "proposal": "30m"}}
    months = {p["period"]: p for p in report["periods"]}
    assert months["2026-10"] | {"came_back_by": None} == {
        "period": "2026-10", "runs": 5, "asked": 0, "removals": 2, "came_back": 1,
        "came_back_by": None, "regret_rate": 0.5, "halted_by": {},
    }  # fmt: skip
    assert months["2026-10"]["came_back_by"] == {"active again": 1}
    assert months["2026-11"]["halted_by"] == {"max_removals_per_run": 2}
    assert (months["2026-11"]["removals"], months["2026-11"]["came_back_by"]) == (
        2,
        {"restored": 1},
    )
    assert report["total"]["removals"] == 4 and report["total"]["regret_rate"] == 0.5
    code, table, err = cli(*args, "--threshold", "30m", env=state_env)
    assert code == 0, err
    assert "threshold 5m -> 30m" in table
    lines = {
        line.split()[0]: line.split()
        for line in table.splitlines()
        if line.startswith(("2026", "total"))
    }
    assert lines["2026-10"][1:6] == ["5", "0", "2", "1", "50.0%"]
    assert lines["2026-11"][1:6] == ["4", "0", "2", "1", "50.0%"]
    assert "max_removals_per_run 2" in " ".join(lines["2026-11"])
    assert lines["total"][1:6] == ["9", "0", "4", "2", "50.0%"]
    assert "regret rate = removals that came back / removals" in table
    # the policy's own settings: dan and eve in week 5 (eve back at 60m two weeks later)
    code, out, err = cli(*args, "--format", "csv", "--period", "week", env=state_env)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["period"], r["removals"], r["came_back"]) for r in rows if r["removals"] != "0"] == [
        ("2026-W45", "2", "1")
    ]
    assert every_row(state_env) == before


def test_bad_proposals_exit_2_with_the_reason_and_change_nothing(tmp_path) -> None:
    env = {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}
    policies = record_history(tmp_path, env)
    before = every_row(env)
    args = ("simulate", "--policies", str(policies), "--policy", "sf")
    code, out, err = cli(*args, "--lookback", "30d", env=env)
    assert code == 2 and out == ""
    assert "--lookback cannot be replayed" in err and "one total per member" in err
    assert "Traceback" not in err
    code, _, err = cli(*args, "--threshold", "five", env=env)
    assert code == 2 and "--threshold: expected a duration like 5m" in err
    code, _, err = cli(*args, "--new-member-grace=soon", env=env)
    assert code == 2 and "--new-member-grace" in err
    code, _, err = cli("simulate", "--policies", str(policies), "--policy", "nope", env=env)
    assert code == 2 and "no policy named 'nope'" in err
    assert every_row(env) == before


def test_simulate_with_nothing_recorded_creates_no_state_file(tmp_path) -> None:
    (tmp_path / "policies.yaml").write_text(POLICIES)
    env = {"RECLAIM_STATE_DB": str(tmp_path / "state" / "state.sqlite3")}
    code, out, err = cli(
        "simulate", "--policies", str(tmp_path / "policies.yaml"), "--policy", "sf", env=env
    )
    assert code == 0, err
    assert "simulated over 0 recorded run(s)" in out
    assert not (tmp_path / "state").exists()


def test_the_example_tenants_recorded_history_simulates(tmp_path) -> None:
    """README's steps: examples/history.py records weekly dry runs, simulate reports on them."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RECLAIM_STATE_DB": str(tmp_path / "northwind.sqlite3")}
    recorded = subprocess.run(
        [sys.executable, "examples/history.py", "--weeks", "3"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.count("(exit 0)") == 6  # two policies, three weeks
    simulated = subprocess.run(
        [sys.executable, "-m", "reclaim", "simulate", "--policies", "examples/policies.yaml",
         "--policy", "salesforce-lightning", "--since", "30d", "--threshold", "30m"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    out = simulated.stdout
    assert "simulated over 3 recorded run(s)" in out and "threshold 5m -> 30m" in out
    total = next(line.split() for line in out.splitlines() if line.startswith("total"))
    assert total[1] == "3" and int(total[3]) > 0 and total[5].endswith("%")
    assert "regret rate = removals that came back / removals" in out

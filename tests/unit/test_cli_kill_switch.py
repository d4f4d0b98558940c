"""`python -m reclaim kill-switch`: the operator's emergency stop, kept in the state store."""

from __future__ import annotations

import getpass
import io
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim.adapters.sqlite import SqliteStore
from reclaim.cli import main
from tests.conftest import NOW


def cli(*argv: str, env: dict[str, str], now=NOW) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), now=now, env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3")}


def test_on_off_and_show_record_who_when_and_why(env: dict[str, str]) -> None:
    assert cli("kill-switch", env=env)[1] == "kill switch: off; never set\n"
    code, out, _ = cli("kill-switch", "on", "--reason", "incident 42", env=env)
    assert code == 0
    assert out.startswith(f"kill switch: ON; set on by {getpass.getuser()} via cli on ")
    assert "2026-11-28 06:00 UTC: incident 42" in out
    code, out, _ = cli("kill-switch", "off", env=env, now=NOW + timedelta(hours=1))
    assert code == 0 and out.startswith("kill switch: off; set off by")
    history = SqliteStore(env["RECLAIM_STATE_DB"]).switch_history("kill_switch")
    assert [(c.on, c.at, c.reason) for c in history] == [
        (False, NOW + timedelta(hours=1), ""),
        (True, NOW, "incident 42"),
    ]


def test_the_setting_forces_it_on_and_says_so_when_asked_to_turn_it_off(
    env: dict[str, str],
) -> None:
    code, out, _ = cli("kill-switch", "off", env={**env, "RECLAIM_KILL_SWITCH": "true"})
    assert code == 0
    assert "kill switch: ON; forced on by the app setting RECLAIM_KILL_SWITCH=true" in out
    assert "it stays on" in out


def test_a_reason_with_control_characters_is_refused_and_nothing_is_recorded(
    env: dict[str, str],
) -> None:
    code, _, err = cli("kill-switch", "on", "--reason", "ok\x1b]0;pwned\x07", env=env)
    assert code == 2 and "control characters" in err
    assert cli("kill-switch", "--reason", "why", env=env)[0] == 2
    assert SqliteStore(env["RECLAIM_STATE_DB"]).switch_history("kill_switch") == []


def test_report_shows_the_switch_and_who_set_it(env: dict[str, str]) -> None:
    cli("kill-switch", "on", "--reason", "incident 42", env=env)
    code, out, _ = cli("report", env=env)
    assert code == 0
    assert out.splitlines()[-1].startswith(f"kill switch: ON; set on by {getpass.getuser()}")

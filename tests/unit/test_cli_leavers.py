"""The plan shows leavers first (immediate, undisputed savings), and explain says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.unit.test_cli import cli

POLICY = """
policies:
  - name: sf
    application: Salesforce
    directory: {kind: csv, group: SF, file: members.csv}
    usage: {source: csv, file: usage.csv, user_column: upn, usage_column: minutes,
            match_on: upn, threshold: 5m, max_age: 2d}
    new_member_grace: 0d
    disabled_accounts: DISABLED_ACCOUNTS
    limits: {max_removals_per_run: 10, max_percent_of_group: 100}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "members.csv").write_text(
        "group,upn,enabled\n"
        "SF,amy@c.test,true\n"
        "SF,zoe@c.test,false\n"  # left, and still used it: a leaver all the same
        "SF,bob@c.test,\n"
        "SF,cat@c.test,FALSE\n"
    )
    (tmp_path / "usage.csv").write_text(
        "upn,minutes\namy@c.test,1\nzoe@c.test,600\nbob@c.test,600\ncat@c.test,0\n"
    )
    return tmp_path


def _policies(folder: Path, disabled_accounts: str) -> str:
    path = folder / "policies.yaml"
    path.write_text(POLICY.replace("DISABLED_ACCOUNTS", disabled_accounts))
    return str(path)


@pytest.mark.parametrize("disabled_accounts", ["keep", "reclaim"])
def test_the_plan_shows_disabled_accounts_first(folder: Path, disabled_accounts: str) -> None:
    env = {"RECLAIM_STATE_DB": str(folder / "state.sqlite3")}
    code, out, err = cli("plan", "--policies", _policies(folder, disabled_accounts), env=env)
    assert code == 0, err
    rows = [line.split()[:2] for line in out.splitlines() if "@c.test" in line]
    assert rows == [
        ["cat@c.test", "DISABLED"],
        ["zoe@c.test", "DISABLED"],
        ["amy@c.test", "CANDIDATE"],
        ["bob@c.test", "ACTIVE"],
    ]
    said = {"keep": "kept (disabled_accounts: keep)", "reclaim": "removed without asking"}
    assert said[disabled_accounts] in out
    assert "4 members: DISABLED 2, CANDIDATE 1, ACTIVE 1" in out
    code, out, _ = cli(
        "plan", "--policies", _policies(folder, disabled_accounts), "--format", "json", env=env
    )
    first = json.loads(out)[0]["decisions"][0]
    assert first["decision"] == "DISABLED"
    assert first["evidence"]["disabled"] == "account disabled (enabled false in the members export)"


def test_explain_says_why_a_leaver_was_decided_so(folder: Path) -> None:
    env = {"RECLAIM_STATE_DB": str(folder / "state.sqlite3")}
    policies = _policies(folder, "reclaim")
    code, _, err = cli(
        "run", "--policies", policies, "--policy", "sf", env=env
    )  # dry-run: recorded, not acted on
    assert code == 0, err
    code, out, err = cli(
        "explain", "--policies", policies, "--policy", "sf", "--user", "zoe@c.test", env=env
    )
    assert code == 0, err
    assert f"{NOW:%Y-%m-%d}" in out and "DISABLED: account disabled" in out
    assert "disabled=account disabled (enabled false in the members export)" in out


def test_a_bad_enabled_value_is_a_clear_error(folder: Path) -> None:
    (folder / "members.csv").write_text("group,upn,enabled\nSF,amy@c.test,maybe\n")
    env = {"RECLAIM_STATE_DB": str(folder / "state.sqlite3")}
    code, out, err = cli("plan", "--policies", _policies(folder, "keep"), env=env)
    assert code != 0 and "Traceback" not in err + out
    assert "line 2: enabled 'maybe' is not true, false or empty" in err + out


def test_the_plan_counts_members_whose_account_state_is_unknown(tmp_path: Path) -> None:
    import io
    import itertools

    from reclaim import usecases
    from reclaim.adapters.sqlite import SqliteStore
    from reclaim.cli import _print_outcome_table
    from reclaim.domain.model import Account, Member, UsageRow, User
    from tests.conftest import make_policy
    from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

    why = "userAccountControl not returned: the bind account may not read it"
    members = [Member(User(upn=f"u{i}@c.test"), account=Account(unread=why)) for i in range(2)]
    members.append(Member(User(upn="u2@c.test"), account=Account(enabled=True)))
    usage = MemoryUsage([UsageRow(m.user.upn, 60.0) for m in members], NOW)
    policy = make_policy()
    ids = (f"id-{n}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        MemoryAdapters(MemoryDirectory({"SF": members}), usage),
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    out = io.StringIO()
    _print_outcome_table(policy, usecases.run_policy(ctx, policy, NOW, read_only=True), out)
    assert f"account state unknown for 2 member(s): {why}" in out.getvalue()

"""`python -m reclaim plan`, `run`, `report`, `explain` and `restore` on an AD policy, as an
administrator runs them, against the real Samba AD domain controller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import reclaim

PEOPLE = {
    "ann.lee": 0.5,
    "bob.ray": 0.0,
    "cy.tan": 3.0,
    "dee.fox": 42.0,
    "eve.kim": 600.0,
    "fay.orr": 9.0,
}


@pytest.fixture
def ad_tenant(samba_dc, tmp_path: Path):
    group = samba_dc.create_group("SF-Licensed-E2E")
    users = {name: samba_dc.create_user(name) for name in PEOPLE}
    samba_dc.add_members(group, users.values())
    (tmp_path / "usage.csv").write_text(
        "user.name,focus_time\n" + "".join(f"{n},{m}\n" for n, m in PEOPLE.items())
    )
    (tmp_path / "policies.yaml").write_text(
        """policies:
  - name: salesforce-ad
    application: Salesforce Lightning
    mode: enforce
    ask_permission: false
    directory: {kind: ad, group: SF-Licensed-E2E}
    usage: {source: csv, file: usage.csv, user_column: user.name, usage_column: focus_time,
            match_on: sam_account_name, threshold: 5m}
    limits: {max_removals_per_run: 5, max_percent_of_group: 50}
    licence: {monthly_cost: 165}
"""
    )
    env = {
        **os.environ,
        **samba_dc.settings_env(),
        "RECLAIM_SECRET_LDAP_BIND_PASSWORD": samba_dc.admin_password,
        "RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3"),
    }
    yield group, users, tmp_path / "policies.yaml", env
    for dn in [*users.values(), group]:
        samba_dc.delete(dn)


def test_plan_run_report_explain_restore_on_active_directory(samba_dc, ad_tenant) -> None:
    group, users, policies, env = ad_tenant
    plan = reclaim(env, "plan", "--policies", str(policies))
    assert plan.returncode == 0, plan.stderr
    assert "6 members: CANDIDATE 3, ACTIVE 3" in plan.stdout
    assert all(samba_dc.is_member(group, dn) for dn in users.values())  # plan changed nothing

    run = reclaim(env, "run", "--policies", str(policies), "--policy", "salesforce-ad")
    assert run.returncode == 0, run.stderr + run.stdout
    for name in ("ann.lee", "bob.ray", "cy.tan"):
        assert f"{name}@" in run.stdout and not samba_dc.is_member(group, users[name])
    for name in ("dee.fox", "eve.kim", "fay.orr"):
        assert samba_dc.is_member(group, users[name])

    report = reclaim(env, "report", "--policies", str(policies), "--format", "json")
    assert report.returncode == 0, report.stderr
    # No Entra SKU names where these AD users' seats are counted: the removals are unverified,
    # shown apart from (never added to) verified savings.
    assert '"removed": 3' in report.stdout and '"monthly_savings": 0.0' in report.stdout
    assert '"unverified": 3' in report.stdout and '"unverified_monthly": 495.0' in report.stdout

    explain = reclaim(
        env, "explain", "--policies", str(policies), "--policy", "salesforce-ad", "--user", "cy.tan"
    )
    assert explain.returncode == 0, explain.stderr
    assert "CANDIDATE: used 3m in 90d, under the threshold of 5m" in explain.stdout
    assert "REMOVED" in explain.stdout

    restore = reclaim(
        env, "restore", "--policies", str(policies), "--policy", "salesforce-ad", "--user", "cy.tan"
    )
    assert restore.returncode == 0, restore.stderr
    assert samba_dc.is_member(group, users["cy.tan"])
    again = reclaim(
        env, "restore", "--policies", str(policies), "--policy", "salesforce-ad", "--user", "cy.tan"
    )
    assert again.returncode == 2 and "no removal of 'cy.tan'" in again.stderr


def test_a_wrong_bind_password_is_one_clear_error(samba_dc, ad_tenant) -> None:
    _, _, policies, env = ad_tenant
    result = reclaim(
        {**env, "RECLAIM_SECRET_LDAP_BIND_PASSWORD": "wrong-Passw0rd"},
        "plan",
        "--policies",
        str(policies),
    )
    assert result.returncode == 1  # the run halts: the directory could not be read
    assert "Traceback" not in result.stderr + result.stdout
    assert "HALTED by directory" in result.stdout and "was rejected" in result.stdout
    assert "wrong-Passw0rd" not in result.stdout + result.stderr

"""Leavers through the command line on the Samba AD DC: with disabled_accounts: reclaim, an
asking policy removes disabled accounts without asking anyone, ledgers them, and restores them;
a restored leaver is then protected like a "yes"."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cli import reclaim

PEOPLE = {"lea.vers": 0.0, "max.gone": 900.0, "ann.here": 300.0, "bo.here": 60.0}
LEAVERS = ("lea.vers", "max.gone")


def test_an_asking_policy_removes_leavers_without_asking_and_restores_them(
    samba_dc, tmp_path: Path
) -> None:
    group = samba_dc.create_group("SF-Leavers-E2E")
    users = {name: samba_dc.create_user(name) for name in PEOPLE}
    for name in LEAVERS:
        samba_dc.set_account(users[name], enabled=False)
    samba_dc.add_members(group, users.values())
    (tmp_path / "usage.csv").write_text(
        "user.name,focus_time\n" + "".join(f"{n},{m}\n" for n, m in PEOPLE.items())
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        """policies:
  - name: sf-ad
    application: Salesforce Lightning
    mode: enforce
    ask_permission: true
    # Never called: nobody here is a usage candidate, and leavers are not asked.
    campaign: {channel: webhook, url: "https://127.0.0.1:9/ask", respond_within: 7d}
    disabled_accounts: reclaim
    directory: {kind: ad, group: SF-Leavers-E2E}
    usage: {source: csv, file: usage.csv, user_column: user.name, usage_column: focus_time,
            match_on: sam_account_name, threshold: 5m}
    limits: {max_removals_per_run: 5, max_percent_of_group: 50}
"""
    )
    env = {
        **os.environ,
        **samba_dc.settings_env(),
        "RECLAIM_SECRET_LDAP_BIND_PASSWORD": samba_dc.admin_password,
        "RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3"),
    }
    try:
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 0, plan.stderr + plan.stdout
        lines = [line for line in plan.stdout.splitlines() if "@" in line]
        assert [line.split()[1] for line in lines[:2]] == ["DISABLED", "DISABLED"]
        assert "4 members: DISABLED 2, ACTIVE 2" in plan.stdout

        run = reclaim(env, "run", "--policies", str(policies), "--policy", "sf-ad")
        assert run.returncode == 0, run.stderr + run.stdout
        assert "asked 0, removals queued 2" in run.stdout
        for name in LEAVERS:
            assert not samba_dc.is_member(group, users[name])
        assert samba_dc.is_member(group, users["ann.here"])
        assert samba_dc.is_member(group, users["bo.here"])

        explain = reclaim(
            env, "explain", "--policies", str(policies), "--policy", "sf-ad", "--user", "max.gone"
        )
        assert explain.returncode == 0, explain.stderr
        assert "DISABLED: account disabled (AD userAccountControl 0x" in explain.stdout
        assert "removed without asking (disabled_accounts: reclaim)" in explain.stdout
        assert "QUEUED: disabled" in explain.stdout and "REMOVED" in explain.stdout
        assert "ASKED" not in explain.stdout

        restore = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "sf-ad", "--user", "max.gone"
        )
        assert restore.returncode == 0, restore.stderr
        assert samba_dc.is_member(group, users["max.gone"])
        again = reclaim(env, "run", "--policies", str(policies), "--policy", "sf-ad")
        assert again.returncode == 0, again.stderr + again.stdout
        assert samba_dc.is_member(group, users["max.gone"])  # restored: protected, still disabled
        assert "protected for 90d" in again.stdout
    finally:
        for dn in [*users.values(), group]:
            samba_dc.delete(dn)

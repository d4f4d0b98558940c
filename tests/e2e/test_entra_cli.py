"""`python -m reclaim plan`, `run`, `restore` and `report` on an Entra ID policy, against the HTTPS
fakes of the token endpoint and Graph named by settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fakes.graph import FakeGraph
from tests.support.cli import reclaim

USAGE = {"ann": 0.5, "bob": 0.0, "cy": 3.0, "dee": 42.0, "eve": 600.0, "fay": 9.0}
POLICY = """policies:
  - name: visio
    application: Microsoft Visio
    mode: enforce
    ask_permission: false
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: csv, file: usage.csv, user_column: upn, usage_column: minutes, match_on: upn}}
    limits: {{max_removals_per_run: 5, max_percent_of_group: 50}}
    licence: {{monthly_cost: 15, sku_id: "{sku}", seat_check_after: 0s}}
"""


def tenant(
    graph: FakeGraph, tmp_path: Path, *, dynamic: bool = False
) -> tuple[str, dict[str, str], Path, dict]:
    sku = graph.new_sku()
    group = graph.add_group("Visio-Plan2", dynamic=dynamic, licences=[sku])
    ids = {}
    for name in USAGE:
        # cy also holds Visio directly: removing cy from the group frees no seat.
        ids[name] = graph.add_user(
            f"{name}@contoso.test", direct_licences=[sku] if name == "cy" else None
        )
        graph.add_member(group, ids[name])
    (tmp_path / "usage.csv").write_text(
        "upn,minutes\n" + "".join(f"{n}@contoso.test,{m}\n" for n, m in USAGE.items())
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICY.format(group=group, sku=sku))
    env = {
        **os.environ,
        **graph.settings_env(),
        "RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3"),
    }
    return group, ids, policies, env


def report_of(env: dict[str, str], policies: Path) -> dict:
    return json.loads(
        reclaim(env, "report", "--policies", str(policies), "--format", "json").stdout
    )[0]


def test_plan_run_restore_report_on_entra(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        graph.licence_lag = True  # group-based licensing releases seats some time later
        group, ids, policies, env = tenant(graph, tmp_path)
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 0, plan.stderr
        assert "6 members: CANDIDATE 3, ACTIVE 3" in plan.stdout
        assert graph.count("DELETE", "*") == 0

        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 0, run.stderr + run.stdout
        assert [n for n in USAGE if not graph.is_member(group, ids[n])] == ["ann", "bob", "cy"]
        deletes = [r for r in graph.requests if r.method == "DELETE"]
        assert len(deletes) == 3 and all(r.path.endswith("/$ref") for r in deletes)
        assert graph.deleted_users == []
        # One request per removal: no licence read before the DELETE.
        assert not [r for r in graph.requests if r.path.startswith("/users")]

        # Nothing is verified yet: the removals are unverified, not savings.
        report = report_of(env, policies)
        assert (report["removed"], report["seats_freed"], report["monthly_savings"]) == (3, 0, 0)
        assert (report["unverified"], report["unverified_monthly"]) == (3, 45.0)
        # The expiry tick checks the seats: cy's direct assignment settles at once, the others
        # wait for licence processing, then are freed.
        graph.clear_log()
        expire = reclaim(env, "expire", "--policies", str(policies))
        assert "seats checked 1" in expire.stdout, expire.stdout + expire.stderr
        assert [r.path for r in graph.requests if not r.in_batch] == ["/$batch"]
        graph.process_licences()
        expire = reclaim(env, "expire", "--policies", str(policies))
        assert "seats checked 2" in expire.stdout, expire.stdout + expire.stderr
        report = report_of(env, policies)
        assert (report["seats_freed"], report["seats_not_freed"], report["unverified"]) == (2, 1, 0)
        assert report["monthly_savings"] == 30.0 and report["potential_monthly"] == 45.0

        restore = reclaim(
            env,
            "restore",
            "--policies",
            str(policies),
            "--policy",
            "visio",
            "--user",
            "bob@contoso.test",
        )
        assert restore.returncode == 0, restore.stderr
        assert "restored bob@contoso.test" in restore.stdout and graph.is_member(group, ids["bob"])
        report = report_of(env, policies)
        assert (report["restored"], report["seats_freed"], report["monthly_savings"]) == (
            1,
            1,
            15.0,
        )


def test_a_dynamic_group_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        _, _, policies, env = tenant(graph, tmp_path, dynamic=True)
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 1 and "Traceback" not in plan.stderr
        assert "HALTED by directory" in plan.stdout and "dynamic" in plan.stdout


def test_a_wrong_client_secret_halts_without_showing_it(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        _, _, policies, env = tenant(graph, tmp_path)
        env["RECLAIM_SECRET_GRAPH_CLIENT_SECRET"] = "not-the-Secret-42"
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 1 and "HALTED by directory" in plan.stdout
        assert "not-the-Secret-42" not in plan.stdout + plan.stderr


def test_restoring_a_whole_run_is_batched(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        group, ids, policies, env = tenant(graph, tmp_path)
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        run_id = next(
            line.split()[1] for line in run.stdout.splitlines() if line.startswith("run ")
        )
        graph.add_member(group, ids["cy"])  # someone put cy back by hand already
        graph.clear_log()
        restore = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "visio", "--run", run_id
        )
        assert restore.returncode == 0, restore.stderr
        assert (
            "restored ann@contoso.test" in restore.stdout
            and "restored bob@contoso.test" in restore.stdout
        )
        assert "cy@contoso.test was already a member: recorded as restored" in restore.stdout
        assert all(graph.is_member(group, ids[n]) for n in USAGE)
        assert graph.count("POST", "/$batch") == 1 and graph.count("POST", "*", in_batch=False) == 1

"""`python -m reclaim plan`, `run`, `expire`, `report` and `restore` on an `entra-licence` policy
(a SKU assigned directly to users), against the HTTPS fakes of the token endpoint and Graph."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fakes.graph import FakeGraph
from tests.support.cli import reclaim

PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # a service plan disabled on ann's assignment
USAGE = {"ann": 0.5, "bob": 0.0, "cy": 0.0, "dee": 0.0, "eve": 600.0, "fay": 9.0}
POLICY = """policies:
  - name: visio-direct
    application: Microsoft Visio
    mode: enforce
    ask_permission: false
    directory: {{kind: entra-licence, sku_id: "{sku}"}}
    usage: {{source: csv, file: usage.csv, user_column: upn, usage_column: minutes, match_on: upn}}
    limits: {{max_removals_per_run: 5, max_percent_of_group: 50}}
    licence: {{monthly_cost: 15, seat_check_after: 0s}}
"""


def tenant(graph: FakeGraph, tmp_path: Path) -> tuple[str, str, dict[str, str], Path, dict]:
    """ann, bob, eve and fay hold Visio directly; cy only through the licensing group; dee both
    ways (removing dee's direct assignment would free nothing)."""
    graph.granted.add("LicenseAssignment.ReadWrite.All")
    graph.page_size = 4
    sku = graph.new_sku()
    group = graph.add_group("Visio-Plan2", licences=[sku])
    ids = {
        name: graph.add_user(f"{name}@contoso.test", direct_licences=[] if name == "cy" else [sku])
        for name in USAGE
    }
    graph.users[ids["ann"]].disabled_plans[sku] = [PLAN]
    graph.add_member(group, ids["cy"], ids["dee"])
    graph.add_user("gus@contoso.test")  # holds nothing: not listed
    (tmp_path / "usage.csv").write_text(
        "upn,minutes\n" + "".join(f"{n}@contoso.test,{m}\n" for n, m in USAGE.items())
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICY.format(sku=sku))
    env = {**os.environ, **graph.settings_env(), "RECLAIM_STATE_DB": str(tmp_path / "s.sqlite3")}
    return sku, group, ids, policies, env


def test_direct_assignments_are_removed_verified_and_restored(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        sku, group, ids, policies, env = tenant(graph, tmp_path)
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 0, plan.stderr + plan.stdout
        assert "6 members: CANDIDATE 2, ACTIVE 2, NESTED 2" in plan.stdout
        assert f"licence inherited from group {group}; use a group policy" in plan.stdout
        assert graph.count("POST", "/users/*/assignLicense") == 0

        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio-direct")
        assert run.returncode == 0, run.stderr + run.stdout
        holding = [n for n in USAGE if sku in graph.users[ids[n]].direct_licences]
        assert holding == ["dee", "eve", "fay"]  # cy never had it directly
        writes = [r for r in graph.requests if r.method == "POST" and r.path != "/$batch"]
        assert {r.path for r in writes} == {
            f"/users/{ids[n]}/assignLicense" for n in ("ann", "bob")
        }
        assert all(r.body == {"addLicenses": [], "removeLicenses": [sku]} for r in writes)

        expire = reclaim(env, "expire", "--policies", str(policies))
        assert "seats checked 2" in expire.stdout, expire.stdout + expire.stderr
        report = json.loads(
            reclaim(env, "report", "--policies", str(policies), "--format", "json").stdout
        )[0]
        assert (report["removed"], report["seats_freed"], report["monthly_savings"]) == (2, 2, 30)

        restore = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "visio-direct",
            "--user", "ann@contoso.test",
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr + restore.stdout
        assert "restored ann@contoso.test" in restore.stdout
        ann = graph.users[ids["ann"]]
        assert ann.direct_licences == [sku] and ann.disabled_plans[sku] == [PLAN]  # as it was
        report = json.loads(
            reclaim(env, "report", "--policies", str(policies), "--format", "json").stdout
        )[0]
        assert report["restored"] == 1


def test_a_whole_run_is_restored_one_user_at_a_time(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        sku, _, ids, policies, env = tenant(graph, tmp_path)
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio-direct")
        run_id = next(
            line.split()[1] for line in run.stdout.splitlines() if line.startswith("run ")
        )
        restore = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "visio-direct", "--run", run_id
        )
        assert restore.returncode == 0, restore.stderr + restore.stdout
        assert all(sku in graph.users[ids[n]].direct_licences for n in ("ann", "bob"))


def test_a_policy_naming_a_group_or_a_bad_sku_is_refused(tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        POLICY.format(sku="VISIOCLIENT").replace(
            "kind: entra-licence,", 'kind: entra-licence, group: "g",'
        )
    )
    result = reclaim({**os.environ}, "validate", "--policies", str(policies))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    said = result.stdout + result.stderr
    assert "directory.sku_id: expected the SKU's skuId (a GUID), got 'VISIOCLIENT'" in said
    assert "directory.group: entra-licence reclaims a SKU, not a group" in said


def test_a_mail_enabled_group_halts_the_run_before_anything_happens(tmp_path: Path) -> None:
    """On main the run went ahead and every removal failed with a bare 400 Request_BadRequest."""
    with FakeGraph() as graph:
        group = graph.add_group("All Sales", mail_enabled=True)
        users = [graph.add_user(f"{n}@contoso.test") for n in ("ann", "bob")]
        graph.add_member(group, *users)
        (tmp_path / "usage.csv").write_text("upn,minutes\nann@contoso.test,0\nbob@contoso.test,0\n")
        policies = tmp_path / "policies.yaml"
        policies.write_text(
            POLICY.replace('kind: entra-licence, sku_id: "{sku}"', f'kind: entra, group: "{group}"')
            .replace("max_percent_of_group: 50", "max_percent_of_group: 100")
            .replace("{{", "{")
            .replace("}}", "}")
        )
        env = {**os.environ, **graph.settings_env(), "RECLAIM_STATE_DB": str(tmp_path / "s.db")}
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio-direct")
        assert run.returncode == 1 and "Traceback" not in run.stderr
        assert "HALTED by directory" in run.stdout and "mail-enabled" in run.stdout
        assert graph.count("DELETE") == 0 and all(graph.is_member(group, u) for u in users)


def test_a_group_policy_plan_names_who_holds_the_sku_directly_too(tmp_path: Path) -> None:
    """The seat a removal from the group cannot free: dee holds Visio both ways."""
    with FakeGraph() as graph:
        sku, group, _, _, env = tenant(graph, tmp_path)
        policies = tmp_path / "group.yaml"
        policies.write_text(
            POLICY.format(sku=sku)
            .replace(f'kind: entra-licence, sku_id: "{sku}"', f'kind: entra, group: "{group}"')
            .replace("seat_check_after: 0s", f'sku_id: "{sku}"')
            .replace("max_percent_of_group: 50", "max_percent_of_group: 100")
        )
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 0, plan.stderr + plan.stdout
        assert (
            f"1 member(s) hold {sku} both directly and through the group: a removal from the "
            "group frees no seat for them"
        ) in plan.stdout
        assert plan.stdout.rstrip().endswith("dee@contoso.test")
        as_json = reclaim(env, "plan", "--policies", str(policies), "--format", "json")
        notes = {
            d["user"]: d["evidence"].get("seat_note")
            for d in json.loads(as_json.stdout)[0]["decisions"]
        }
        assert notes["cy@contoso.test"] is None
        assert notes["dee@contoso.test"].startswith(f"also holds {sku} by direct assignment")

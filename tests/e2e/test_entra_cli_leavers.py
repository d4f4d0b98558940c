"""Leavers on an Entra ID policy through the command line, against the Graph fake: disabled and
past-leave-date members are listed first and removed without asking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_entra_cli import tenant
from tests.fakes.graph import LEAST_PRIVILEGED, FakeGraph
from tests.support.cli import reclaim


def test_leavers_are_shown_first_and_removed_without_asking(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        group, ids, policies, env = tenant(graph, tmp_path)
        graph.granted = set(LEAST_PRIVILEGED) | {"User-LifeCycleInfo.Read.All"}
        graph.users[ids["eve"]].enabled = False  # a heavy user, but gone
        graph.users[ids["dee"]].leaves = datetime.now(UTC) - timedelta(days=1)
        text = policies.read_text().replace(
            "    mode: enforce\n", "    mode: enforce\n    disabled_accounts: reclaim\n"
        )
        policies.write_text(text.replace("max_percent_of_group: 50", "max_percent_of_group: 100"))
        plan = reclaim(env, "plan", "--policies", str(policies))
        assert plan.returncode == 0, plan.stderr + plan.stdout
        rows = [line.split()[:2] for line in plan.stdout.splitlines() if "@contoso.test" in line]
        assert rows[:2] == [["dee@contoso.test", "DISABLED"], ["eve@contoso.test", "DISABLED"]]
        assert "6 members: DISABLED 2, CANDIDATE 3, ACTIVE 1" in plan.stdout

        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 0, run.stderr + run.stdout
        assert not graph.is_member(group, ids["eve"]) and not graph.is_member(group, ids["dee"])
        assert graph.is_member(group, ids["fay"])
        assert all(r.path.endswith("/$ref") for r in graph.requests if r.method == "DELETE")

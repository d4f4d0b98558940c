"""Issue 13 as an administrator meets it: `python -m reclaim` in its own process against the Graph
fake, while answers are lost, the process is killed or its pipe closes, and permissions are
missing. After each, the ledger is the directory's history and every request ends."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from tests.fakes.graph import LEAST_PRIVILEGED, FakeGraph, Fault
from tests.support.cli import ROOT, reclaim

REF = "/groups/*/members/*/$ref"
POLICY = """policies:
  - name: visio
    application: Microsoft Visio
    mode: enforce
    ask_permission: false
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: csv, file: usage.csv, user_column: upn, usage_column: minutes, match_on: upn}}
    limits: {{max_removals_per_run: 1000, max_percent_of_group: 100}}
    licence: {{monthly_cost: 10}}
"""


def tenant(
    graph: FakeGraph, tmp_path: Path, names: list[str], **settings: str
) -> tuple[str, dict[str, str], Path, dict[str, str]]:
    """A group of idle users (every one a candidate), a policy, the CLI's environment."""
    group = graph.add_group("Visio-Plan2")
    ids = {name: graph.add_user(f"{name}@contoso.test") for name in names}
    graph.add_member(group, *ids.values())
    (tmp_path / "usage.csv").write_text(
        "upn,minutes\n" + "".join(f"{n}@contoso.test,0\n" for n in names)
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICY.format(group=group))
    env = {
        **os.environ,
        **graph.settings_env(),
        "RECLAIM_STATE_DB": str(tmp_path / "state.sqlite3"),
        **settings,
    }
    return group, ids, policies, env


def states(tmp_path: Path) -> dict[str, RequestState]:
    store = SqliteStore(tmp_path / "state.sqlite3")
    return {r.user.upn.split("@")[0]: r.state for r in store.requests()}


def test_a_removal_whose_answer_was_lost_is_removed_and_restorable(tmp_path: Path) -> None:
    """Graph applied the DELETE, the connection dropped, the retry got 404: today NOT_MEMBER
    and `restore --user` answered "no removal to restore"."""
    with FakeGraph() as graph:
        group, ids, policies, env = tenant(graph, tmp_path, ["ann", "bob"])
        graph.inject("DELETE", REF, Fault.connection_reset(after_work=True))
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 0, run.stderr + run.stdout
        assert states(tmp_path) == {"ann": RequestState.REMOVED, "bob": RequestState.REMOVED}
        report = reclaim(env, "report", "--policies", str(policies), "--format", "json")
        assert '"removed": 2' in report.stdout and '"not_member": 0' in report.stdout
        restore = reclaim(
            env, "restore", "--policies", str(policies), "--policy", "visio", "--user",
            "ann@contoso.test",
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr + restore.stdout
        assert graph.is_member(group, ids["ann"]) and not graph.is_member(group, ids["bob"])


def _wait_for(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _removing(db: Path) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db, timeout=5) as connection:
        try:
            row = connection.execute("SELECT COUNT(*) FROM requests WHERE state='REMOVING'")
        except sqlite3.OperationalError:
            return False
        return row.fetchone()[0] > 0


def test_a_cli_killed_mid_claim_is_recovered_by_work(tmp_path: Path) -> None:
    """SIGKILL while a removal is in flight: the local queue had deleted the message, so the
    request stayed REMOVING for ever. Now `work` recovers the claim once its lease is over."""
    with FakeGraph() as graph:
        group, ids, policies, env = tenant(
            graph, tmp_path, ["ann", "bob", "cy"], RECLAIM_CLAIM_LEASE="2s"
        )
        graph.inject("DELETE", REF, Fault.slow(30))  # done at once, answered 30 s later
        process = subprocess.Popen(
            [sys.executable, "-m", "reclaim", "run", "--policies", str(policies), "--policy",
             "visio"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for(lambda: graph.count("DELETE", REF) >= 1)
            assert _removing(tmp_path / "state.sqlite3")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        time.sleep(2.5)  # the claim's lease (and the message's) runs out
        work = reclaim(env, "work", "--policies", str(policies))
        assert work.returncode == 0, work.stderr + work.stdout
        assert set(states(tmp_path).values()) == {RequestState.REMOVED}
        assert not any(graph.is_member(group, i) for i in ids.values())
        report = reclaim(env, "report", "--policies", str(policies), "--format", "json")
        assert '"removed": 3' in report.stdout and '"not_member": 0' in report.stdout


def test_a_closed_pipe_does_not_kill_the_cli_mid_claim(tmp_path: Path) -> None:
    """`python -m reclaim run | head -1` used to die of SIGPIPE at the first write after head
    left, here the retry warnings Graph's 503s cause while a removal is claimed."""
    with FakeGraph() as graph:
        _, _, policies, env = tenant(graph, tmp_path, ["ann", "bob"])
        graph.inject("DELETE", REF, *[Fault.unavailable(retry_after=1)] * 3)
        command = (
            f"'{sys.executable}' -m reclaim run --policies '{policies}' --policy visio 2>&1 "
            "| head -1"
        )
        subprocess.run(command, shell=True, cwd=ROOT, env=env, timeout=120, check=False)  # noqa: S602
        assert states(tmp_path) == {"ann": RequestState.REMOVED, "bob": RequestState.REMOVED}


def test_a_missing_write_permission_stops_at_the_first_removal(tmp_path: Path) -> None:
    """A 403 on the write permission failed 300 of 300 one by one. Now the first opens the
    policy's breaker, the others wait with the reason in `report`, and a probe resumes them
    once the permission is granted."""
    names = [f"user{n:03d}" for n in range(300)]
    with FakeGraph() as graph:
        group, ids, policies, env = tenant(graph, tmp_path, names, RECLAIM_BREAKER_BACKOFF="2s")
        # Everything but the write: members can be read, no one removed.
        graph.granted = set(LEAST_PRIVILEGED) - {"GroupMember.ReadWrite.All"}
        graph.granted.add("GroupMember.Read.All")
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 0, run.stderr + run.stdout
        assert graph.count("DELETE", REF) == 1
        assert set(states(tmp_path).values()) == {RequestState.QUEUED}
        report = reclaim(env, "report", "--policies", str(policies))
        assert "permission GroupMember.ReadWrite.All" in report.stdout
        assert "300 removal(s) waiting" in report.stdout

        graph.granted = set(LEAST_PRIVILEGED)
        time.sleep(2.5)  # the back-off: then one removal probes
        work = reclaim(env, "work", "--policies", str(policies))
        assert work.returncode == 0, work.stderr + work.stdout
        assert set(states(tmp_path).values()) == {RequestState.REMOVED}
        assert graph.count("DELETE", REF) == 301
        assert not any(graph.is_member(group, i) for i in ids.values())
        report = reclaim(env, "report", "--policies", str(policies))
        assert "waiting" not in report.stdout


def test_a_refusal_about_one_user_fails_that_removal_only(tmp_path: Path) -> None:
    with FakeGraph() as graph:
        group, _, policies, env = tenant(graph, tmp_path, ["ann", "bob", "cy"])
        vip = graph.add_user("vip@contoso.test", restricted=True)
        graph.add_member(group, vip)
        (tmp_path / "usage.csv").write_text(
            (tmp_path / "usage.csv").read_text() + "vip@contoso.test,0\n"
        )
        run = reclaim(env, "run", "--policies", str(policies), "--policy", "visio")
        assert run.returncode == 1, run.stderr + run.stdout  # some removals failed
        assert states(tmp_path) == {
            "ann": RequestState.REMOVED,
            "bob": RequestState.REMOVED,
            "cy": RequestState.REMOVED,
            "vip": RequestState.FAILED,
        }
        assert graph.is_member(group, vip)

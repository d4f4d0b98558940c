"""Chaos, measured (issue 13): `python -m reclaim` (run, work, expire, restore) killed by SIGKILL
or a closed pipe at random points, against the Graph fake and the Samba DC, then recovered with
`work`/`expire`; DESIGN §8 invariants 4 and 5 checked after each scenario (tests/support/chaos.py).

The seeds are printed with each scenario's kill points and figures (`pytest -s`): a failure
names its seed, and CHAOS_SEED=<seed> replays that one scenario. README ("Chaos, measured")
quotes the totals; `python -m bench.chaos` runs more seeds.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reclaim.domain.model import User
from tests.support.chaos import (
    LEASE,
    Figures,
    GraphWorld,
    Kill,
    World,
    check_removals,
    invoke,
    scenario,
)
from tests.support.chaos_host import HostWorld, host_scenario
from tests.support.cli import reclaim
from tests.support.tripwire import AFTER, BEFORE, TrippingGraph, TrippingLdapsRelay, Tripwire

if TYPE_CHECKING:
    from tests.support.samba import SambaDC

GRAPH_SEEDS = [int(os.environ["CHAOS_SEED"])] if "CHAOS_SEED" in os.environ else list(range(8))
SAMBA_SEEDS = [int(os.environ["CHAOS_SEED"])] if "CHAOS_SEED" in os.environ else [3, 4, 6, 7]


def _report(name: str, seeds: list[int], run: object) -> Figures:
    total = Figures()
    for seed in seeds:
        log: list[str] = []
        try:
            figures = run(seed, log)  # type: ignore[operator]
        finally:
            print(f"chaos {name} seed {seed}:\n" + "\n".join(log))
        print(f"chaos {name} seed {seed}: {figures.line()}")
        total += figures
    print(f"chaos {name} total over seeds {seeds}: {total.line()}")
    return total


def test_chaos_against_graph(tmp_path: Path) -> None:
    with TrippingGraph() as graph:

        def run(seed: int, log: list[str]) -> Figures:
            workdir = tmp_path / f"seed{seed}-{uuid.uuid4().hex[:6]}"
            workdir.mkdir()
            # Some scenarios allow two attempts only: kills then spend them.
            attempts = "2" if seed % 2 else "5"
            world = GraphWorld(graph, workdir, 3 + seed % 4, RECLAIM_MAX_ATTEMPTS=attempts)
            return scenario(world, seed, log)

        total = _report("graph", GRAPH_SEEDS, run)
    assert total.kills > 0 and total.removed > 0 and total.restored == total.removed


def run_id(world: World) -> str:
    (only,) = {r.run_id for r in world.store().requests(world.policy)}
    return only


def test_a_spent_claim_whose_last_write_took_the_user_out_is_removed(tmp_path: Path) -> None:
    """Found by the chaos run: two attempts allowed, the first worker killed before its DELETE
    reached Graph, the second after Graph applied it (answer lost). The third delivery found
    the attempts spent and recorded FAILED "gave up", though our write had taken her out: the
    ledger no longer matched the group, and `restore` had nothing to restore."""
    with TrippingGraph() as graph:
        world = GraphWorld(graph, tmp_path, 2, RECLAIM_MAX_ATTEMPTS="2")
        policies = ("--policies", str(world.policies))
        run = invoke(world, ("run", *policies, "--policy", world.policy), Kill(False, 1, BEFORE))
        time.sleep(LEASE + 0.2)
        work = invoke(world, ("work", *policies), Kill(False, 1, AFTER))
        assert run.landed and work.landed
        assert len(world.members()) == 1  # the second DELETE was applied
        time.sleep(LEASE + 0.2)
        for command in ("work", "expire"):  # the worker hands it back, the tick re-decides
            done = reclaim(world.env, command, *policies)
            assert done.returncode == 0, done.stdout + done.stderr
        figures = check_removals(world, seed=0)
        assert figures.removed == 2 and figures.confirmed_absent == 1
        restore = reclaim(
            world.env, "restore", *policies, "--policy", "chaos", "--run", run_id(world)
        )
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert world.members() == world.before


def test_a_run_after_a_dead_workers_write_records_the_removal(tmp_path: Path) -> None:
    """Found by the invariant model's dying worker: a claim handed back for re-decision after its
    worker died past the DELETE (here: its one attempt spent) was CANCELLED "left the group" by
    the next run, though our write had taken her out."""
    with TrippingGraph() as graph:
        world = GraphWorld(graph, tmp_path, 2, RECLAIM_MAX_ATTEMPTS="1")
        policies = ("--policies", str(world.policies))
        run = ("run", *policies, "--policy", world.policy)
        assert invoke(world, run, Kill(False, 1, AFTER)).landed
        time.sleep(LEASE + 0.2)
        work = reclaim(world.env, "work", *policies)  # hands the spent claim back (DUE)
        assert work.returncode == 0, work.stdout + work.stderr
        again = reclaim(world.env, *run)
        assert again.returncode == 0, again.stdout + again.stderr
        figures = check_removals(world, seed=0)
        assert figures.removed == 2 and figures.confirmed_absent == 1


# ---- the function host's queue worker ------------------------------------------------------------


@pytest.mark.azurite
def test_chaos_kills_the_function_hosts_queue_worker(
    storage_env: dict[str, str], tmp_path: Path
) -> None:
    """`python -m reclaim host` SIGKILLed after Graph applied its second member write, while its
    queue worker runs the other removals at once (some not yet sent, some applied with their
    answers lost with the process); a second host and `expire` recover
    (tests/support/chaos_host.py). One scenario: each costs about ten process starts."""
    kill = Kill(False, 2, AFTER)
    with TrippingGraph() as graph:
        world = HostWorld(graph, tmp_path, 4, storage_env)
        log: list[str] = []
        try:
            figures = host_scenario(world, kill, log)
        finally:
            print("chaos host:\n" + "\n".join(log))
        print(f"chaos host {kill}: {figures.line()}")
    assert figures.removed == 4 and figures.restored == 4


# ---- Samba --------------------------------------------------------------------------------------

AD_POLICY = """policies:
  - name: chaos
    application: Salesforce Lightning
    mode: enforce
    ask_permission: false
    directory: {{kind: ad, group: "{group}"}}
    usage: {{source: csv, file: usage.csv, user_column: user, usage_column: minutes,
            match_on: sam_account_name}}
    limits: {{max_removals_per_run: 1000, max_percent_of_group: 100}}
    licence: {{monthly_cost: 165}}
"""


class AdWorld(World):
    def __init__(
        self, dc: SambaDC, relay: TrippingLdapsRelay, workdir: Path, count: int, **env: str
    ) -> None:
        tag = uuid.uuid4().hex[:6]
        self.dc = dc
        self.relay = relay
        self.group_name = f"Chaos-{tag}"
        self.group = dc.create_group(self.group_name)
        users = {f"chaos{tag}{n}": dc.create_user(f"chaos{tag}{n}") for n in range(count)}
        dc.add_members(self.group, users.values())
        settings = dc.settings_env(RECLAIM_LDAP_URL=relay.url)
        settings["RECLAIM_SECRET_LDAP_BIND_PASSWORD"] = dc.admin_password
        super().__init__(workdir, users, {**settings, **env})
        (workdir / "usage.csv").write_text("user,minutes\n" + "".join(f"{u},0\n" for u in users))
        self.policies.write_text(AD_POLICY.format(group=self.group_name))

    def is_member(self, handle: str) -> bool:
        return self.dc.is_member(self.group, handle)

    def key(self, user: User) -> str:
        return user.sam_account_name

    def arm(self, wire: Tripwire | None) -> None:
        self.relay.tripwire = wire

    def clean(self) -> None:
        for dn in [*self.users.values(), self.group]:
            self.dc.delete(dn)


@pytest.fixture
def tripping_relay(samba_dc: SambaDC) -> Iterator[TrippingLdapsRelay]:
    relay = TrippingLdapsRelay(samba_dc.directory, ("127.0.0.1", 636), samba_dc.server_name)
    yield relay
    relay.close()


@pytest.mark.samba
def test_chaos_against_samba(
    samba_dc: SambaDC, tripping_relay: TrippingLdapsRelay, tmp_path: Path
) -> None:
    def run(seed: int, log: list[str]) -> Figures:
        workdir = tmp_path / f"seed{seed}"
        workdir.mkdir()
        attempts = "2" if seed % 2 else "5"
        world = AdWorld(
            samba_dc, tripping_relay, workdir, 3 + seed % 3, RECLAIM_MAX_ATTEMPTS=attempts
        )
        try:
            return scenario(world, seed, log)
        finally:
            world.clean()

    total = _report("samba", SAMBA_SEEDS, run)
    assert total.kills > 0 and total.removed > 0 and total.restored == total.removed

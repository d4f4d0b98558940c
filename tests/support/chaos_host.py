"""Chaos for the function app's queue worker: `python -m reclaim host` SIGKILLed while it works
the removal queue against the Graph fake (tests/support/chaos.py has the CLI's scenarios).

One scenario, over Table storage and the Azure queue on Azurite:
1. `run` (not killed) releases every idle member to the removal queue;
2. a host works the queue until the tripwire holds its n-th member write (before Graph applied
   it, or after, its answer not yet sent) and is SIGKILLed there, its other messages in flight;
3. a second host is started, and `expire` runs after each claim lease until every request has
   ended (the dead host's claims are handed back and re-decided; its messages come back after
   their visibility, RECLAIM_CLAIM_LEASE), then the host is stopped;
4. DESIGN §8 (4) and (5) as `check_removals` asserts them, then `restore --run`, one more
   `expire` after the lease, and `check_restored`: the group is as it was, each user re-added
   once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reclaim.adapters.tables import TableStore
from reclaim.ports import StateStore
from reclaim.settings import Settings
from tests.support.chaos import (
    LEASE,
    Figures,
    GraphWorld,
    Kill,
    check_removals,
    check_restored,
    invoke,
    open_requests,
    removed_requests,
)
from tests.support.cli import ROOT, reclaim
from tests.support.functions import binding_settings
from tests.support.tripwire import AFTER, TrippingGraph

SETTLE_WITHIN = 120.0  # seconds the second host and `expire` get to end every request (a bound)


class HostWorld(GraphWorld):
    """GraphWorld over Table storage and the Azure removal queue (Azurite): the CLI and the
    hosts share them, as the function app and an administrator's CLI would."""

    def __init__(
        self, graph: TrippingGraph, workdir: Path, count: int, storage: dict[str, str]
    ) -> None:
        # The settings the bindings name (queue, schedules), then this test's storage.
        super().__init__(graph, workdir, count, **{**binding_settings(), **storage})

    def store(self) -> StateStore:
        return TableStore.from_settings(Settings.from_env(self.env), self.env)


def host_scenario(world: HostWorld, kill: Kill, log: list[str]) -> Figures:
    policies = ("--policies", str(world.policies))
    figures = Figures(runs=1)
    run = reclaim(world.env, "run", *policies, "--policy", world.policy)
    assert run.returncode == 0, run.stdout + run.stderr
    host = ("host", *policies, "--port", "0")
    killed = invoke(world, host, kill)
    log.append(f"  host: {kill}{'' if killed.landed else ' (missed)'}")
    assert killed.landed, killed.output  # the host never stops by itself
    figures.kills += 1
    figures.lost_answers += kill.phase == AFTER
    left_open = set(open_requests(world))
    second = subprocess.Popen(
        [sys.executable, "-m", "reclaim", *host],
        cwd=ROOT,
        env=world.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SETTLE_WITHIN
        while open_requests(world):
            assert time.monotonic() < deadline, f"still open: {open_requests(world)}"
            assert second.poll() is None, "the second host stopped"
            time.sleep(LEASE + 0.2)
            expire = reclaim(world.env, "expire", *policies)
            assert expire.returncode == 0, expire.stdout + expire.stderr
    finally:
        _stop(second)
    figures += check_removals(world, seed=0)
    figures.recovered = len(left_open)
    removed = removed_requests(world)
    for run_id in sorted({r.run_id for r in removed}):
        restore = reclaim(
            world.env, "restore", *policies, "--policy", world.policy, "--run", run_id
        )
        assert restore.returncode == 0, restore.stdout + restore.stderr
    time.sleep(LEASE + 0.2)
    again = reclaim(world.env, "expire", *policies)  # nothing stale may remove anyone again
    assert again.returncode == 0, again.stdout + again.stderr
    figures.restored = check_restored(world, 0, len(removed))
    return figures


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl+C, as an administrator stops `python -m reclaim host`; SIGKILL if it lingers."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

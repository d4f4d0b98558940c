"""Chaos runs: `python -m reclaim` killed at random points of runs, removals and restores.

One scenario, from a seeded RNG (print the seed: the same seed replays the same kill points):
1. `run` of an enforce policy over a group whose members are all idle, killed (SIGKILL) or its
   pipe closed (as `| head -1` does, then SIGPIPE sent) at a kill point: the n-th directory
   write, held before the directory applied it or after it did (answer not yet sent), or after a
   random delay (anywhere: selection, bookkeeping, between writes);
2. recovery rounds of `work` or `expire` (the worker path) after the claim lease, which may be
   killed too; then `work` and `expire` unkilled until every request has ended;
3. DESIGN §8 invariants 4 and 5 checked (`check_removals`): every request terminal, the users
   the ledger says were removed = the users gone from the group, none removed twice, none
   mislabelled NOT_MEMBER (every user was a member before reclaim's first write);
4. `restore --run` of every run with removals, killed the same way, repeated until nothing is
   left to restore; then, after the lease, `expire` and `work` once more (a stale message or
   claim must not remove a restored user again); `check_restored`: membership is as before.

The directory is the Graph fake (`GraphWorld`, here) or the Samba DC (tests/e2e/test_chaos.py);
both give their member writes a tripwire (tests/support/tripwire.py).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import OPEN_STATES, Request, RequestState
from reclaim.domain.model import User
from reclaim.domain.records import LedgerOutcome
from reclaim.ports import StateStore
from tests.support.cli import ROOT
from tests.support.tripwire import AFTER, BEFORE, TrippingGraph, Tripwire

LEASE = 1.0  # seconds: RECLAIM_CLAIM_LEASE of the runs, so a dead worker's claim lapses fast
KILLED_ROUNDS = 2  # recovery rounds that may be killed
SETTLE = ("work", "expire", "expire")  # then these, never killed, until every request has ended
CONFIRMED = "confirmed absent after our write"


@dataclass
class Figures:
    runs: int = 0
    kills: int = 0  # SIGKILLs that landed while the process was working
    pipes: int = 0  # pipes closed (and SIGPIPE sent) mid-work: the process must finish anyway
    lost_answers: int = 0  # kills after the directory applied a removal, before its answer
    recovered: int = 0  # requests left open by a kill that recovery brought to an end
    removed: int = 0
    confirmed_absent: int = 0  # of them, recognised by a retry after our own lost write
    failed: int = 0  # FAILED (attempts spent), the user still a member
    restored: int = 0
    mislabelled: int = 0  # NOT_MEMBER, or FAILED while our write had taken the user out
    duplicated: int = 0  # a user removed (or re-added) more than once
    non_terminal: int = 0

    def __iadd__(self, other: Figures) -> Figures:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def line(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
        )


@dataclass(frozen=True)
class Kill:
    """Where and how one process is stopped: at the `nth` write (`phase`), or after `delay`."""

    pipe: bool  # close its pipe and send SIGPIPE (it must survive) instead of SIGKILL
    nth: int = 0
    phase: str = ""
    delay: float = 0.0

    def __str__(self) -> str:
        how = "pipe closed" if self.pipe else "SIGKILL"
        where = (
            f"write {self.nth} {self.phase}"
            if self.nth
            else f"{self.delay:.2f} s after its first request"
        )
        return f"{how} at {where}"


def pick_kill(rng: random.Random, writes: int) -> Kill:
    """Mostly at a write boundary; else a random delay after the first directory request
    (reading the group, bookkeeping, between writes)."""
    pipe = rng.random() < 0.2
    if rng.random() < 0.7:
        return Kill(pipe, nth=rng.randint(1, max(1, writes)), phase=rng.choice((BEFORE, AFTER)))
    return Kill(pipe, delay=rng.uniform(0.0, 0.5))


class World:
    """A group, its users (all members, all idle), an enforce policy and the CLI's environment.
    Subclasses say how membership is read and where the tripwire goes."""

    policy = "chaos"

    def __init__(self, workdir: Path, users: dict[str, str], env: dict[str, str]) -> None:
        self.workdir = workdir
        self.users = users  # key (as `key` gives it) -> the directory's handle
        self.db = workdir / "state.sqlite3"
        self.policies = workdir / "policies.yaml"
        self.env = {**os.environ, **env, "RECLAIM_STATE_DB": str(self.db)}
        self.env["RECLAIM_CLAIM_LEASE"] = f"{LEASE:g}s"
        self.before = set(users)

    def is_member(self, handle: str) -> bool:
        raise NotImplementedError

    def key(self, user: User) -> str:
        raise NotImplementedError

    def arm(self, wire: Tripwire | None) -> None:
        raise NotImplementedError

    def members(self) -> set[str]:
        return {k for k, handle in self.users.items() if self.is_member(handle)}

    def store(self) -> StateStore:
        return SqliteStore(self.db)

    def directory_tally(self) -> tuple[Counter[str], Counter[str]] | None:
        """(taken out, put back) per user key, where the directory can tell; else None."""
        return None


@dataclass
class Invocation:
    argv: tuple[str, ...]
    kill: Kill | None
    landed: bool  # the kill happened while the process was still working
    returncode: int
    output: str


def invoke(world: World, argv: tuple[str, ...], kill: Kill | None) -> Invocation:
    """`python -m reclaim argv` in its own process, stopped as `kill` says."""
    read, write = os.pipe()
    wire = Tripwire(kill.nth, kill.phase) if kill else None
    world.arm(wire)
    process = subprocess.Popen(
        [sys.executable, "-m", "reclaim", *argv],
        cwd=ROOT,
        env=world.env,
        stdin=subprocess.DEVNULL,
        stdout=write,
        stderr=write,
    )
    os.close(write)
    chunks: list[bytes] = []
    reader = None
    if not (kill and kill.pipe):  # a pipe to be closed is not read (its output fits its buffer)
        reader = threading.Thread(target=_drain, args=(read, chunks), daemon=True)
        reader.start()
    landed = False
    try:
        if wire is not None and kill is not None:
            # A delay counts from the first directory request: process start-up is not chaos.
            event = wire.reached if kill.nth else wire.started
            deadline = time.monotonic() + 60
            while not event.is_set() and process.poll() is None:
                assert time.monotonic() < deadline, f"{argv}: {kill} never came"
                time.sleep(0.01)
            landed = event.is_set()
            if landed and not kill.nth:
                try:
                    process.wait(timeout=kill.delay)
                    landed = False
                except subprocess.TimeoutExpired:
                    pass
        if landed and kill is not None and not kill.pipe:
            process.kill()
            process.wait(timeout=30)
        elif landed:
            os.close(read)
            read = -1
            process.send_signal(signal.SIGPIPE)
        if wire is not None:
            wire.release(killed=landed and kill is not None and not kill.pipe)
        returncode = process.wait(timeout=120)
    finally:
        world.arm(None)
        if process.poll() is None:
            process.kill()
    if reader is not None:
        reader.join(timeout=10)
    elif read >= 0:
        _drain(read, chunks)
    output = b"".join(chunks).decode(errors="replace")
    return Invocation(argv, kill, landed, returncode, output)


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as stream:
        while data := stream.read1(65536):
            chunks.append(data)


def open_requests(world: World) -> list[str]:
    return [r.id for r in world.store().requests(world.policy) if r.state in OPEN_STATES]


def _completed(invocation: Invocation, seed: int) -> None:
    """A process that was not SIGKILLed ended by itself, without a traceback."""
    assert "Traceback" not in invocation.output, (seed, invocation.argv, invocation.output)
    assert invocation.returncode in (0, 1, 2), (seed, invocation.argv, invocation.output)


def scenario(world: World, seed: int, log: list[str]) -> Figures:
    rng = random.Random(seed)
    figures = Figures(runs=1)
    policies = ("--policies", str(world.policies))
    open_after_kills: set[str] = set()

    def call(argv: tuple[str, ...], kill: Kill | None) -> Invocation:
        done = invoke(world, argv, kill)
        log.append(
            f"  {' '.join(argv[:1])}: {kill or 'no kill'}{'' if done.landed else ' (missed)'}"
        )
        if done.landed and kill is not None and not kill.pipe:
            figures.kills += 1
            figures.lost_answers += kill.phase == AFTER and argv[0] != "restore"
            open_after_kills.update(open_requests(world))
        else:
            figures.pipes += done.landed
            _completed(done, seed)
        return done

    call(("run", *policies, "--policy", world.policy), pick_kill(rng, len(world.users)))
    for _ in range(KILLED_ROUNDS):
        if not open_requests(world):
            break
        time.sleep(LEASE + 0.2)  # the dead worker's claim (and its message) lapse
        kill = pick_kill(rng, len(open_requests(world))) if rng.random() < 0.6 else None
        call((rng.choice(("work", "expire")), *policies), kill)
    for command in SETTLE:  # unkilled: the worker hands back what only a tick can re-decide
        if not open_requests(world):
            break
        time.sleep(LEASE + 0.2)
        call((command, *policies), None)
    figures += check_removals(world, seed)
    figures.recovered = len(open_after_kills)

    removed = removed_requests(world)
    for run_id in sorted({r.run_id for r in removed}):
        restore = ("restore", *policies, "--policy", world.policy, "--run", run_id)
        call(restore, pick_kill(rng, len(removed)) if rng.random() < 0.6 else None)
        while any(r.run_id == run_id for r in removed_requests(world)):
            call(restore, None)  # the administrator runs it again
    time.sleep(LEASE + 0.2)
    call(("expire", *policies), None)
    call(("work", *policies), None)
    figures.restored = check_restored(world, seed, len(removed))
    return figures


def removed_requests(world: World) -> list[Request]:
    return [r for r in world.store().requests(world.policy) if r.state is RequestState.REMOVED]


def check_removals(world: World, seed: int) -> Figures:
    """DESIGN §8 invariants 4 and 5 after recovery, as figures; asserts they hold."""
    store = world.store()
    requests = store.requests(world.policy)
    ledger = store.ledger(policy=world.policy)
    gone = world.before - world.members()
    removed_entries = Counter(
        world.key(e.user) for e in ledger if e.outcome is LedgerOutcome.REMOVED
    )
    removed_states = {world.key(r.user) for r in requests if r.state is RequestState.REMOVED}
    failed = {world.key(r.user) for r in requests if r.state is RequestState.FAILED}
    figures = Figures(
        removed=sum(removed_entries.values()),
        confirmed_absent=sum(
            e.outcome is LedgerOutcome.REMOVED and e.detail.startswith(CONFIRMED) for e in ledger
        ),
        failed=len(failed - gone),
        mislabelled=sum(e.outcome is LedgerOutcome.NOT_MEMBER for e in ledger) + len(failed & gone),
        duplicated=sum(n - 1 for n in removed_entries.values() if n > 1),
        non_terminal=sum(r.state in OPEN_STATES for r in requests),
    )
    tally = world.directory_tally()
    if tally is not None:
        figures.duplicated += sum(n - 1 for n in tally[0].values() if n > 1)
    detail = {world.key(r.user): (r.state.value, r.attempts, r.detail) for r in requests}
    where = f"seed {seed}: {figures.line()}; requests {detail}"
    assert figures.non_terminal == 0, where
    assert set(removed_entries) == gone == removed_states, where  # ledger = directory diff
    assert figures.mislabelled == 0 and figures.duplicated == 0, where
    return figures


def check_restored(world: World, seed: int, removed: int) -> int:
    """Everything removed was restored, exactly once, and stays restored; how many."""
    store = world.store()
    requests = store.requests(world.policy)
    ledger = store.ledger(policy=world.policy)
    back = Counter(
        e.request_id
        for e in ledger
        if e.outcome in (LedgerOutcome.RESTORED, LedgerOutcome.ALREADY_MEMBER)
    )
    restored = [r for r in requests if r.state is RequestState.RESTORED]
    where = f"seed {seed}: {len(restored)} of {removed} restored; ledger {dict(back)}"
    assert world.members() == world.before, where
    assert len(restored) == removed and all(back[r.id] == 1 for r in restored), where
    assert not any(r.state in OPEN_STATES for r in requests), where
    tally = world.directory_tally()
    if tally is not None:
        taken_out, put_back = tally
        assert all(n <= 1 for n in taken_out.values()), (where, taken_out)
        assert put_back == taken_out, (where, taken_out, put_back)  # each re-added once
    return len(restored)


# ---- the Graph world ----------------------------------------------------------------------------

GRAPH_POLICY = """policies:
  - name: chaos
    application: Microsoft Visio
    mode: enforce
    ask_permission: false
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: csv, file: usage.csv, user_column: upn, usage_column: minutes, match_on: upn}}
    limits: {{max_removals_per_run: 1000, max_percent_of_group: 100}}
    licence: {{monthly_cost: 10}}
"""


class GraphWorld(World):
    def __init__(self, graph: TrippingGraph, workdir: Path, count: int, **env: str) -> None:
        self.graph = graph
        self.group = graph.add_group(f"Chaos-{workdir.name}")
        tag = workdir.name[-6:]
        users = {
            f"c{tag}{n}@contoso.test": graph.add_user(f"c{tag}{n}@contoso.test")
            for n in range(count)
        }
        graph.add_member(self.group, *users.values())
        graph.watched = self.group
        graph.taken_out.clear()
        graph.put_back.clear()
        super().__init__(workdir, users, {**graph.settings_env(), **env})
        (workdir / "usage.csv").write_text("upn,minutes\n" + "".join(f"{u},0\n" for u in users))
        self.policies.write_text(GRAPH_POLICY.format(group=self.group))
        self._upn = {object_id: upn for upn, object_id in users.items()}

    def is_member(self, handle: str) -> bool:
        return self.graph.is_member(self.group, handle)

    def key(self, user: User) -> str:
        return user.upn

    def arm(self, wire: Tripwire | None) -> None:
        self.graph.tripwire = wire

    def directory_tally(self) -> tuple[Counter[str], Counter[str]]:
        return (
            Counter({self._upn[u]: n for u, n in self.graph.taken_out.items()}),
            Counter({self._upn[u]: n for u, n in self.graph.put_back.items()}),
        )

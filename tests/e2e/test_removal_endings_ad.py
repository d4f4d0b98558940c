"""Issue 13 against the real Samba AD domain controller: a modify whose answer is lost, a DC that
freezes (SIGSTOP), and a bind account without write access to the group. The use cases run
in-process over the real SQLite store and the real LdapDirectory."""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ldap3 import MODIFY_REPLACE

from reclaim import usecases
from reclaim.adapters.ldap import LdapDirectory
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.breaker import BreakerRules, HaltKind
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import UsageRow
from reclaim.errors import ConfigurationError
from reclaim.settings import Settings
from tests.conftest import NOW, make_policy
from tests.support.ldap_proxy import DroppingLdapsRelay
from tests.support.memory import MemoryQueue, MemoryUsage

if TYPE_CHECKING:
    from tests.support.samba import SambaDC

pytestmark = pytest.mark.samba

PASSWORD_SECRET = "ldap-bind-password"
LIMITS = usecases.RemovalLimits(
    max_attempts=5,
    breaker=BreakerRules(backoff=timedelta(minutes=1), max_wait=timedelta(days=1)),
)
S = usecases.RemovalStatus


class Secrets:
    def __init__(self, password: str) -> None:
        self.password = password

    def get(self, name: str) -> str:
        if name != PASSWORD_SECRET:
            raise ConfigurationError(f"secret {name} not found")
        return self.password


class AdAdapters:
    """usecases.Adapters: the real LdapDirectory, usage from memory, nobody asked."""

    def __init__(self, directory: LdapDirectory, usage: MemoryUsage) -> None:
        self.directory_ = directory
        self.usage_ = usage

    def directory(self, policy):  # type: ignore[no-untyped-def]
        return self.directory_

    def usage_source(self, policy):  # type: ignore[no-untyped-def]
        return self.usage_

    def campaign(self, policy):  # type: ignore[no-untyped-def]
        raise ConfigurationError("these policies ask no one")


def ldap_directory(dc: SambaDC, password: str = "", **settings: str) -> LdapDirectory:
    env = dc.settings_env(**settings)
    return LdapDirectory.from_settings(
        Settings.from_env(env), Secrets(password or dc.admin_password)
    )


class World:
    def __init__(self, dc: SambaDC, tmp_path: Path, count: int, directory: LdapDirectory) -> None:
        tag = uuid.uuid4().hex[:6]
        self.dc = dc
        self.group_name = f"E2E-Endings-{tag}"
        self.group = dc.create_group(self.group_name)
        self.names = [f"end{tag}{n}" for n in range(count)]
        self.users = {name: dc.create_user(name) for name in self.names}
        dc.add_members(self.group, self.users.values())
        policy = make_policy(
            mode="enforce",
            directory={"kind": "ad", "group": self.group_name},
            usage={"match_on": "sam_account_name"},
        )
        self.adapters = AdAdapters(
            directory, MemoryUsage([UsageRow(n, 0.0) for n in self.names], NOW)
        )
        self.queue = MemoryQueue()
        ids = (f"ad-{tag}-{n:03d}" for n in itertools.count())
        self.ctx = usecases.Context(
            SqliteStore(tmp_path / "state.sqlite3"),
            self.queue,
            self.adapters,
            {policy.name: policy},
            new_id=lambda: next(ids),
            limits=LIMITS,
        )
        self.policy = policy

    def run(self) -> None:
        outcome = usecases.run_policy(self.ctx, self.policy, NOW)
        assert outcome.run.enqueued == len(self.names), outcome.halt

    def deliver(self, now=NOW) -> list[usecases.RemovalStatus]:  # type: ignore[no-untyped-def]
        return [
            usecases.perform_removal(self.ctx, usecases.RemovalCommand(m), now).status
            for m in self.queue.drain()
        ]

    def states(self) -> set[RequestState]:
        return {r.state for r in self.ctx.store.requests()}

    def members_left(self) -> int:
        return sum(self.dc.is_member(self.group, dn) for dn in self.users.values())

    def clean(self) -> None:
        for dn in [*self.users.values(), self.group]:
            self.dc.delete(dn)


@pytest.fixture
def relay(samba_dc: SambaDC) -> Iterator[DroppingLdapsRelay]:
    proxy = DroppingLdapsRelay(samba_dc.directory, ("127.0.0.1", 636), samba_dc.server_name)
    yield proxy
    proxy.close()


def test_a_modify_whose_answer_was_lost_is_removed_and_restorable(
    samba_dc: SambaDC, relay: DroppingLdapsRelay, tmp_path: Path
) -> None:
    """The DC applied the MODIFY_DELETE, the connection dropped before its answer, the retry got
    53 "Attribute member already deleted": today NOT_MEMBER, not restorable."""
    world = World(samba_dc, tmp_path, 3, ldap_directory(samba_dc, RECLAIM_LDAP_URL=relay.url))
    try:
        world.run()
        relay.drop_next_modify_answer()
        assert world.deliver() == [S.REMOVED] * 3
        assert relay.dropped == 1 and world.members_left() == 0
        details = [r.detail for r in world.ctx.store.requests()]
        assert sum(d.startswith("confirmed absent after our write") for d in details) == 1
        first = world.names[0]
        restored = usecases.restore(
            world.ctx, usecases.RestoreCommand(world.policy.name, first, ""), NOW
        )
        assert restored.restored and samba_dc.is_member(world.group, world.users[first])
    finally:
        world.clean()


def test_a_frozen_dc_costs_a_few_timeouts_not_one_per_message(
    samba_dc: SambaDC, tmp_path: Path
) -> None:
    """SIGSTOP the DC: each message used to wait out a receive timeout and a reconnect (about a
    minute). Now each call is bounded by RECLAIM_LDAP_TIMEOUT, and after outage_threshold in a
    row the directory is treated as down: the other messages wait without calling it."""
    world = World(samba_dc, tmp_path, 10, ldap_directory(samba_dc, RECLAIM_LDAP_TIMEOUT="2"))
    pid = samba_dc._process.pid  # type: ignore[union-attr]
    try:
        world.run()  # the directory's connection is open and idle
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            statuses = world.deliver()
            elapsed = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        print(f"frozen DC: 10 removals answered in {elapsed:.1f} s")  # README's figure
        assert statuses == [S.DEFERRED] * 10
        assert elapsed < 3 * 2 * 2 + 5, f"{elapsed:.1f} s for 10 messages to a frozen DC"
        (breaker,) = world.ctx.store.breakers()
        assert breaker.is_open and breaker.kind is HaltKind.OUTAGE
        assert sum(r.attempts for r in world.ctx.store.requests()) == 3  # outage_threshold
        assert world.members_left() == 10
        # The DC is back: after the back-off one removal probes, the breaker closes.
        assert world.deliver(NOW + LIMITS.breaker.backoff) == [S.REMOVED] * 10
        assert world.members_left() == 0 and world.states() == {RequestState.REMOVED}
    finally:
        world.clean()


def test_a_bind_account_without_write_access_stops_at_the_first_removal(
    samba_dc: SambaDC, tmp_path: Path
) -> None:
    """insufficientAccessRights (50) on the group failed every candidate one by one."""
    helper = f"reclaim-low-{uuid.uuid4().hex[:6]}"
    helper_dn = samba_dc.create_user(helper)
    password = "Low-Priv-Passw0rd!"  # a throwaway lab account
    samba_dc.admin.modify(
        helper_dn,
        {
            "unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
            "userAccountControl": [(MODIFY_REPLACE, ["512"])],  # enabled
        },
    )
    low = ldap_directory(samba_dc, password, RECLAIM_LDAP_BIND_DN=helper_dn)
    world = World(samba_dc, tmp_path, 4, low)
    try:
        world.run()  # reading is allowed
        assert world.deliver() == [S.DEFERRED] * 4
        assert world.members_left() == 4 and world.states() == {RequestState.QUEUED}
        tried = [r for r in world.ctx.store.requests() if r.detail.startswith("waiting:")]
        assert len(tried) == 1  # one modify refused; the other three never reached the DC
        (breaker,) = world.ctx.store.breakers()
        assert breaker.kind is HaltKind.PERMISSION and "member attribute" in breaker.permission
        assert "insufficientAccessRights" in usecases.report(world.ctx)[0].removals_halted
        # The right is granted (here: the policy's account becomes one that holds it).
        world.adapters.directory_ = ldap_directory(samba_dc)
        assert world.deliver(NOW + LIMITS.breaker.backoff) == [S.REMOVED] * 4
        assert world.members_left() == 0
    finally:
        world.clean()
        samba_dc.delete(helper_dn)

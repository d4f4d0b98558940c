"""Seats verified after the fact (issue 13, item 5), with the real Graph licences adapter against
the Graph fake: 3 removals from an AD licensing group at $10 a month, where one user also holds the
SKU through another group and one through a direct assignment. Before, the report counted 3 seats
and $30 a month; the truth is 1 seat and $10, and the report must say so, with the other two apart.

The AD directory is the in-memory one (which directory removed the user does not matter here: the
seat is read from Entra ID, where the AD users are synced); Entra's side is the HTTPS fake, with
asynchronous group licensing (licence_lag) and directory sync (sync_removal).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from reclaim import reporting, usecases
from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient
from reclaim.adapters.graph.licences import GraphLicences
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.model import Member, UsageRow, User
from reclaim.settings import Settings
from tests.conftest import NOW, make_policy
from tests.fakes.graph import FakeGraph
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

AD_GROUP = "CN=Visio,OU=Groups,DC=contoso,DC=test"
NAMES = ("ann", "bob", "cy")  # ann: only this group; bob: another group too; cy: direct too


def test_three_removals_two_licensed_elsewhere_are_one_verified_seat_and_ten_a_month(
    tmp_path: Path,
) -> None:
    with FakeGraph() as graph:
        graph.licence_lag = True
        sku = graph.new_sku()
        synced = graph.add_group("Visio (synced from AD)", synced=True, licences=[sku])
        bundle = graph.add_group("E5 bundle", licences=[sku])
        ids = {n: graph.add_user(f"{n}@contoso.test") for n in NAMES}
        graph.add_member(synced, *ids.values())
        graph.add_member(bundle, ids["bob"])
        graph.users[ids["cy"]].direct_licences.append(sku)

        env = graph.settings_env()
        licences = GraphLicences(
            GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env))
        )
        users = [User(upn=f"{n}@contoso.test", sam_account_name=n) for n in NAMES]
        usage = MemoryUsage([UsageRow(u.upn, 0.0) for u in users], NOW)
        policy = make_policy(
            mode="enforce",
            directory={"kind": "ad", "group": AD_GROUP},
            licence={"monthly_cost": 10.0, "entra_sku_id": sku},
        )
        queue = MemoryQueue()
        ctx = usecases.Context(
            SqliteStore(tmp_path / "state.sqlite3"),
            queue,
            MemoryAdapters(
                MemoryDirectory({AD_GROUP: [Member(u) for u in users]}), usage, licences_=licences
            ),
            {policy.name: policy},
        )
        assert usecases.run_policy(ctx, policy, NOW).run.enqueued == 3
        for message in queue.drain():
            usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)

        (before,) = usecases.report(ctx)
        assert (before.removed, before.seats_freed, before.monthly_savings) == (3, 0, 0.0)
        assert (before.unverified, before.unverified_monthly) == (3, 30.0)

        # Not yet synced to Entra ID: the group still assigns the SKU, nothing is settled.
        graph.clear_log()
        assert usecases.expire_requests(ctx, NOW + timedelta(minutes=20)).seats_checked == 1
        assert [r.path for r in graph.requests if not r.in_batch] == ["/$batch"]  # 3 users, 1 call
        # Synced, then licence processing: ann's seat is free, bob's another group still holds.
        graph.sync_removal(synced, *ids.values())
        assert usecases.expire_requests(ctx, NOW + timedelta(minutes=40)).seats_checked == 0
        graph.process_licences()
        assert usecases.expire_requests(ctx, NOW + timedelta(hours=1)).seats_checked == 1
        # bob: still assigned by a group; from AD, reclaim cannot tell it from the synced group
        # catching up, so after seat_check_within (48h) his removal is unverified, not freed.
        assert usecases.expire_requests(ctx, NOW + timedelta(hours=49)).seats_checked == 1

        (after,) = usecases.report(ctx)
        assert (after.seats_freed, after.monthly_savings, after.yearly_savings) == (1, 10.0, 120.0)
        assert (after.seats_not_freed, after.unverified, after.unverified_monthly) == (1, 1, 10.0)
        ledger = {
            e.user.upn: (e.seat_freed, e.detail)
            for e in ctx.store.ledger()
            if e.outcome.value == "SEAT_CHECKED"
        }
        assert ledger["ann@contoso.test"][0] is True
        assert ledger["cy@contoso.test"][0] is False and "directly" in ledger["cy@contoso.test"][1]
        assert ledger["bob@contoso.test"][0] is None and bundle in ledger["bob@contoso.test"][1]

        (row,) = json.loads(reporting.as_json([after]))
        assert (row["seats_freed"], row["monthly_savings"], row["unverified_monthly"]) == (
            1,
            10.0,
            10.0,
        )
        table = reporting.as_table([after])
        assert "VERIFIED SAVINGS/MONTH" in table and "UNVERIFIED/MONTH" in table
        assert "POTENTIAL/MONTH" in table

"""What the run histories `simulate` replays cost to keep: a year of weekly runs of one policy
over --members members (10,000 by default), recorded into SQLite and into Table storage on
Azurite, and then one `simulate` over that year.

Each week's history is what `run` records (reclaim.domain.history.run_history over the week's
decisions): members churn (0.5 % leave and as many join each week), use is drawn per member and
week and summed over a 90-day look-back, a few answer "yes". Reported: the bytes stored per
run and per year (SQLite: the history BLOBs, and the file's growth; Table storage: the entities'
billable size, Azure's formula: 4 + 2 x (PartitionKey + RowKey) + per property 8 + 2 x name +
value), the seconds to write, and a simulate's read and replay time from each store.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import figure, header
from reclaim.adapters.sqlite import SqliteStore
from reclaim.adapters.storage import storage_from_env
from reclaim.adapters.tables import TableStore
from reclaim.domain.history import RunHistory, run_history
from reclaim.domain.model import Member, PolicyState, UsageIndex, User
from reclaim.domain.policy import policies_from_data
from reclaim.domain.selection import select
from reclaim.domain.simulation import Period, simulate
from tests.support.azurite import Azurite, _free_port

END = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
WEEKS = 52
POLICY = policies_from_data(
    {
        "policies": [
            {
                "name": "bench",
                "application": "Bench",
                "directory": {"kind": "csv", "group": "G", "file": "members.csv"},
                "usage": {"source": "csv", "file": "usage.csv", "match_on": "mail",
                          "threshold": "5m", "lookback": "90d"},
                "limits": {"max_removals_per_run": 500, "max_percent_of_group": 5},
                "licence": {"monthly_cost": 10.0},
            }
        ]
    }
)[0]  # fmt: skip


def weekly_histories(size: int, seed: int = 7) -> list[RunHistory]:
    rng = random.Random(seed)
    serial = 0

    def person(joined: datetime | None) -> tuple[Member, float]:
        nonlocal serial
        serial += 1
        mail = f"{rng.choice('abcdefghijklmnopqrstuvwxyz')}{serial:06d}.user@northwind.example"
        # weekly minutes: most use it a lot, some a little, some not at all
        rate = rng.choices([0.0, 0.4, 30.0, 300.0], weights=[6, 10, 24, 60])[0]
        return Member(User(mail=mail, upn=mail), added_at=joined), rate

    people = [person(None) for _ in range(size)]
    weeks: dict[str, list[float]] = {}
    start = END - (WEEKS - 1) * timedelta(days=7)
    histories = []
    for week in range(WEEKS):
        now = start + week * timedelta(days=7)
        if week:  # churn: some leave, as many join
            for _ in range(size // 200):
                people.pop(rng.randrange(len(people)))
                people.append(person(now - timedelta(days=rng.randint(0, 6))))
        amounts = {}
        for member, rate in people:
            key = member.user.mail
            used = weeks.setdefault(key, [])
            used.append(rng.expovariate(1 / rate) if rate else 0.0)
            amounts[key] = round(sum(used[-13:]), 1)
        usage = UsageIndex(now - timedelta(hours=2), amounts, len(amounts), matched=len(amounts))
        last_yes = {m.user.mail: now - timedelta(days=20) for m, _ in people[::37]}
        state = PolicyState(baseline_at=start, first_seen={}, last_yes=last_yes)
        members = [m for m, _ in people]
        decisions = select(members, usage, state, POLICY, now)
        histories.append(
            run_history(f"run-{week:02d}", POLICY, now, members, usage, state, decisions)
        )
    return histories


def entity_bytes(entity: dict[str, Any]) -> int:
    """Azure's billable size of a table entity."""
    size = 4 + 2 * (len(entity["PartitionKey"]) + len(entity["RowKey"]))
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        if isinstance(value, bytes | bytearray):
            value_size = 4 + len(value)
        elif isinstance(value, str):
            value_size = 4 + 2 * len(value)
        else:
            value_size = 8
        size += 8 + 2 * len(name) + value_size
    return size


def measure(name: str, store: Any, histories: list[RunHistory]) -> None:
    began = time.perf_counter()
    for history in histories:
        store.record_history(history)
    written = time.perf_counter() - began
    figure(f"{name}: seconds to write {len(histories)} runs", f"{written:.1f}")
    began = time.perf_counter()
    read = store.histories(POLICY.name)
    loaded = time.perf_counter() - began
    began = time.perf_counter()
    result = simulate(read, POLICY, read[0].started_at, Period.MONTH)
    replayed = time.perf_counter() - began
    figure(f"{name}: simulate, seconds to read the year", f"{loaded:.1f}")
    figure(f"{name}: simulate, seconds to replay it", f"{replayed:.1f}")
    figure(f"{name}: simulated removals (regret rate)",
           f"{result.total_removals} ({100 * (result.regret_rate or 0):.1f}%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    header(f"run histories: {WEEKS} weekly runs of {args.members} members")
    began = time.perf_counter()
    histories = weekly_histories(args.members)
    figure("seconds to generate and select", f"{time.perf_counter() - began:.1f}")
    members = sum(len(h.members) for h in histories)
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "state.sqlite3"
        sqlite = SqliteStore(path)
        empty = path.stat().st_size + (
            Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
        )
        measure("SQLite", sqlite, histories)
        db = sqlite._db()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        blobs = db.execute("SELECT SUM(LENGTH(data)) FROM histories").fetchone()[0]
        grown = path.stat().st_size - empty
        figure("SQLite: history bytes per run", f"{blobs / WEEKS:,.0f}")
        figure("SQLite: bytes per member and run", f"{blobs / members:.1f}")
        figure("SQLite: history bytes per year", f"{blobs:,}")
        figure("SQLite: file growth per year", f"{grown:,}")
        azurite = Azurite(_free_port(), _free_port(), _free_port(), Path(workdir))
        azurite.start()
        try:
            env = {"AzureWebJobsStorage": azurite.connection_string}
            tables = TableStore.from_account(storage_from_env(env), "bench")
            measure("Table storage", tables, histories)
            client = storage_from_env(env).table_service().get_table_client(tables.table_names[1])
            stored = [e for e in client.query_entities("PartitionKey eq 'bench|history'")]
            billable = sum(entity_bytes(dict(e)) for e in stored)
            figure("Table storage: entities per year", f"{len(stored):,}")
            figure("Table storage: billable bytes per run", f"{billable / WEEKS:,.0f}")
            figure("Table storage: billable bytes per year", f"{billable:,}")
        finally:
            azurite.stop()
    print(f"SUMMARY history_storage {args.members} members x {WEEKS} weeks: "
          f"SQLite {blobs:,} bytes, Table storage {billable:,} bytes per year")  # fmt: skip


if __name__ == "__main__":
    main()

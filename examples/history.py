"""Records a history of the example tenant for `simulate`: one dry run of each example policy per
week, over copies of the example exports re-dated to that week (examples/generate.py), into the
state store the environment names (RECLAIM_STATE_DB), as a scheduled `run` would.

    RECLAIM_STATE_DB=/tmp/northwind.sqlite3 python examples/history.py --weeks 26
    RECLAIM_STATE_DB=/tmp/northwind.sqlite3 python -m reclaim simulate \\
        --policies examples/policies.yaml --policy salesforce-lightning --since 180d --threshold 30m

The weeks differ the way a tenant does: a few members who hardly used the application start using
it again from some week on, and a few active ones stop (chosen by a hash of their name, so every
history this script writes is the same). Dry runs change no directory and ask no one.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import sys
import tempfile
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from generate import write_tenant  # noqa: E402

from reclaim.cli import main as reclaim  # noqa: E402

# (file, user column, amount column, what "hardly used" is, what coming back adds)
EXPORTS = [
    ("salesforce-usage.csv", "user.ad.email_address", "focus_time", 60.0, 120.0),
    ("visio-usage.csv", "upn", "focus_seconds", 3600.0, 7200.0),
]


def vary(folder: Path, week: int, weeks: int) -> None:
    """Week `week`'s use: some light users come back, some active ones stop."""
    for name, user_column, amount_column, light, back in EXPORTS:
        path = folder / name
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns, rows = reader.fieldnames or [], list(reader)
        for row in rows:
            mark = zlib.crc32(row[user_column].lower().encode())
            amount, since = float(row[amount_column] or 0), (mark >> 8) % weeks
            if amount < light and mark % 5 == 0 and week >= since:
                row[amount_column] = f"{amount + back:g}"
            elif amount >= light and mark % 13 == 0 and week >= since:
                row[amount_column] = f"{amount * 0.002:.1f}"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=26, help="weekly runs, ending today")
    args = parser.parse_args()
    if "RECLAIM_STATE_DB" not in os.environ:
        print("set RECLAIM_STATE_DB to the state file to record into", file=sys.stderr)
        return 2
    today = date.today()
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        shutil.copy(HERE / "policies.yaml", folder / "policies.yaml")
        for week in range(args.weeks):
            day = today - timedelta(days=7 * (args.weeks - 1 - week))
            write_tenant(day, folder)
            vary(folder, week, args.weeks)
            now = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
            exported = (now - timedelta(hours=1)).timestamp()  # the exports' own clock
            for export in folder.glob("*.csv"):
                os.utime(export, (exported, exported))
            for policy in ("salesforce-lightning", "visio-plan2"):
                out = io.StringIO()
                argv = ["run", "--policies", str(folder / "policies.yaml"), "--policy", policy]
                code = reclaim(argv, now=now, out=out)
                summary = next((x for x in out.getvalue().splitlines() if " members: " in x), "")
                print(f"{day} {policy}: {summary or out.getvalue().strip()} (exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

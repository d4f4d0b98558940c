"""Selection at a million members: `plan` over CSV exports next to the csv module's floor.

    python -m bench.selection_million [--members 1000000] [--rows 10000000]

Both run in child processes, their peak RSS read by os.wait4:

- the floor: the csv module alone reads the members export into a set, then streams the usage
  export, keeps the members' rows and sums them per user (what any selection must do at least);
- reclaim: `python -m reclaim plan --format csv` of a csv/csv policy over the same files (every
  member decided, with its reason and evidence, and written out).

The usage rows are those of bench/selection_scale.py: two per member for 95 % of them, the rest
for people outside the group.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO_ROOT, figure, header
from bench.selection_scale import USAGE_HEADERS, member_upn, policy, usage_rows

FLOOR = """
import csv, sys
members_file, usage_file = sys.argv[1:3]
with open(members_file, newline="") as lines:
    reader = csv.reader(lines)
    next(reader)
    members = {row[2] for row in reader}
totals = {}
with open(usage_file, newline="") as lines:
    reader = csv.reader(lines)
    next(reader)
    for user, minutes, _ in reader:
        if user in members:
            totals[user] = totals.get(user, 0.0) + float(minutes)
print(len(totals))
"""


def child(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        errors = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{argv[:4]} failed:\n{errors[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def write_exports(workdir: Path, members: int, rows: int, tag: str) -> Path:
    """The members and usage CSVs and a policies file naming them; returns the policies file."""
    usage_csv = workdir / f"usage-{tag}.csv"
    with usage_csv.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(USAGE_HEADERS)
        writer.writerows(usage_rows(members, rows))
    members_csv = workdir / f"members-{tag}.csv"
    with members_csv.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["group", "object_id", "upn", "mail"])
        writer.writerows(("bench", f"id{n}", member_upn(n), member_upn(n)) for n in range(members))
    policies = workdir / f"policies-{tag}.yaml"
    csv_usage = {"source": "csv", "file": str(usage_csv), "timestamp_column": "last_event"}
    directory = {"kind": "csv", "group": "bench", "file": str(members_csv)}
    policies.write_text(
        yaml.safe_dump({"policies": [policy("csv-csv", directory, csv_usage, members)]})
    )
    return policies


def plan(policies: Path, env: dict[str, str]) -> tuple[float, float]:
    return child(
        [
            *(sys.executable, "-m", "reclaim", "plan"),
            *("--policies", str(policies), "--policy", "csv-csv", "--format", "csv"),
        ],
        env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    members, rows = args.members, args.rows
    header(f"selection at a million: {members:,} members, {rows:,} usage rows (CSV)")
    with tempfile.TemporaryDirectory(prefix="reclaim-bench-") as folder:
        workdir = Path(folder)
        started = time.perf_counter()
        policies = write_exports(workdir, members, rows, "big")
        small = write_exports(workdir, 1_000, 10_000, "small")
        print(f"data written in {time.perf_counter() - started:.0f} s")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")},
            "RECLAIM_STATE_DB": str(workdir / "state.sqlite3"),
        }
        floor_seconds, floor_mb = child(
            [
                *(sys.executable, "-c", FLOOR),
                *(str(workdir / "members-big.csv"), str(workdir / "usage-big.csv")),
            ],
            env,
        )
        _, baseline_mb = plan(small, env)  # the interpreter, reclaim and 1,000 members
        plan_seconds, plan_mb = plan(policies, env)
    per_member_kb = (plan_mb - baseline_mb) * 1024 / (members - 1_000)
    print("csv module alone (members set, stream, filter, sum):")
    figure("seconds", f"{floor_seconds:.1f} s")
    figure("peak RSS", f"{floor_mb:.0f} MB")
    print("reclaim plan --format csv:")
    figure("seconds", f"{plan_seconds:.1f} s")
    figure("peak RSS", f"{plan_mb:.0f} MB", "<= 1 GB")
    figure("peak RSS of a 1,000-member plan (baseline)", f"{baseline_mb:.0f} MB")
    figure("held per member above the baseline", f"{per_member_kb:.2f} KB", "<= 0.5 KB")
    figure("time / the floor's", f"{plan_seconds / floor_seconds:.1f}x")
    met = plan_mb <= 1024 and per_member_kb <= 0.5
    print(
        f"SUMMARY selection_million: {members:,} x {rows:,}: plan {plan_seconds:.0f} s "
        f"({plan_seconds / floor_seconds:.1f}x the csv floor's {floor_seconds:.0f} s), peak RSS "
        f"{plan_mb:.0f} MB, {per_member_kb:.2f} KB per member above the baseline (goals <= 1 GB, "
        f"<= 0.5 KB): {'goals MET' if met else 'goals NOT MET'}"
    )


if __name__ == "__main__":
    main()

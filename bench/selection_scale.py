"""Selection at scale: `plan` over a 100,000-member group and a 1,000,000-row usage export.

    python -m bench.selection_scale [--members 100000] [--rows 1000000]

Each variant runs `python -m reclaim plan --policy NAME --format csv` in a child process (the CLI
exactly as an administrator runs it, output to a file) and reports its wall time and peak RSS
(os.wait4 of that child). The data is generated into a temporary folder and removed afterwards.

- graph+csv: members listed from the HTTPS Graph fake (real msal + requests, 999 per page; the
  fake's in-memory tenant is seeded directly), usage from a plain CSV export;
- graph+nexthink: the same members, usage through the Nexthink fake's NQL export (gzip CSV
  downloaded and streamed by the real NexthinkUsage);
- csv+csv: members from a CSV members export: selection without the Graph listing;
- graph+csv with 20-50 ms per Graph answer: Graph pages by nextLink, one after another, so the
  listing's share grows with the round trip (real Graph answers large pages more slowly still).
- overlap, at 20-50 ms per Graph answer and with Nexthink's export wait switched on (the status
  answers SUBMITTED / IN_PROGRESS for three polls, about 7 s with the adapter's growing pauses):
  each leg alone in a child process (listing the members through the real EntraDirectory; the
  usage export waited for, downloaded and summed through the real NexthinkUsage) gives the floor,
  the larger of the two; then `plan` with both, which reads them side by side. Goal <= 1.1 x floor.

The usage export has 1,000,000 rows: two rows (summed) for 95% of the members, the rest for
people outside the group (filtered out while streaming), so 5% of the members are UNKNOWN_USAGE.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bench.common import REPO_ROOT, figure, header
from tests.fakes.graph import FakeGraph, FakeGroup, FakeUser
from tests.fakes.nexthink import FakeNexthink

USAGE_HEADERS = ["user.upn", "focus_time", "last_event"]
# Each row's newest event (the data's own clock): an hour ago, so the export is fresh.
LAST_EVENT = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
NEXTHINK_QUERY = "#bench_usage"
MEMBERS_PATH = "/groups/*/members/microsoft.graph.user"


def member_upn(n: int) -> str:
    return f"member{n:06d}@contoso.test"


def usage_row(members: int, rows: int, n: int) -> tuple[str, str, str]:
    """Row n of the export; the same for the CSV file and the Nexthink fake."""
    observed = members * 95 // 100
    if n < 2 * observed:
        member = n // 2
        # a third of the members used it less than the 5 minute threshold in total
        minutes = 1.0 if member % 3 == 0 else 30.0 + (member % 500)
        return member_upn(member), f"{minutes:g}", LAST_EVENT
    return f"outsider{n:07d}@contoso.test", f"{(n * 7919) % 600}", LAST_EVENT


def usage_rows(members: int, rows: int) -> Iterator[tuple[str, str, str]]:
    return (usage_row(members, rows, n) for n in range(rows))


def seed_graph(graph: FakeGraph, members: int) -> tuple[str, float]:
    """The group and its users straight into the fake's tables (100,000 add_user calls would
    take as long, but this is what the seeding costs, measured)."""
    started = time.perf_counter()
    group = FakeGroup(
        id="bench-group-0000-0000-000000000000",
        display_name="Bench licensing group",
        group_types=[],
        membership_rule=None,
        on_premises_sync_enabled=None,
        security_enabled=True,
        licences=[],
    )
    for n in range(members):
        user_id = f"00000000-0000-4000-8000-{n:012d}"
        graph.users[user_id] = FakeUser(user_id, member_upn(n), member_upn(n), f"Member {n}")
        group.members[user_id] = None
    graph.groups[group.id] = group
    return group.id, time.perf_counter() - started


@dataclass(frozen=True)
class Measured:
    variant: str
    seconds: float
    peak_rss_mb: float
    exit_code: int
    decisions: Counter[str]
    member_pages: int | None


def plan_in_child(
    variant: str,
    policy_name: str,
    policies: Path,
    env: dict[str, str],
    workdir: Path,
    graph: FakeGraph | None,
) -> Measured:
    if graph is not None:
        graph.clear_log()
    output = workdir / f"plan-{policy_name}.csv"
    started = time.perf_counter()
    with output.open("wb") as out:
        child = subprocess.Popen(
            [
                *(sys.executable, "-m", "reclaim", "plan"),
                *("--policies", str(policies), "--policy", policy_name, "--format", "csv"),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        errors = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:  # 1 is a halted plan: no figure of a halted plan means anything
        raise SystemExit(f"plan {variant} failed or halted ({child.returncode}):\n{errors}")
    with output.open(newline="") as lines:
        decisions = Counter(row["decision"] for row in csv.DictReader(lines))
    pages = graph.count("GET", MEMBERS_PATH) if graph is not None else None
    return Measured(variant, seconds, usage.ru_maxrss / 1024, child.returncode, decisions, pages)


LEG_SCRIPT = """
import sys, time
from pathlib import Path
from reclaim.domain.selection import tally_usage
from reclaim.policy_file import load_policies
from reclaim.settings import Settings
from reclaim.wiring import Wiring

leg, policies, name = sys.argv[1:4]
(policy,) = [p for p in load_policies(Path(policies)) if p.name == name]
wiring = Wiring(Settings.from_env(), Path(policies).parent)
started = time.perf_counter()
if leg == "members":
    count = sum(1 for _ in wiring.directory(policy).members(policy.directory.group))
else:
    from datetime import UTC, datetime
    count = tally_usage(wiring.usage_source(policy).usage(policy, datetime.now(UTC)).rows).rows_read
print(f"{count} {time.perf_counter() - started:.3f}")
"""


def leg_in_child(leg: str, policies: Path, policy_name: str, env: dict[str, str]) -> float:
    """Seconds one leg of the read takes alone, in a fresh process (as plan would start)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LEG_SCRIPT, leg, str(policies), policy_name],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{leg} leg failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - started


def policy(name: str, directory: dict[str, str], usage: dict[str, str], members: int) -> dict:
    return {
        "name": name,
        "application": "Bench App",
        "directory": directory,
        "usage": {
            "user_column": "user.upn",
            "usage_column": "focus_time",
            "unit": "minutes",
            "match_on": "upn",
            "threshold": "5m",
            **usage,
        },
        "limits": {"max_removals_per_run": members, "max_percent_of_group": 100},
        "licence": {"monthly_cost": 10.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    members, rows = args.members, args.rows
    header(f"selection at scale: {members:,} members, {rows:,} usage rows")

    with (
        tempfile.TemporaryDirectory(prefix="reclaim-bench-") as folder,
        FakeGraph() as graph,
        FakeNexthink() as nexthink,
    ):
        workdir = Path(folder)
        group, seed_seconds = seed_graph(graph, members)

        started = time.perf_counter()
        usage_csv = workdir / "usage.csv"
        with usage_csv.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(USAGE_HEADERS)
            writer.writerows(usage_rows(members, rows))
        members_csv = workdir / "members.csv"
        with members_csv.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["group", "object_id", "upn", "mail"])
            writer.writerows(
                ("bench", f"id{n}", member_upn(n), member_upn(n)) for n in range(members)
            )
        csv_seconds = time.perf_counter() - started
        started = time.perf_counter()
        nexthink.add_generated_query(
            NEXTHINK_QUERY,
            USAGE_HEADERS,
            rows,
            lambda n: usage_row(members, rows, n),
            parameters=["application"],  # what README's usage query declares
        )
        nexthink.export_polls_needed = 0  # measure reclaim, not the export's queueing in Nexthink
        gzip_seconds = time.perf_counter() - started

        policies = workdir / "policies.yaml"
        csv_usage = {"source": "csv", "file": str(usage_csv)}
        entra = {"kind": "entra", "group": group}
        policies.write_text(
            yaml.safe_dump(
                {
                    "policies": [
                        policy("graph-csv", entra, csv_usage, members),
                        policy(
                            "graph-nexthink",
                            entra,
                            {"source": "nexthink", "query_id": NEXTHINK_QUERY},
                            members,
                        ),
                        policy(
                            "csv-csv",
                            {"kind": "csv", "group": "bench", "file": str(members_csv)},
                            csv_usage,
                            members,
                        ),
                    ]
                }
            )
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")},
            **graph.settings_env(),
            "RECLAIM_STATE_DB": str(workdir / "state.sqlite3"),
            "RECLAIM_NEXTHINK_BASE_URL": nexthink.url,
            "RECLAIM_NEXTHINK_TOKEN_URL": nexthink.token_url,
            "RECLAIM_NEXTHINK_CLIENT_ID": nexthink.client_id,
            "RECLAIM_NEXTHINK_CLIENT_SECRET_NAME": "nexthink-client-secret",
            "RECLAIM_SECRET_NEXTHINK_CLIENT_SECRET": nexthink.client_secret,
        }
        print(
            f"data: fake Graph seeded in {seed_seconds:.1f} s; usage CSV "
            f"({usage_csv.stat().st_size / 1e6:.0f} MB) and members CSV written in "
            f"{csv_seconds:.1f} s; Nexthink gzip export written in {gzip_seconds:.1f} s"
        )
        results = [
            plan_in_child(name, name, policies, env, workdir, graph if "graph" in name else None)
            for name in ("graph-csv", "graph-nexthink", "csv-csv")
        ]
        graph.latency = (0.02, 0.05)
        slow = plan_in_child(
            "graph-csv, 20-50 ms per answer", "graph-csv", policies, env, workdir, graph
        )
        nexthink.export_polls_needed = 3
        members_leg = leg_in_child("members", policies, "graph-nexthink", env)
        export_leg = leg_in_child("export", policies, "graph-nexthink", env)
        overlapped = plan_in_child(
            "graph-nexthink, 20-50 ms per answer, export wait on",
            "graph-nexthink",
            policies,
            env,
            workdir,
            graph,
        )

    expected_pages = math.ceil(members / 999)
    for result in results:
        print(f"{result.variant}:")
        figure("wall time of plan", f"{result.seconds:.1f} s", "< 10 s")
        figure("peak RSS of plan", f"{result.peak_rss_mb:.0f} MB", "< 500 MB")
        figure("decisions", f"{sum(result.decisions.values()):,}", f"{members:,}")
        figure("  by kind", ", ".join(f"{k} {v}" for k, v in sorted(result.decisions.items())))
        if result.member_pages is not None:
            figure("GET member pages", f"{result.member_pages}", f"ceil(N/999) = {expected_pages}")
    print(f"{slow.variant}:")
    figure("wall time of plan", f"{slow.seconds:.1f} s")
    figure("peak RSS of plan", f"{slow.peak_rss_mb:.0f} MB")
    figure("GET member pages", f"{slow.member_pages}")
    floor = max(members_leg, export_leg)
    print(f"{overlapped.variant}:")
    figure("member listing alone", f"{members_leg:.1f} s")
    figure("usage export alone (wait, download, sum)", f"{export_leg:.1f} s")
    figure("floor: the larger of the two", f"{floor:.1f} s")
    figure("the two one after the other", f"{members_leg + export_leg:.1f} s")
    figure("wall time of plan", f"{overlapped.seconds:.1f} s", "<= 1.1 x floor")
    figure("ratio to the floor", f"{overlapped.seconds / floor:.2f}", "<= 1.10")
    figure("decisions", f"{sum(overlapped.decisions.values()):,}", f"{members:,}")
    slowest = max(results, key=lambda r: r.seconds)
    largest = max(results, key=lambda r: r.peak_rss_mb)
    met = (
        slowest.seconds < 10
        and largest.peak_rss_mb < 500
        and all(sum(r.decisions.values()) == members for r in results)
        and all(r.member_pages in (None, expected_pages) for r in results)
        and overlapped.seconds <= 1.1 * floor
    )
    print(
        f"SUMMARY selection_scale: {members:,} members x {rows:,} rows: slowest {slowest.variant} "
        f"{slowest.seconds:.1f} s (goal < 10 s), peak RSS {largest.peak_rss_mb:.0f} MB "
        f"({largest.variant}; goal < 500 MB), member listing "
        f"{results[0].member_pages} requests (ceil(N/999) = {expected_pages}); at latency with "
        f"the export wait, plan {overlapped.seconds:.1f} s = {overlapped.seconds / floor:.2f} x "
        f"the floor {floor:.1f} s (goal <= 1.1): "
        f"{'goals MET' if met else 'goals NOT MET'}"
    )


if __name__ == "__main__":
    main()

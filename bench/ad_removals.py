"""AD removals against a real Samba DC: reclaim's `run` next to raw ldap3 in the same run.

    python -m bench.ad_removals [--users 1000]

The domain controller is the tests' Samba (tests/support/samba.py, machine-wide lock; LDAPS with
its own CA). N users are created in one group, then:

- raw ldap3, the floor: one LDAPS connection, and for each user the least an honest script does:
  a search for the sAMAccountName and a MODIFY_DELETE of its DN from the group's `member`; run
  before and after reclaim (members put back each time), and the mean time is the floor;
- reclaim: `python -m reclaim run` of an enforce policy (no asking) in a child process, after the
  members are put back: it lists the group, reads the usage (zero for everyone), records the run,
  queues N removals in the local SQLite queue and works them (lookup + modify each, the request's
  claim and outcome, the ledger). `plan` of the same policy is timed too, so the removal phase is
  `run` minus `plan` (both child processes; the interpreter's start cancels out).

The goal is removals per second >= 0.7 of raw ldap3's.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from ldap3 import MODIFY_DELETE, NONE, SUBTREE, Connection, Server, Tls

from bench.common import REPO_ROOT, figure, header
from tests.support.samba import SambaDC, running_dc

GROUP = "bench-licensed"


def raw_ldap3(dc: SambaDC, names: list[str], group_dn: str) -> float:
    """Seconds for lookup + delete of every user over one connection (the floor)."""
    import ssl

    tls = Tls(ca_certs_file=dc.ca_file, validate=ssl.CERT_REQUIRED, valid_names=[dc.server_name])
    server = Server(dc.url, tls=tls, get_info=NONE)
    conn = Connection(server, dc.bind_dn, dc.admin_password, auto_bind=True)
    started = time.perf_counter()
    for name in names:
        conn.search(dc.base_dn, f"(sAMAccountName={name})", SUBTREE, attributes=["1.1"])
        dn = next(e["dn"] for e in conn.response if e["type"] == "searchResEntry")
        conn.modify(group_dn, {"member": [(MODIFY_DELETE, [dn])]})
        if conn.result["result"] != 0:
            raise SystemExit(f"raw delete of {name} failed: {conn.result}")
    seconds = time.perf_counter() - started
    conn.unbind()
    return seconds


def cli(args: list[str], env: dict[str, str], profile: str = "") -> tuple[float, str]:
    started = time.perf_counter()
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    done = subprocess.run(
        [sys.executable, *profiler, "-m", "reclaim", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"reclaim {args[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--profile", default="", help="write a cProfile of the run to this file")
    args = parser.parse_args()
    users = args.users
    header(f"AD removals: {users:,} users against Samba, reclaim vs raw ldap3")

    with running_dc() as dc, tempfile.TemporaryDirectory(prefix="reclaim-bench-") as folder:
        workdir = Path(folder)
        names = [f"bench{n:05d}" for n in range(users)]
        started = time.perf_counter()
        dns = dc.create_users(names)
        group_dn = dc.create_group(GROUP)
        dc.add_members(group_dn, dns)
        seeded = time.perf_counter() - started
        print(f"data: {users:,} users and the group created in {seeded:.1f} s")

        raw_before = raw_ldap3(dc, names, group_dn)
        dc.add_members(group_dn, dns)

        usage = workdir / "usage.csv"
        with usage.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["sam", "minutes", "last_event"])
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
            writer.writerows((name, 0, stamp) for name in names)
        policies = workdir / "policies.yaml"
        policies.write_text(
            yaml.safe_dump(
                {
                    "policies": [
                        {
                            "name": "bench-ad",
                            "application": "Bench App",
                            "mode": "enforce",
                            "ask_permission": False,
                            "directory": {"kind": "ad", "group": GROUP},
                            "usage": {
                                "source": "csv",
                                "file": str(usage),
                                "user_column": "sam",
                                "usage_column": "minutes",
                                "timestamp_column": "last_event",
                                "match_on": "sam_account_name",
                                "threshold": "5m",
                            },
                            "limits": {"max_removals_per_run": users, "max_percent_of_group": 100},
                            "licence": {"monthly_cost": 10.0},
                        }
                    ]
                }
            )
        )
        state = workdir / "state.sqlite3"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")},
            **dc.settings_env(),
            "RECLAIM_SECRET_LDAP_BIND_PASSWORD": dc.admin_password,
            "RECLAIM_STATE_DB": str(state),
        }
        plan_seconds, _ = cli(["plan", "--policies", str(policies), "--policy", "bench-ad"], env)
        run_seconds, output = cli(
            ["run", "--policies", str(policies), "--policy", "bench-ad"], env, args.profile
        )
        removed = sum(1 for line in output.splitlines() if line.endswith(": removed"))
        still = sum(1 for dn in dns if dc.is_member(group_dn, dn))
        dc.add_members(group_dn, dns)
        raw_after = raw_ldap3(dc, names, group_dn)  # the DC's state and the load change: twice
        with sqlite3.connect(state) as db:
            requests = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    phase = max(run_seconds - plan_seconds, 1e-9)
    raw_seconds = (raw_before + raw_after) / 2
    raw_rate, reclaim_rate = users / raw_seconds, removed / phase
    print("raw ldap3 (search + modify per user, one connection), before and after reclaim:")
    figure("seconds", f"{raw_before:.1f} s, {raw_after:.1f} s")
    figure("removals per second (mean time)", f"{raw_rate:.1f}")
    print("reclaim run (enforce, no asking):")
    figure("plan (list, usage, select)", f"{plan_seconds:.1f} s")
    figure("run (the same, then record, queue, remove)", f"{run_seconds:.1f} s")
    figure("removed / still members afterwards", f"{removed} / {still}", f"{users} / 0")
    figure("requests recorded", f"{requests}")
    figure("removals per second (run - plan)", f"{reclaim_rate:.1f}")
    figure("ratio to raw ldap3", f"{reclaim_rate / raw_rate:.2f}", ">= 0.70")
    met = removed == users and still == 0 and reclaim_rate >= 0.7 * raw_rate
    print(
        f"SUMMARY ad_removals: {users:,} users: raw ldap3 {raw_rate:.1f}/s, reclaim "
        f"{reclaim_rate:.1f}/s = {reclaim_rate / raw_rate:.2f} x raw (goal >= 0.7); removed "
        f"{removed}, left {still}: {'goals MET' if met else 'goals NOT MET'}"
    )


if __name__ == "__main__":
    main()

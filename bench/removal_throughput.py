"""Removal throughput against Graph's write throttling, side by side with a fair script.

    python -m bench.removal_throughput [--removals 1000] [--slow-removals 300] [--scale 10]

Graph allows 3,000 writes per 150 s per app and tenant: a token bucket of capacity 3,000 that
refills at 20 writes/s. The fake (tests/fakes/graph.py, real HTTPS, real msal and requests on the
client side) models it with capacity 3000/scale and the real refill of 20/s, so the 150 s window
becomes 150/scale s and a run takes about a minute while the sustained rate it measures is
Graph's own. Two latencies, each a fresh fake: every answer in 20-50 ms (--latency, token
endpoint included), then writes in 0.3-0.5 s (--write-latency, Graph's real write latency).

reclaim: a real enforce run (run_policy lists the group through Graph and enqueues one message per
candidate), then `batchSize` (host.json) workers run usecases.perform_removal with a real Context:
SqliteStore, the real GraphDirectory built by reclaim.wiring from settings (secrets from the
environment; the write budget's burst set to the scaled capacity). Deferred messages come back
after their delay, as from the Storage queue.

The fair script: what a competent admin writes: one msal token, one requests.Session (one TLS
connection), sequential DELETE /groups/{g}/members/{id}/$ref, sleeping Retry-After on a 429. It
removes the same number of members from its own group in the same fake, with a full bucket.

Figures: achieved rate as a fraction of the limit (overall: removals / (capacity + refill x run
time); steady state: writes after the bucket first ran dry / refill x that time), HTTP requests
per removal (the Graph log, without token, group and member reads), 429s, removals lost and done
twice, and reclaim's rate over the script's at each latency. The floor for reclaim is the
bucket's limit (the fraction); the script is the baseline a user compares with.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msal
import requests

from bench.common import figure, header
from bench.harness import DelayQueue, graph_tenant, host_queue_settings, run_workers
from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.wiring import Wiring
from tests.fakes.graph import FakeGraph, LoggedRequest

GRAPH_CAPACITY = 3000  # writes per app and tenant ...
GRAPH_REFILL = 20.0  # ... refilled at 3,000 per 150 s


def is_read(request: LoggedRequest) -> bool:
    """Group and member reads (the run's listing) are not part of a removal's cost."""
    return request.method == "GET" and request.path.startswith("/groups/")


@dataclass(frozen=True)
class ReclaimRun:
    removals: int
    seconds: float  # workers start -> last message settled
    write_seconds: float  # workers start -> last successful DELETE
    fraction: float
    steady_fraction: float
    steady_writes: int
    requests: int  # non-read Graph requests
    requests_before_throttle: int
    removed_before_throttle: int
    seconds_before_throttle: float  # workers start -> the first 429
    throttled: int
    token_requests: int
    deferred: int
    statuses: Counter[str]
    lost: int
    done_twice: int


def run_reclaim(
    graph: FakeGraph, workdir: Path, removals: int, capacity: float, threads: int
) -> ReclaimRun:
    # the write budget mirrors the scaled bucket, as its defaults mirror Graph's 3,000
    tenant = graph_tenant(
        graph, workdir, removals, {"RECLAIM_GRAPH_WRITE_BURST": f"{capacity:.0f}"}
    )
    store = SqliteStore(tenant.settings.state_db)
    queue = DelayQueue()
    ctx = usecases.Context(
        store,
        queue,
        Wiring(tenant.settings, workdir, tenant.secrets),
        {tenant.policy.name: tenant.policy},
    )
    outcome = usecases.run_policy(ctx, tenant.policy, datetime.now(UTC))
    if outcome.halted or outcome.run.enqueued != removals:
        raise SystemExit(f"the run did not enqueue {removals} removals: {outcome.halt}")

    graph.clear_log()
    tokens_before = graph.token_requests
    graph.throttle_writes(capacity, GRAPH_REFILL)  # a full bucket as the workers start
    started = time.monotonic()
    tally = run_workers(ctx, queue, threads)
    seconds = time.monotonic() - started

    log = [r for r in graph.requests if not is_read(r)]
    deletes = [r for r in log if r.method == "DELETE"]
    ok = [r for r in deletes if r.status == 204]
    throttled = [r for r in deletes if r.status == 429]
    last_write = max((r.at for r in ok), default=started)
    write_seconds = last_write - started
    fraction = len(ok) / (capacity + GRAPH_REFILL * write_seconds)
    # Steady state: from the first 429 (the bucket is empty) to the last successful write.
    dry_at = min((r.at for r in throttled), default=last_write)
    steady_writes = sum(1 for r in ok if r.at > dry_at)
    steady_seconds = last_write - dry_at
    # nan: no 429, so no moment at which the bucket is known to be dry (the budget kept it so)
    steady_fraction = (
        steady_writes / (GRAPH_REFILL * steady_seconds) if steady_seconds else float("nan")
    )

    requests_state = {r.id: r.state.value for r in store.requests(tenant.policy.name)}
    lost = sum(1 for s in requests_state.values() if s not in ("REMOVED", "NOT_MEMBER")) + sum(
        1 for u in tenant.user_ids if graph.is_member(tenant.group, u)
    )
    ledger = [
        e
        for e in store.ledger(policy=tenant.policy.name)
        if e.outcome.value in ("REMOVED", "NOT_MEMBER")
    ]
    per_user = Counter(e.user.object_id for e in ledger)
    done_twice = (
        sum(1 for r in deletes if r.status == 404)  # a DELETE that found the user gone
        + sum(n - 1 for n in per_user.values() if n > 1)
        + (len(ledger) - len({e.id for e in ledger}))
    )
    return ReclaimRun(
        removals=len(ok),
        seconds=seconds,
        write_seconds=write_seconds,
        fraction=fraction,
        steady_fraction=steady_fraction,
        steady_writes=steady_writes,
        requests=len(log),
        requests_before_throttle=sum(1 for r in log if r.at < dry_at),
        removed_before_throttle=sum(1 for r in ok if r.at < dry_at),
        seconds_before_throttle=dry_at - started,
        throttled=len(throttled),
        token_requests=graph.token_requests - tokens_before,
        deferred=tally.statuses.get(usecases.RemovalStatus.DEFERRED.value, 0),
        statuses=tally.statuses,
        lost=lost,
        done_twice=done_twice,
    )


@dataclass(frozen=True)
class ScriptRun:
    removals: int
    seconds: float
    http_requests: int  # DELETEs sent, retries included (the one token request aside)
    throttled: int
    failures: int


def run_fair_script(graph: FakeGraph, count: int) -> ScriptRun:
    """One token, one session, one DELETE after another; a 429 waits its Retry-After."""
    group = graph.add_group("Script licensing group")
    users = [graph.add_user(f"script{n:05d}@contoso.test") for n in range(count)]
    graph.add_member(group, *users)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(graph.ca_file)
    started = time.monotonic()
    app = msal.ConfidentialClientApplication(
        graph.client_id,
        client_credential=graph.client_secret,
        authority=f"{graph.authority_host}/{graph.tenant_id}",
        instance_discovery=False,
        http_client=session,
    )
    token = app.acquire_token_for_client(scopes=[f"{graph.base_url}/.default"])
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    sent = throttled = failures = 0
    for user in users:
        while True:
            reply = session.delete(
                f"{graph.url}/groups/{group}/members/{user}/$ref", headers=headers
            )
            sent += 1
            if reply.status_code != 429:
                break
            throttled += 1
            time.sleep(float(reply.headers.get("Retry-After", "1")))
        failures += reply.status_code != 204
    seconds = time.monotonic() - started
    session.close()
    return ScriptRun(count, seconds, sent, throttled, failures)


@dataclass(frozen=True)
class SideBySide:
    label: str
    reclaim: ReclaimRun
    script: ScriptRun

    @property
    def reclaim_rate(self) -> float:
        return self.reclaim.removals / self.reclaim.write_seconds

    @property
    def script_rate(self) -> float:
        return (self.script.removals - self.script.failures) / self.script.seconds

    @property
    def ratio(self) -> float:
        return self.reclaim_rate / self.script_rate


def side_by_side(
    label: str,
    workdir: Path,
    removals: int,
    capacity: float,
    threads: int,
    latency: tuple[float, float],
    write_latency: tuple[float, float] | None,
) -> SideBySide:
    """reclaim, then the fair script, in one fake with these latencies; each with a full bucket."""
    workdir.mkdir()
    with FakeGraph() as graph:
        graph.latency = latency
        graph.write_latency = write_latency
        run = run_reclaim(graph, workdir, removals, capacity, threads)
        graph.throttle_writes(capacity, GRAPH_REFILL)
        script = run_fair_script(graph, removals)
    return SideBySide(label, run, script)


def report(pair: SideBySide) -> None:
    run, script = pair.reclaim, pair.script
    print(f"{pair.label}:")
    print("  reclaim (queue + workers):")
    figure("removals done", f"{run.removals}")
    figure("time to the last write", f"{run.write_seconds:.1f} s")
    figure("achieved rate", f"{pair.reclaim_rate:.1f} /s")
    figure(
        "unthrottled rate (full bucket, before a 429)",
        f"{run.removed_before_throttle / max(run.seconds_before_throttle, 1e-9):.1f} /s",
    )
    figure("fraction of the limit, whole run", f"{run.fraction:.3f}", ">= 0.90")
    figure("fraction of the limit, steady state", f"{run.steady_fraction:.3f}", ">= 0.90")
    figure("  (writes after the bucket ran dry)", f"{run.steady_writes}")
    figure("HTTP requests per removal, whole run", f"{run.requests / run.removals:.3f}", "1.0")
    figure("429s received", f"{run.throttled}")
    figure("messages deferred back to the queue", f"{run.deferred}")
    figure("token requests during the run", f"{run.token_requests}")
    figure("worker results", ", ".join(f"{k} {v}" for k, v in sorted(run.statuses.items())))
    figure("removals lost", f"{run.lost}", "0")
    figure("removals done twice", f"{run.done_twice}", "0")
    print("  fair script (one token, one session, sequential DELETE, honours Retry-After):")
    figure("removals done", f"{script.removals - script.failures} of {script.removals}")
    figure("time", f"{script.seconds:.1f} s")
    figure("achieved rate", f"{pair.script_rate:.1f} /s")
    figure("HTTP requests per removal", f"{script.http_requests / script.removals:.3f}")
    figure("429s received", f"{script.throttled}")
    figure("reclaim / fair script rate", f"{pair.ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--removals", type=int, default=1000, help="at the bench's latency")
    parser.add_argument("--slow-removals", type=int, default=300, help="at Graph's write latency")
    parser.add_argument("--scale", type=float, default=10.0, help="capacity = 3000 / scale")
    parser.add_argument(
        "--latency", type=float, nargs=2, default=(0.02, 0.05), metavar=("LO", "HI")
    )
    parser.add_argument(
        "--write-latency", type=float, nargs=2, default=(0.3, 0.5), metavar=("LO", "HI")
    )
    parser.add_argument("--threads", type=int, help="default: batchSize from host.json")
    args = parser.parse_args()
    logging.getLogger("reclaim").setLevel(logging.ERROR)  # one warning per 429 otherwise

    host = host_queue_settings()
    threads = args.threads or host.batch_size
    capacity = GRAPH_CAPACITY / args.scale
    fast = (args.latency[0], args.latency[1])
    slow = (args.write_latency[0], args.write_latency[1])
    header("removal throughput under Graph write throttling, against a fair script")
    print(
        f"throttle: capacity {capacity:.0f} writes, refill {GRAPH_REFILL:.0f}/s (Graph's 3,000 per "
        f"150 s with the window scaled 1/{args.scale:g})"
    )
    print(f"workers: {threads} threads (batchSize from {host.source})")

    with tempfile.TemporaryDirectory(prefix="reclaim-bench-") as folder:
        pairs = [
            side_by_side(
                f"every answer {fast[0] * 1000:.0f}-{fast[1] * 1000:.0f} ms, {args.removals} "
                "removals",
                Path(folder) / "fast",
                args.removals,
                capacity,
                threads,
                fast,
                None,
            ),
            side_by_side(
                f"writes {slow[0]:g}-{slow[1]:g} s (other answers {fast[0] * 1000:.0f}-"
                f"{fast[1] * 1000:.0f} ms), {args.slow_removals} removals",
                Path(folder) / "slow",
                args.slow_removals,
                capacity,
                threads,
                fast,
                slow,
            ),
        ]
    for pair in pairs:
        report(pair)
    run = pairs[0].reclaim
    steady = run.fraction if math.isnan(run.steady_fraction) else run.steady_fraction
    verdict = "MET" if min(run.fraction, steady) >= 0.9 else "NOT MET"
    print(
        f"SUMMARY removal_throughput: {pairs[0].reclaim_rate:.1f} removals/s = {run.fraction:.2f} "
        f"of the write limit (steady {run.steady_fraction:.2f}; goal 0.90 {verdict}), "
        f"{run.requests / run.removals:.2f} requests/removal, {run.throttled} 429s, "
        f"{run.lost} lost, {run.done_twice} twice; against a fair script: "
        f"{pairs[0].ratio:.2f}x at {fast[0] * 1000:.0f}-{fast[1] * 1000:.0f} ms, "
        f"{pairs[1].ratio:.2f}x with {slow[0]:g}-{slow[1]:g} s writes"
    )


if __name__ == "__main__":
    main()

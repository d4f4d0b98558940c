"""Removal throughput against Graph's write throttling, and against a simple script.

    python -m bench.removal_throughput [--removals 1000] [--scale 10] [--script-removals 100]

Graph allows 3,000 writes per 150 s per app and tenant: a token bucket of capacity 3,000 that
refills at 20 writes/s. The fake (tests/fakes/graph.py, real HTTPS, real msal and requests on the
client side) models it with capacity 3000/scale and the real refill of 20/s, so the 150 s window
becomes 150/scale s and a run of --removals takes under a minute while the sustained rate it
measures is Graph's own. Every answer takes 20-50 ms (--latency), token endpoint included.

reclaim: a real enforce run (run_policy lists the group through Graph and enqueues one message per
candidate), then `batchSize` (host.json) workers run usecases.perform_removal with a real Context:
SqliteStore, the real GraphDirectory built by reclaim.wiring from settings (secrets from the
environment). Deferred messages come back after their delay, as from the Storage queue.

The simple script: one removal at a time, each with the secret read, a new msal app (OpenID
discovery + token request) and a DELETE on a new connection; on its own group, after reclaim's
run, with a full bucket.

Figures: achieved rate as a fraction of the limit (overall: removals / (capacity + refill x run
time); steady state: writes after the bucket first ran dry / refill x that time), HTTP requests
per removal (the Graph log, without token, group and member reads), 429s, removals lost and done
twice, and the ratio to the script.
"""

from __future__ import annotations

import argparse
import logging
import os
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
from reclaim.adapters.environment import variable_for
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
    tenant = graph_tenant(graph, workdir, removals)
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
    steady_fraction = steady_writes / (GRAPH_REFILL * steady_seconds) if steady_seconds else 1.0

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
    http_requests: int
    failures: int


def run_simple_script(graph: FakeGraph, count: int) -> ScriptRun:
    """What a script does: for each user, read the secret, build an msal app, get a token, DELETE."""
    group = graph.add_group("Script licensing group")
    users = [graph.add_user(f"script{n:05d}@contoso.test") for n in range(count)]
    graph.add_member(group, *users)
    os.environ[variable_for("graph-client-secret")] = graph.client_secret
    sent = 0
    failures = 0

    def counted(response: requests.Response, *args: object, **kwargs: object) -> None:
        nonlocal sent
        sent += 1

    def new_session() -> requests.Session:  # requests.delete(...) opens a new connection too
        session = requests.Session()
        session.trust_env = False
        session.verify = str(graph.ca_file)
        session.hooks["response"].append(counted)
        return session

    started = time.monotonic()
    for user in users:
        secret = os.environ[variable_for("graph-client-secret")]
        with new_session() as token_session:
            app = msal.ConfidentialClientApplication(
                graph.client_id,
                client_credential=secret,
                authority=f"{graph.authority_host}/{graph.tenant_id}",
                instance_discovery=False,
                http_client=token_session,
            )
            token = app.acquire_token_for_client(scopes=[f"{graph.base_url}/.default"])
        with new_session() as session:
            reply = session.delete(
                f"{graph.url}/groups/{group}/members/{user}/$ref",
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
        failures += reply.status_code != 204
    return ScriptRun(count, time.monotonic() - started, sent, failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--removals", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=10.0, help="capacity = 3000 / scale")
    parser.add_argument("--script-removals", type=int, default=100)
    parser.add_argument(
        "--latency", type=float, nargs=2, default=(0.02, 0.05), metavar=("LO", "HI")
    )
    parser.add_argument("--threads", type=int, help="default: batchSize from host.json")
    args = parser.parse_args()
    logging.getLogger("reclaim").setLevel(logging.ERROR)  # one warning per 429 otherwise

    host = host_queue_settings()
    threads = args.threads or host.batch_size
    capacity = GRAPH_CAPACITY / args.scale
    header("removal throughput under Graph write throttling")
    print(
        f"throttle: capacity {capacity:.0f} writes, refill {GRAPH_REFILL:.0f}/s (Graph's 3,000 per "
        f"150 s with the window scaled 1/{args.scale:g}); latency {args.latency[0] * 1000:.0f}-"
        f"{args.latency[1] * 1000:.0f} ms per request"
    )
    print(f"workers: {threads} threads (batchSize from {host.source}); {args.removals} removals")

    with tempfile.TemporaryDirectory(prefix="reclaim-bench-") as folder, FakeGraph() as graph:
        graph.latency = tuple(args.latency)  # type: ignore[assignment]
        run = run_reclaim(graph, Path(folder), args.removals, capacity, threads)
        graph.throttle_writes(capacity, GRAPH_REFILL)
        script = run_simple_script(graph, args.script_removals)

    rate = run.removals / run.write_seconds
    script_rate = script.removals / script.seconds
    print("reclaim (queue + workers):")
    figure("removals done", f"{run.removals}")
    figure("time to the last write", f"{run.write_seconds:.1f} s")
    figure("achieved rate", f"{rate:.1f} /s")
    figure(
        "unthrottled rate (full bucket, before a 429)",
        f"{run.removed_before_throttle / max(run.seconds_before_throttle, 1e-9):.1f} /s",
    )
    figure("fraction of the limit, whole run", f"{run.fraction:.3f}", ">= 0.90")
    figure("fraction of the limit, steady state", f"{run.steady_fraction:.3f}", ">= 0.90")
    figure("  (writes after the bucket ran dry)", f"{run.steady_writes}")
    figure(
        "HTTP requests per removal, before throttling",
        f"{run.requests_before_throttle / max(run.removed_before_throttle, 1):.3f}",
        "1.0",
    )
    figure("HTTP requests per removal, whole run", f"{run.requests / run.removals:.3f}", "1.0")
    figure("429s received", f"{run.throttled}")
    figure("messages deferred back to the queue", f"{run.deferred}")
    figure("token requests during the run", f"{run.token_requests}")
    figure("worker results", ", ".join(f"{k} {v}" for k, v in sorted(run.statuses.items())))
    figure("removals lost", f"{run.lost}", "0")
    figure("removals done twice", f"{run.done_twice}", "0")
    print("simple script (sequential; secret, msal app, token and DELETE per removal):")
    figure("removals done", f"{script.removals - script.failures} of {script.removals}")
    figure("achieved rate", f"{script_rate:.1f} /s")
    figure("HTTP requests per removal", f"{script.http_requests / script.removals:.2f}")
    figure("reclaim / script rate", f"{rate / script_rate:.1f}x")
    verdict = "MET" if min(run.fraction, run.steady_fraction) >= 0.9 else "NOT MET"
    print(
        f"SUMMARY removal_throughput: {rate:.1f} removals/s = {run.fraction:.2f} of the write "
        f"limit (steady {run.steady_fraction:.2f}; goal 0.90 {verdict}), "
        f"{run.requests / run.removals:.2f} requests/removal, {run.throttled} 429s, "
        f"{run.lost} lost, {run.done_twice} twice; {rate / script_rate:.1f}x a simple script"
    )


if __name__ == "__main__":
    main()

"""End to end through the local host (reclaim.host.LocalHost): the registered functions, real
Azurite storage, an Entra ID tenant (the HTTPS Graph fake), a real Active Directory (Samba), and
the webhook campaign channel posting asks to an HTTPS receiver.

Two enforcing policies come due on the scheduler's tick and ask their idle members. Answers come
back through the campaign webhook over HTTP: yes, no, and silence. "No" is removed at once through
the queue; after the deadline (an injected clock) the expiry timer queues the silent ones. At the
end the ledger's removals are exactly the change in each directory.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from reclaim import signing
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import LedgerOutcome
from reclaim.host import LocalHost
from reclaim.settings import Settings
from tests.fakes.graph import FakeGraph
from tests.fakes.https import HttpsServer
from tests.support.functions import binding_settings

if TYPE_CHECKING:  # imported by pytest as plugins, so that their asserts are rewritten
    from tests.support.samba import SambaDC

pytestmark = [pytest.mark.azurite, pytest.mark.samba]

INBOUND_SECRET = "e2e-inbound-webhook-secret"
OUTBOUND_SECRET = "e2e-outbound-webhook-secret"
MONDAY = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # the policies run Mondays at 06:00
START = MONDAY - timedelta(minutes=10)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CampaignReceiver:
    """The survey tool: receives the signed asks of the webhook channel (HTTPS)."""

    def __init__(self) -> None:
        self.asks: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    signing.verify(
                        OUTBOUND_SECRET,
                        self.headers.get(signing.TIMESTAMP_HEADER),
                        self.headers.get(signing.SIGNATURE_HEADER),
                        body,
                        datetime.now(UTC),
                        timedelta(minutes=5),
                    )
                except signing.SignatureError:
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.asks.append(json.loads(body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """quiet"""

        self.server = HttpsServer(Handler)

    def ask_for(self, upn: str) -> dict[str, Any]:
        return next(a for a in self.asks if a["user"]["upn"].lower() == upn.lower())


def write_usage(path: Path, minutes: dict[str, float], at: datetime) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["user", "focus_minutes"])
        writer.writerows([upn, f"{used:g}"] for upn, used in minutes.items())
    os.utime(path, (at.timestamp(), at.timestamp()))  # the export's age is its mtime


def policy_yaml(name: str, directory: str, usage_file: str, ask_url: str) -> str:
    return f"""
  - name: {name}
    application: {name.title()}
    mode: enforce
    schedule: "0 0 6 * * 1"
    directory: {directory}
    usage: {{source: csv, file: {usage_file}, match_on: upn, user_column: user,
            usage_column: focus_minutes, threshold: 5m, max_age: 30d}}
    ask_permission: true
    campaign: {{channel: webhook, url: "{ask_url}", respond_within: 7d, on_no_response: reclaim}}
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
    licence: {{monthly_cost: 20.0, currency: EUR}}
"""


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[CampaignReceiver]:
    campaign = CampaignReceiver()
    with campaign.server:
        yield campaign


def answer(host: LocalHost, clock: Clock, payload: Any) -> tuple[int, dict[str, Any]]:
    """POST answers to the campaign webhook over HTTP, signed at the host's time."""
    body = json.dumps(payload).encode()
    timestamp = str(int(clock().timestamp()))
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    response = session.post(
        host.url + "/api/campaign/responses",
        data=body,
        headers={
            "Content-Type": "application/json",
            signing.TIMESTAMP_HEADER: timestamp,
            signing.SIGNATURE_HEADER: signing.sign(INBOUND_SECRET, timestamp, body),
            "x-functions-key": "local-key",
        },
        timeout=30,
    )
    return response.status_code, response.json()


def test_policies_ask_answers_arrive_deadlines_pass_and_the_ledger_matches_the_directories(
    graph: FakeGraph,
    samba_dc: SambaDC,
    receiver: CampaignReceiver,
    storage_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # -- Entra ID: six members; three barely used the app.
    entra_users = {upn: graph.add_user(upn) for upn in
                   [f"{n}@contoso.test" for n in ("ada", "bob", "cyd", "dan", "eve", "fay")]}  # fmt: skip
    entra_group = graph.add_group("Salesforce users")
    graph.add_member(entra_group, *entra_users.values())
    # -- Active Directory: six members of a licensing group; three barely used the app.
    suffix = os.urandom(3).hex()
    ad_names = [f"{n}{suffix}" for n in ("ann", "ben", "cat", "don", "ema", "fin")]
    ad_dns = dict(zip(ad_names, samba_dc.create_users(ad_names), strict=True))
    ad_group = samba_dc.create_group(f"visio-{suffix}")
    samba_dc.add_members(ad_group, ad_dns.values())
    ad_upn = {name: f"{name}@{samba_dc.realm.lower()}" for name in ad_names}

    idle_entra, idle_ad = list(entra_users)[:3], [ad_upn[n] for n in ad_names[:3]]
    write_usage(
        tmp_path / "salesforce-usage.csv",
        {upn: (1 if upn in idle_entra else 600) for upn in entra_users},
        START,
    )
    write_usage(
        tmp_path / "visio-usage.csv",
        {upn: (0 if upn in idle_ad else 300) for upn in ad_upn.values()},
        START,
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        "policies:"
        + policy_yaml("salesforce", f"{{kind: entra, group: {entra_group}}}",
                      "salesforce-usage.csv", receiver.server.url + "/ask")
        + policy_yaml("visio", f'{{kind: ad, group: "{ad_group}"}}', "visio-usage.csv",
                      receiver.server.url + "/ask")
    )  # fmt: skip

    env = {
        **binding_settings(),
        **storage_env,
        **graph.settings_env(),
        **samba_dc.settings_env(),
        "RECLAIM_POLICIES_FILE": str(policies),
        "RECLAIM_SECRET_LDAP_BIND_PASSWORD": samba_dc.admin_password,
        "RECLAIM_WEBHOOK_SECRET_NAME": "inbound-webhook",
        "RECLAIM_SECRET_INBOUND_WEBHOOK": INBOUND_SECRET,
        "RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME": "outbound-webhook",
        "RECLAIM_SECRET_OUTBOUND_WEBHOOK": OUTBOUND_SECRET,
        "RECLAIM_LOCAL_FUNCTION_KEY": "local-key",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # secrets come from the environment (SECRETS_SOURCE=env)
    entra_before = {u for u, i in entra_users.items() if graph.is_member(entra_group, i)}
    ad_before = {ad_upn[n] for n, dn in ad_dns.items() if samba_dc.is_member(ad_group, dn)}

    clock = Clock(START)
    host = LocalHost(Settings.from_env(env), port=0, clock=clock)
    host.start()
    try:
        store = host.app.ctx.store
        # 05:55: the scheduler sees the policies for the first time (no run); 06:00: due.
        clock.now = MONDAY - timedelta(minutes=5)
        assert host.tick() == ["scheduler"]
        assert store.runs() == []
        clock.now = MONDAY + timedelta(seconds=5)
        assert "scheduler" in host.tick()
        runs = {r.policy: r for r in store.runs()}
        assert {p: (r.status.value, r.asked) for p, r in runs.items()} == {
            "salesforce": ("completed", 3),
            "visio": ("completed", 3),
        }
        assert sorted(a["user"]["upn"].lower() for a in receiver.asks) == sorted(
            idle_entra + idle_ad
        )

        # Answers by webhook: the first idle user of each says yes, the second no, the third
        # stays silent. One by request id, one by policy and user, a list for AD.
        clock.now += timedelta(hours=2)
        assert answer(host, clock, {"request_id": receiver.ask_for(idle_entra[0])["request_id"],
                                    "answer": "yes"})[1]["kept"] == 1  # fmt: skip
        assert answer(host, clock, {"policy": "salesforce", "user": idle_entra[1],
                                    "answer": "No"})[1]["queued"] == 1  # fmt: skip
        status, counts = answer(host, clock, [
            {"request_id": receiver.ask_for(idle_ad[0])["request_id"], "answer": "yes"},
            {"request_id": receiver.ask_for(idle_ad[1])["request_id"], "answer": "no"},
        ])  # fmt: skip
        assert (status, counts["kept"], counts["queued"]) == (202, 1, 1)

        # The "no" removals are released by the next expiry tick, which re-decides them first.
        clock.now += timedelta(minutes=15)
        assert "expiry" in host.tick()
        removed_now = host.drain()
        assert (removed_now.processed, removed_now.poisoned) == (2, 0)
        assert not graph.is_member(entra_group, entra_users[idle_entra[1]])
        assert not samba_dc.is_member(ad_group, ad_dns[ad_names[1]])

        # Eight days later the deadline has passed: the expiry timer queues the silent ones.
        clock.now = MONDAY + timedelta(days=8)
        # The tick re-reads the usage before releasing: today's exports, nobody's habits changed.
        write_usage(
            tmp_path / "salesforce-usage.csv",
            {upn: (1 if upn in idle_entra else 600) for upn in entra_users},
            clock.now,
        )
        write_usage(
            tmp_path / "visio-usage.csv",
            {upn: (0 if upn in idle_ad else 300) for upn in ad_upn.values()},
            clock.now,
        )
        assert "expiry" in host.tick()
        assert host.drain().processed == 2
        states = {(r.policy, r.user.upn.lower()): r.state for r in store.requests()}
        assert states == {
            ("salesforce", idle_entra[0]): RequestState.KEPT,
            ("salesforce", idle_entra[1]): RequestState.REMOVED,
            ("salesforce", idle_entra[2]): RequestState.REMOVED,
            ("visio", idle_ad[0]): RequestState.KEPT,
            ("visio", idle_ad[1]): RequestState.REMOVED,
            ("visio", idle_ad[2]): RequestState.REMOVED,
        }

        # The ledger's removals are exactly what changed in each directory.
        entra_after = {u for u, i in entra_users.items() if graph.is_member(entra_group, i)}
        ad_after = {ad_upn[n] for n, dn in ad_dns.items() if samba_dc.is_member(ad_group, dn)}
        ledger = store.ledger()
        removed = {
            p: {e.user.upn.lower() for e in ledger if e.policy == p and e.outcome is LedgerOutcome.REMOVED}
            for p in ("salesforce", "visio")
        }  # fmt: skip
        assert removed["salesforce"] == entra_before - entra_after == {idle_entra[1], idle_entra[2]}
        assert removed["visio"] == ad_before - ad_after == {idle_ad[1], idle_ad[2]}
        assert all(e.monthly_cost == 20.0 for e in ledger if e.outcome is LedgerOutcome.REMOVED)
        assert len([e for e in ledger if e.outcome is LedgerOutcome.REMOVED]) == 4  # each once
        poison = host.pumps["removal_worker"].poison_queue
        assert list(poison.peek_messages()) == []
    finally:
        host.stop()

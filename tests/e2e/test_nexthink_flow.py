"""The seed's flows through the real adapters and the Nexthink HTTPS fake:
usage from NQL and a Nexthink campaign (Entra ID group), and the on-premises route where a
Nexthink remote action removes the user and the execution check turns REQUESTED into REMOVED."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy import policies_from_data
from reclaim.domain.records import LedgerOutcome
from reclaim.settings import Settings
from reclaim.wiring import Wiring
from tests.fakes.graph import FakeGraph
from tests.fakes.nexthink import SECRET_NAME, FakeNexthink
from tests.support.memory import MemoryQueue

NOW = datetime.now(UTC).replace(microsecond=0)
USAGE_QUERY = "#license_reclamation_usage"


def nexthink_env(nx: FakeNexthink) -> dict[str, str]:
    from reclaim.adapters.environment import variable_for

    return {
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_NEXTHINK_BASE_URL": nx.url,
        "RECLAIM_NEXTHINK_TOKEN_URL": nx.token_url,
        "RECLAIM_NEXTHINK_CLIENT_ID": nx.client_id,
        "RECLAIM_NEXTHINK_CLIENT_SECRET_NAME": SECRET_NAME,
        variable_for(SECRET_NAME): nx.client_secret,
    }


def context(
    env: dict[str, str], policy_data: dict, tmp_path: Path, monkeypatch
) -> tuple[usecases.Context, MemoryQueue]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the env secrets source reads the process environment
    settings = Settings.from_env(env)
    (policy,) = policies_from_data({"policies": [policy_data]})
    queue = MemoryQueue()
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        queue,
        Wiring(settings, tmp_path),
        {policy.name: policy},
    )
    return ctx, queue


def work(ctx: usecases.Context, queue: MemoryQueue, now: datetime) -> list[str]:
    return [
        usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status.value
        for m in queue.drain()
    ]


def test_nexthink_usage_and_campaign_on_an_entra_group(tmp_path: Path, monkeypatch) -> None:
    with FakeGraph() as graph, FakeNexthink() as nx:
        group = graph.add_group("SF-Lightning")
        people = {
            "ann": 0.0,
            "bob": 1.5,
            "cy": 2.0,
            "dee": 30.0,
            "eve": None,
        }  # eve: never observed
        ids = {}
        for n, name in enumerate(people):
            ids[name] = graph.add_user(f"{name}@contoso.test", sid=f"S-1-5-21-9-{n}")
            graph.add_member(group, ids[name])
        nx.add_query(
            USAGE_QUERY,
            ["user.ad.email_address", "focus_time", "last_event"],
            [
                [f"{name}@contoso.test", minutes, (NOW - timedelta(hours=5)).isoformat()]
                for name, minutes in people.items()
                if minutes is not None
            ],
            parameters=["application"],
        )
        nx.unknown_sids.add("S-1-5-21-9-2")  # cy: Nexthink creates no campaign request
        ctx, queue = context(
            {**graph.settings_env(), **nexthink_env(nx), "RECLAIM_CA_BUNDLE": str(nx.ca_file)},
            {
                "name": "salesforce",
                "application": "Salesforce Lightning",
                "mode": "enforce",
                "directory": {"kind": "entra", "group": group},
                # The fake's export is made once, at the start: the deadline tick a week later
                # re-decides on it, so it must count as fresh then.
                "usage": {"source": "nexthink", "match_on": "mail", "max_age": "10d"},
                "ask_permission": True,
                "campaign": {
                    "channel": "nexthink",
                    "respond_within": "7d",
                    "on_no_response": "reclaim",
                },
                "limits": {"max_removals_per_run": 10, "max_percent_of_group": 100},
            },
            tmp_path,
            monkeypatch,
        )
        policy = ctx.policies["salesforce"]

        outcome = usecases.run_policy(ctx, policy, NOW)
        kinds = {d.member.user.upn: d.kind.value for d in outcome.decisions}
        assert kinds == {
            "ann@contoso.test": "CANDIDATE",
            "bob@contoso.test": "CANDIDATE",
            "cy@contoso.test": "CANDIDATE",
            "dee@contoso.test": "ACTIVE",
            "eve@contoso.test": "UNKNOWN_USAGE",
        }
        assert outcome.run.asked == 2 and list(outcome.not_asked) == ["cy@contoso.test"]
        trigger = nx.bodies["POST /api/v1/euf/campaign/trigger"][0]
        assert trigger["parameters"] == {"application_name": "Salesforce Lightning"}
        assert trigger["expiresInMinutes"] == 7 * 24 * 60

        # ann answers no inside Nexthink, bob never answers; the expiry timer pulls answers by NQL
        # and, in the same tick, re-decides and releases ann's removal.
        ann_request = next(r for r in nx.campaign_requests.values() if r.sid == "S-1-5-21-9-0")
        nx.answer(ann_request.request_id, "No", NOW + timedelta(hours=2))
        report = usecases.expire_requests(ctx, NOW + timedelta(hours=3))
        assert (report.answers_pulled, report.queued, report.errors) == (1, 1, [])
        assert work(ctx, queue, NOW + timedelta(hours=3)) == ["removed"]
        assert not graph.is_member(group, ids["ann"])

        report = usecases.expire_requests(ctx, NOW + timedelta(days=7, hours=1))
        assert report.queued == 1
        assert work(ctx, queue, NOW + timedelta(days=7, hours=1)) == ["removed"]
        assert [n for n in people if not graph.is_member(group, ids[n])] == ["ann", "bob"]
        outcomes = [e.outcome for e in ctx.store.ledger()]
        assert (
            outcomes.count(LedgerOutcome.REMOVED) == 2
            and outcomes.count(LedgerOutcome.NOT_ASKED) == 1
        )


def test_the_remote_action_route_reaches_removed_through_the_execution_check(
    samba_dc, tmp_path: Path, monkeypatch
) -> None:
    group = samba_dc.create_group("Visio-OnPrem-E2E")
    users = {name: samba_dc.create_user(name) for name in ("gil.ash", "hal.bay", "ida.cole")}
    samba_dc.add_members(group, users.values())
    (tmp_path / "usage.csv").write_text(
        "user.name,focus_time\ngil.ash,0\nhal.bay,1\nida.cole,500\n"
    )
    try:
        with FakeNexthink() as nx:
            env = {
                **samba_dc.settings_env(),
                **nexthink_env(nx),
                "RECLAIM_CA_BUNDLE": str(nx.ca_file),
                "RECLAIM_SECRET_LDAP_BIND_PASSWORD": samba_dc.admin_password,
            }
            ctx, queue = context(
                env,
                {
                    "name": "visio-onprem",
                    "application": "Microsoft Visio",
                    "mode": "enforce",
                    "ask_permission": False,
                    "directory": {
                        "kind": "nexthink-remote-action",
                        "group": "Visio-OnPrem-E2E",
                        "devices": ["mgmt-server-01"],
                    },
                    "usage": {
                        "source": "csv",
                        "file": "usage.csv",
                        "user_column": "user.name",
                        "match_on": "sam_account_name",
                    },
                    "limits": {"max_removals_per_run": 10, "max_percent_of_group": 100},
                },
                tmp_path,
                monkeypatch,
            )
            outcome = usecases.run_policy(ctx, ctx.policies["visio-onprem"], NOW)
            assert outcome.run.enqueued == 2
            assert work(ctx, queue, NOW) == ["requested", "requested"]
            executions = nx.bodies["POST /api/v1/act/execute"]
            assert {b["params"]["SamAccountName"] for b in executions} == {"gil.ash", "hal.bay"}
            assert all(b["devices"] == ["mgmt-server-01"] for b in executions)

            # The remote action runs on the management server: it really removes the users in AD.
            samba_dc.remove_members(group, [users["gil.ash"], users["hal.bay"]])
            requested = ctx.store.requests(states=[RequestState.REQUESTED])
            nx.finish_execution(requested[0].detail, "success")
            assert usecases.expire_requests(ctx, NOW + timedelta(minutes=10)).finished == 1
            nx.finish_execution(requested[1].detail, "failure", "Access is denied")
            assert usecases.expire_requests(ctx, NOW + timedelta(minutes=20)).finished == 1
            states = {r.user.sam_account_name: r.state for r in ctx.store.requests()}
            assert states == {
                requested[0].user.sam_account_name: RequestState.REMOVED,
                requested[1].user.sam_account_name: RequestState.FAILED,
            }
            failed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.FAILED]
            assert len(failed) == 1 and "Access is denied" in failed[0].detail
    finally:
        for dn in [*users.values(), group]:
            samba_dc.delete(dn)

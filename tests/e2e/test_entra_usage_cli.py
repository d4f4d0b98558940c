"""`python -m reclaim plan` with an entra-signins, an entra-activity and an m365-reports policy
against the Graph fake, which refuses `$select` on the sign-in log as Graph does (issue 15's
first Done-when): members with no sign-in are candidates, with the evidence that makes them so."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes.graph import FakeGraph
from tests.fakes.graph_reports import set_report_activity
from tests.fakes.graph_usage import set_sign_in_activity
from tests.support.cli import reclaim

APP_ID = "2a5b6c7d-0000-4000-8000-00000000a99e"
POLICIES = """policies:
  - name: sf-signins
    application: Salesforce
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: entra-signins, app_id: "{app}", threshold: 1}}
    new_member_grace: 7d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
  - name: sf-signins-beta
    application: Salesforce
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: entra-signins, app_id: "{app}", threshold: 1, non_interactive_beta: true}}
    new_member_grace: 7d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
  - name: e3-inactive
    application: Microsoft 365 E3
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: entra-activity, inactive_for: 90d}}
    new_member_grace: 7d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
  - name: teams-inactive
    application: Microsoft Teams
    directory: {{kind: entra, group: "{group}"}}
    usage: {{source: m365-reports, product: teams, inactive_for: 30d}}
    new_member_grace: 7d
    limits: {{max_removals_per_run: 10, max_percent_of_group: 100}}
"""


def test_sign_in_and_activity_policies_plan_against_the_graph_fake(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    day = timedelta(days=1)
    with FakeGraph() as graph:
        group = graph.add_group("Salesforce users", licences=[graph.new_sku()])
        ids = {n: graph.add_user(f"{n}@contoso.test") for n in ("ann", "bob", "cy", "eve", "fay")}
        graph.add_member(group, *ids.values())  # before the audit log: members since long ago
        ids["dee"] = graph.add_user("dee@contoso.test")
        graph.add_member(group, ids["dee"], at=now - 10 * day)  # past the grace, not the window

        graph.add_sign_in(ids["ann"], APP_ID, now - 2 * day)
        graph.add_sign_in(ids["cy"], APP_ID, now - day, interactive=False)  # a cached session
        graph.add_sign_in(ids["eve"], APP_ID, now - 5 * day)
        graph.add_sign_in(ids["fay"], APP_ID, now - timedelta(hours=1))
        set_sign_in_activity(graph, ids["ann"], successful=now - 2 * day)
        # bob never signed in at all: no sign-in and no signInActivity
        set_sign_in_activity(graph, ids["cy"], successful=now - day, non_interactive=now - day)
        set_sign_in_activity(graph, ids["dee"], successful=now - 200 * day)
        # eve's only interactive sign-in on record predates lastSuccessfulSignInDateTime
        set_sign_in_activity(graph, ids["eve"], interactive=datetime(2023, 6, 1, tzinfo=UTC))
        set_sign_in_activity(graph, ids["fay"], successful=now - timedelta(hours=1))
        graph.granted |= {"Reports.Read.All"}
        for name in ("ann", "cy", "fay"):
            set_report_activity(graph, ids[name], Teams=(now - 3 * day).date())
        set_report_activity(graph, ids["eve"], Teams=(now - 60 * day).date())

        policies = tmp_path / "policies.yaml"
        policies.write_text(POLICIES.format(group=group, app=APP_ID))
        env = {**os.environ, **graph.settings_env(), "RECLAIM_STATE_DB": str(tmp_path / "s.db")}
        plan = reclaim(env, "plan", "--policies", str(policies), "--format", "json")
        assert plan.returncode == 0, plan.stderr + plan.stdout
        table = reclaim(env, "plan", "--policies", str(policies), "--policy", "sf-signins")
        assert table.returncode == 0, table.stderr

        signin_requests = [r for r in graph.requests if r.path.endswith("/auditLogs/signIns")]
        assert signin_requests and all(r.status == 200 for r in signin_requests)
        assert all("$select" not in r.query for r in signin_requests)

    outcomes = {o["policy"]: o for o in json.loads(plan.stdout)}
    assert all(o["halt_check"] is None for o in outcomes.values())

    def decisions(policy: str) -> dict[str, dict]:
        return {d["user"].split("@")[0]: d for d in outcomes[policy]["decisions"]}

    signins = decisions("sf-signins")
    assert {u: d["decision"] for u, d in signins.items()} == {
        "ann": "ACTIVE", "bob": "CANDIDATE", "cy": "CANDIDATE", "dee": "UNKNOWN_USAGE",
        "eve": "ACTIVE", "fay": "ACTIVE",
    }  # fmt: skip
    bob = signins["bob"]["evidence"]
    assert (bob["used"], bob["threshold"], bob["window"], bob["rule"]) == (0, 1, "30d", "threshold")
    assert bob["counted"].startswith("interactive sign-ins only")
    assert "within the 30d window" in signins["dee"]["reason"]
    assert "interactive sign-ins only" in table.stdout

    beta = decisions("sf-signins-beta")
    assert beta["cy"]["decision"] == "ACTIVE"  # its non-interactive sign-in counts here
    assert "beta" in beta["cy"]["evidence"]["counted"]

    activity = decisions("e3-inactive")
    assert {u: d["decision"] for u, d in activity.items()} == {
        "ann": "ACTIVE", "bob": "CANDIDATE", "cy": "ACTIVE", "dee": "UNKNOWN_USAGE",
        "eve": "CANDIDATE", "fay": "ACTIVE",
    }  # fmt: skip
    assert activity["bob"]["reason"].startswith("never signed in")
    assert "account_created" in activity["bob"]["evidence"]
    eve = activity["eve"]["evidence"]
    assert eve["last_seen"].startswith("2023-06-01") and eve["inactive_for"] == "90d"
    assert eve["last_seen_from"].startswith("lastSignInDateTime, as lastSuccessfulSignInDateTime")
    assert activity["ann"]["evidence"]["last_seen_from"] == "lastSuccessfulSignInDateTime"

    teams = decisions("teams-inactive")
    assert {u: d["decision"] for u, d in teams.items()} == {
        "ann": "ACTIVE", "bob": "CANDIDATE", "cy": "ACTIVE", "dee": "UNKNOWN_USAGE",
        "eve": "CANDIDATE", "fay": "ACTIVE",
    }  # fmt: skip
    assert teams["bob"]["reason"].startswith("no activity on record in the report")
    assert teams["eve"]["evidence"]["last_seen_from"] == "Teams Last Activity Date"

"""What the Functions host would read: every function's bindings, and host.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reclaim.domain.policy import is_valid_schedule
from reclaim.functions import new_app
from reclaim.functions.app_context import HOST_JSON, QueueOptions
from reclaim.settings import SETTINGS, Settings, variable_names
from tests.support.functions import bindings, registered, trigger

REPO = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]


def setting_named(expression: str) -> str:
    assert expression.startswith("%") and expression.endswith("%"), expression
    return expression.strip("%")


def test_function_app_registers_every_blueprint_function() -> None:
    assert set(registered()) == {
        "scheduler",
        "expiry",
        "campaign_responses",
        "campaign_approvals",
        "removal_worker",
        "manage_run_policy",
        "manage_restore",
        "manage_kill_switch",
        "console_policies",
        "console_policy",
        "console_run",
        "console_user",
        "console_what_if",
        "console_savings",
        "answer_page",
    }
    assert {f.get_function_name() for f in new_app().get_functions()} == set(registered())


@pytest.mark.parametrize(
    ("name", "setting"),
    [("scheduler", "RECLAIM_SCHEDULER_SCHEDULE"), ("expiry", "RECLAIM_EXPIRY_SCHEDULE")],
)
def test_timers_read_their_schedule_from_a_setting(name: str, setting: str) -> None:
    binding = trigger(name)
    assert binding["type"] == "timerTrigger"
    assert setting_named(binding["schedule"]) == setting
    assert binding["runOnStartup"] is False and binding["useMonitor"] is True
    assert setting in variable_names() and setting in SAMPLE
    default = next(d for v, _, d in SETTINGS.values() if v == setting)
    assert is_valid_schedule(default) and is_valid_schedule(SAMPLE[setting])


def test_the_worker_is_triggered_by_the_removal_queue_of_the_host_storage() -> None:
    binding = trigger("removal_worker")
    assert binding["type"] == "queueTrigger"
    assert setting_named(binding["queueName"]) == "RECLAIM_REMOVAL_QUEUE"
    assert binding["connection"] == "AzureWebJobsStorage"
    assert "AzureWebJobsStorage" in SAMPLE
    assert Settings.from_env({}).removal_queue == SAMPLE["RECLAIM_REMOVAL_QUEUE"]


@pytest.mark.parametrize(
    ("name", "route", "methods", "auth_level"),
    [
        # the webhook: its own function key (plus the HMAC signature)
        ("campaign_responses", "campaign/responses", ["POST"], "FUNCTION"),
        # approvers' decisions (escalation): the same key and signature
        ("campaign_approvals", "campaign/approvals", ["POST"], "FUNCTION"),
        # manage routes: no key opens them; an Entra ID token with an app role is checked in code
        ("manage_run_policy", "manage/policies/{name}/run", ["POST"], "ANONYMOUS"),
        ("manage_restore", "manage/restore", ["POST"], "ANONYMOUS"),
        ("manage_kill_switch", "manage/kill-switch", ["GET", "POST"], "ANONYMOUS"),
        # the console: read-only pages behind the same identity check
        ("console_policies", "console", ["GET"], "ANONYMOUS"),
        ("console_policy", "console/policies/{name}", ["GET"], "ANONYMOUS"),
        ("console_run", "console/policies/{name}/runs/{run_id}", ["GET"], "ANONYMOUS"),
        ("console_user", "console/policies/{name}/user", ["GET"], "ANONYMOUS"),
        ("console_what_if", "console/policies/{name}/what-if", ["GET"], "ANONYMOUS"),
        ("console_savings", "console/savings", ["GET"], "ANONYMOUS"),
        # the answer page: the signed link in the request is the capability
        ("answer_page", "answer", ["GET", "POST"], "ANONYMOUS"),
    ],
)
def test_http_routes_and_their_auth_levels_avoid_the_host_routes(
    name: str, route: str, methods: list[str], auth_level: str
) -> None:
    binding = trigger(name)
    assert binding["type"] == "httpTrigger"
    assert binding["route"] == route and binding["methods"] == methods
    assert binding["authLevel"] == auth_level  # set on each route: a Blueprint's is ignored
    # The host refuses routes (and names) starting with its own "admin" and "runtime".
    assert not route.lower().startswith(("admin", "runtime"))
    assert not name.lower().startswith("admin")
    assert [b["type"] for b in bindings(name)] == ["httpTrigger", "http"]


def test_host_json_queue_logging_and_bundle() -> None:
    host = json.loads(HOST_JSON.read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    assert host["functionTimeout"] == "00:10:00"
    assert host["logging"]["logLevel"]["Function"] == "Information"
    options = QueueOptions.from_host_json()
    assert (options.batch_size, options.new_batch_threshold, options.max_dequeue_count) == (8, 4, 5)
    assert options.visibility_timeout.total_seconds() == 30


def test_importing_the_app_loads_no_sdk() -> None:
    """Cold start stays light: storage, identity and directory SDKs load on first use."""
    heavy = ("azure.data", "azure.storage", "azure.identity", "azure.keyvault", "msal", "ldap3",
             "requests")  # fmt: skip
    code = f"import sys, function_app\nprint([m for m in sys.modules if m.startswith({heavy!r})])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

"""The kill switch is operational state in the store: set by the CLI or the manage route, read
fresh by every path, and out of reach of a redeploy (which rewrites every app setting)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from reclaim.domain.lifecycle import RequestState
from reclaim.domain.records import RemovalMessage
from reclaim.functions import app_context
from reclaim.settings import Settings
from tests.conftest import make_policy
from tests.functions.conftest import World
from tests.support.cli import reclaim
from tests.support.functions import call_http, call_queue, json_body, pump
from tests.support.infra_templates import Runtime, bicep_deployment, terraform_deployment

pytestmark = pytest.mark.azurite

JSON = {"Content-Type": "application/json"}
# Deploy-time values (a vault URI) that only exist in Azure.
# What the templates fill in from resources they create (the vault, the app's own identity).
DEPLOY_TIME = {
    "RECLAIM_KEY_VAULT_URL": "https://kv-reclaim-example.vault.azure.net/",
    "RECLAIM_KEY_VAULT_CLIENT_ID": "6f1c2b0e-8d4a-4c1e-9b7a-2d5e3f4a1b6c",
}


@pytest.fixture
def enqueued(world: World) -> list[RemovalMessage]:
    """Enforce without asking: one removal message per idle user, in the real queue."""
    world.use_policies(make_policy(mode="enforce"))
    assert world.run().run.enqueued == 4
    return [RemovalMessage.from_json(text) for text in world.queued_texts()]


def cli(world: World, *argv: str) -> str:
    """`python -m reclaim` in its own process, on the function app's Table storage."""
    result = reclaim({**os.environ, **world.env}, *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout


def route(world: World, on: bool, **mint: Any) -> Any:
    body = json.dumps({"on": on, "reason": "incident 42"}).encode()
    return call_http("manage_kill_switch", body, headers={**JSON, **world.admin(**mint)})


def test_a_flip_by_the_cli_holds_from_the_next_message_without_a_restart(
    world: World, enqueued: list[RemovalMessage]
) -> None:
    cached = app_context.current()  # the function app keeps its context for its lifetime
    assert "kill switch: ON; set on by" in cli(
        world, "kill-switch", "on", "--reason", "wrong group"
    )
    assert app_context.current() is cached

    result = pump(world.app).drain()
    assert result.processed == 4 and world.directory.removed == []
    assert {r.state for r in world.ctx.store.requests()} == {RequestState.QUEUED}
    assert world.message_count() == 4  # deferred, not lost

    assert "kill switch: off" in cli(world, "kill-switch", "off")
    call_queue("removal_worker", enqueued[0].to_json())
    assert [upn for _, upn in world.directory.removed] == [enqueued[0].user.upn]


def test_the_manage_route_records_who_and_the_cli_and_report_show_it(world: World) -> None:
    response = route(world, True)
    assert response.status_code == 200
    body = json_body(response)
    assert body["on"] is True and body["forced_by_setting"] is False
    (change,) = body["history"]
    assert change["by"] == "ada@contoso.example (oid 0d6f1b7e-5c2a-4b8e-9f00-00000000a11a)"
    assert change["via"] == "POST /api/manage/kill-switch" and change["reason"] == "incident 42"
    assert world.run(make_policy(mode="enforce")).halt.check == "kill_switch"

    shown = cli(world, "kill-switch")
    assert "kill switch: ON; set on by ada@contoso.example" in shown and "incident 42" in shown
    report = cli(world, "report")
    assert "kill switch: ON; set on by ada@contoso.example" in report


def test_the_setting_forces_it_on_but_cannot_force_it_off(world: World) -> None:
    world.ctx.forced_kill_switch = True  # RECLAIM_KILL_SWITCH=true
    body = json_body(route(world, False))
    assert (body["on"], body["forced_by_setting"]) == (True, True)
    assert world.ctx.kill_switch
    world.ctx.forced_kill_switch = False
    assert not world.ctx.kill_switch
    route(world, True)
    assert world.ctx.kill_switch  # false in the setting: the store decides


def test_a_bad_flip_is_400_and_changes_nothing(world: World) -> None:
    for body in (b'{"on": "yes"}', b"[]", json.dumps({"on": True, "reason": "x\x1b[2J"}).encode()):
        response = call_http("manage_kill_switch", body, headers={**JSON, **world.admin()})
        assert response.status_code == 400, body
    assert world.ctx.store.switch_history("kill_switch") == []


def redeployed(world: World, deployment: Any) -> app_context.AppContext:
    """The function app after a redeploy: every app setting as the template renders it, on the
    same storage (the test's Azurite tables stand in for the deployed account)."""
    rendered = deployment().app_settings
    assert rendered["RECLAIM_KILL_SWITCH"] == "false"
    env = {
        name: DEPLOY_TIME.get(name, value)
        for name, value in rendered.items()
        if name.startswith("RECLAIM_")
    }
    assert not [name for name, value in env.items() if isinstance(value, Runtime)]
    env.update(
        {  # where the state is: the emulator instead of the account's identity-based endpoints
            "AzureWebJobsStorage": world.env["AzureWebJobsStorage"],
            "RECLAIM_TABLE_PREFIX": world.env["RECLAIM_TABLE_PREFIX"],
            "RECLAIM_REMOVAL_QUEUE": world.env["RECLAIM_REMOVAL_QUEUE"],
        }
    )
    env.update(world.issuer.settings())  # the tenant and audience parameters of the deployment
    app = app_context.build(
        Settings.from_env(env),
        env=env,
        policies=world.ctx.policies,
        adapters=world.adapters,
        secrets=world.secrets,
        clock=world.clock,
    )
    app_context.install(app)  # a new process after the deployment
    return app


@pytest.mark.parametrize("deployment", [bicep_deployment, terraform_deployment])
@pytest.mark.parametrize("how", ["cli", "manage route"])
def test_a_redeploy_cannot_clear_a_kill_switch_an_operator_set(
    world: World, enqueued: list[RemovalMessage], deployment: Any, how: str
) -> None:
    if how == "cli":
        cli(world, "kill-switch", "on", "--reason", "incident 42")
    else:
        assert route(world, True).status_code == 200

    app = redeployed(world, deployment)

    assert app.settings.kill_switch is False and app.ctx.kill_switch is True
    result = pump(app).drain()
    assert result.processed == 4 and world.directory.removed == []
    assert world.message_count() == 4  # the removals wait for the switch
    halted = call_http(
        "manage_run_policy", route_params={"name": "salesforce"}, headers=world.admin()
    )
    assert json_body(halted)["halt_check"] == "kill_switch"

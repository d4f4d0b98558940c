"""The administrators' routes: run a policy now, restore removed users."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from reclaim.adapters.storage import StorageAccount
from reclaim.adapters.tables import TableStore
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import TransientError
from reclaim.wiring import Wiring
from tests.conftest import make_policy
from tests.functions.conftest import World
from tests.support.functions import call_http, json_body, pump

pytestmark = pytest.mark.azurite

JSON = {"Content-Type": "application/json"}


def run(world: World, name: str):
    return call_http("manage_run_policy", route_params={"name": name}, headers=world.admin())


def restore(
    world: World, payload: Any, *, raw: bytes | None = None, headers: dict[str, str] = JSON
):
    body = raw if raw is not None else json.dumps(payload).encode()
    return call_http("manage_restore", body, headers={**headers, **world.admin()})


def removed(world: World) -> str:
    """Enforce without asking, and let the worker remove the idle users; the run id."""
    world.use_policies(make_policy(mode="enforce"))
    summary = json_body(run(world, "salesforce"))
    pump(world.app).drain()
    assert len(world.directory.removed) == 4
    return summary["run_id"]


def test_running_a_policy_now_returns_its_summary(world: World) -> None:
    response = run(world, "salesforce")
    assert response.status_code == 200
    summary = json_body(response)
    assert (summary["status"], summary["mode"], summary["asked"]) == ("completed", "enforce", 4)
    assert (summary["counts"]["CANDIDATE"], summary["counts"]["ACTIVE"]) == (4, 6)
    assert [r.id for r in world.ctx.store.runs()] == [summary["run_id"]]


def test_a_dry_run_policy_run_now_only_records_its_plan(world: World) -> None:
    world.use_policies(make_policy())
    summary = json_body(run(world, "salesforce"))
    assert (summary["status"], summary["enqueued"]) == ("planned", 0)
    assert world.message_count() == 0


def test_running_an_unknown_policy_is_404(world: World) -> None:
    response = run(world, "visio")
    assert response.status_code == 404
    assert json_body(response)["error"]["code"] == "unknown_policy"
    assert world.ctx.store.runs() == []


def test_restore_one_user(world: World) -> None:
    removed(world)
    response = restore(world, {"policy": "salesforce", "user": "U0@c.com"})
    assert response.status_code == 200
    assert json_body(response) == {"restored": ["u0@c.com"], "already_member": [], "failed": {}}
    assert world.directory.holds("SF", "u0@c.com")
    restored = [e for e in world.ctx.store.ledger() if e.outcome is LedgerOutcome.RESTORED]
    assert [e.user.upn for e in restored] == ["u0@c.com"]


def test_restore_a_run_where_some_fail_is_207(world: World) -> None:
    run_id = removed(world)
    world.directory.add_failures["u2@c.com"] = TransientError("503 from the directory")
    response = restore(world, {"policy": "salesforce", "run_id": run_id})
    assert response.status_code == 207
    body = json_body(response)
    assert sorted(body["restored"]) == ["u0@c.com", "u1@c.com", "u3@c.com"]
    assert body["failed"] == {"u2@c.com": "503 from the directory"}


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"policy": "visio", "user": "u0@c.com"}, "unknown policy"),
        ({"policy": "salesforce", "user": "u9@c.com"}, "no removal of"),
        ({"policy": "salesforce"}, "give either a user or a run id"),
        ({"policy": "salesforce", "user": "u0@c.com", "run_id": "r"}, "give either"),
    ],
)
def test_restore_of_nothing_known_is_422(world: World, payload: Any, where: str) -> None:
    removed(world)
    before = world.ctx.store.ledger()
    response = restore(world, payload)
    assert response.status_code == 422
    assert where in json_body(response)["error"]["message"]
    assert world.ctx.store.ledger() == before


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"raw": b"{"}, 400, "invalid_json"),
        ({"payload": ["salesforce"]}, 400, "invalid_schema"),
        ({"payload": {"policy": "salesforce", "user": 7}}, 400, "invalid_schema"),
        ({"payload": {}, "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ],
)
def test_restore_rejects_bad_requests(
    world: World, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = restore(world, kwargs.pop("payload", None), **kwargs)
    assert response.status_code == status
    assert json_body(response)["error"]["code"] == code


def dead_store(world: World) -> TableStore:
    """The real Table store against a port where nothing listens: storage is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + base64.b64encode(b"k" * 64).decode()
        + f";TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    account = StorageAccount(connection_string=connection)
    service = account.table_service(retry_total=0, connection_timeout=2)
    return TableStore(service, world.app.settings.table_prefix, create=False)


def kill_switch(world: World, on: bool) -> Any:
    body = json.dumps({"on": on, "reason": "incident 42"}).encode()
    return call_http("manage_kill_switch", body, headers={**JSON, **world.admin()})


def assert_503(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.get_body()
    assert response.headers["Retry-After"]
    assert response.mimetype == "application/json"
    return json_body(response)["error"]


def test_a_storage_outage_is_503_on_every_manage_route_never_500(world: World) -> None:
    run_id = removed(world)
    store, before = world.ctx.store, world.state()
    world.ctx.store = dead_store(world)
    assert assert_503(run(world, "salesforce"))["code"] == "unavailable"
    assert assert_503(restore(world, {"policy": "salesforce", "run_id": run_id}))
    assert assert_503(kill_switch(world, True))
    assert assert_503(call_http("manage_kill_switch", method="GET", headers=world.admin()))
    world.ctx.store = store
    assert world.state() == before


def test_a_directory_failure_on_restore_is_503_never_500(world: World) -> None:
    run_id = removed(world)
    before = world.state()
    for user in ("u0@c.com", "u1@c.com", "u2@c.com", "u3@c.com"):
        world.directory.add_failures[user] = ConnectionResetError("connection reset by peer")
    assert assert_503(restore(world, {"policy": "salesforce", "run_id": run_id}))
    assert world.state() == before


def test_a_directory_that_cannot_be_built_is_503_naming_what_to_set(world: World) -> None:
    run_id = removed(world)
    before = world.state()
    entra = make_policy(mode="enforce", directory={"kind": "entra", "group": "SF"})
    world.use_policies(entra)
    world.ctx.adapters = Wiring(world.app.settings, Path("."))  # no RECLAIM_CLIENT_ID set
    error = assert_503(restore(world, {"policy": "salesforce", "run_id": run_id}))
    assert error["code"] == "not_configured" and "RECLAIM_CLIENT_ID" in error["message"]
    assert world.state() == before


def test_overlapping_run_now_calls_make_one_run_and_the_others_are_409(world: World) -> None:
    import threading
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    world.use_policies(make_policy(mode="enforce"))
    world.ctx.new_id = lambda: uuid.uuid4().hex  # ids from several threads at once
    world.directory.read_delay = 0.3
    start = threading.Barrier(4)

    def call(_: int):
        start.wait()
        return run(world, "salesforce")

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(call, range(4)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
    busy = [json_body(r)["error"] for r in responses if r.status_code == 409]
    assert all(e["code"] == "already_running" for e in busy)
    assert all("already running since 2026-11-28 06:00:00 UTC" in e["message"] for e in busy)
    assert len(world.ctx.store.requests()) == 4 and world.message_count() == 4
    assert len(world.ctx.store.runs()) == 1

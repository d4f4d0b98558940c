"""reclaim.host: the registered functions served on one machine (python -m reclaim host)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.domain.lifecycle import RequestState
from reclaim.host import LocalHost, resolve, route_pattern, serve
from reclaim.settings import Settings
from tests.conftest import NOW
from tests.functions.conftest import SECRET, World
from tests.support.functions import binding_settings, signed


def request(
    host: LocalHost,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    port = int(host.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def local(world: World) -> Iterator[LocalHost]:
    host = LocalHost(world.app.settings, app=world.app, port=0, env=world.env, function_key="")
    host.start()
    try:
        yield host
    finally:
        host.stop()


def test_route_templates_become_patterns() -> None:
    pattern = route_pattern("manage/policies/{name}/run")
    assert pattern.match("manage/policies/visio/run").groupdict() == {"name": "visio"}
    assert pattern.match("manage/policies/a/b/run") is None
    assert route_pattern("files/{*path}").match("files/a/b").group("path") == "a/b"
    assert route_pattern("items/{id:int?}").match("items/")


def test_binding_expressions_resolve_through_the_app_settings() -> None:
    env = {"RECLAIM_REMOVAL_QUEUE": "removals-x", "OTHER": "o"}
    assert resolve("%RECLAIM_REMOVAL_QUEUE%", env) == "removals-x"
    assert resolve("%OTHER%-%RECLAIM_REMOVAL_QUEUE%", env) == "o-removals-x"


@pytest.mark.azurite
def test_the_webhook_answers_over_http(world: World, local: LocalHost) -> None:
    world.run()
    request_id = world.ctx.store.requests()[0].id
    body = json.dumps({"request_id": request_id, "answer": "no"}).encode()
    status, payload = request(
        local, "POST", "/api/campaign/responses", body, signed(SECRET, body, world.clock())
    )
    assert (status, json.loads(payload)["queued"]) == (202, 1)
    usecases.expire_requests(world.ctx, world.clock())  # the tick that re-decides and releases
    assert local.drain().processed == 1
    assert world.ctx.store.get_request(request_id).state is RequestState.REMOVED


@pytest.mark.azurite
def test_unknown_paths_and_methods(local: LocalHost) -> None:
    assert request(local, "POST", "/api/nothing/here")[0] == 404
    assert request(local, "GET", "/")[0] == 404
    assert request(local, "GET", "/api/campaign/responses")[0] == 405


@pytest.mark.azurite
def test_route_parameters_reach_the_function(world: World, local: LocalHost) -> None:
    path = "/api/manage/policies/salesforce/run"
    status, payload = request(local, "POST", path, headers=world.admin())
    assert status == 200 and json.loads(payload)["policy"] == "salesforce"
    path = "/api/manage/policies/visio/run"
    status, payload = request(local, "POST", path, headers=world.admin())
    assert status == 404 and json.loads(payload)["error"]["code"] == "unknown_policy"


@pytest.mark.azurite
def test_a_function_key_is_checked_when_one_is_set(world: World) -> None:
    with LocalHost(
        world.app.settings, app=world.app, port=0, env=world.env, function_key="k3y"
    ) as host:
        path = "/api/campaign/responses"  # manage routes take a token instead
        assert request(host, "POST", path)[0] == 401
        assert request(host, "POST", path, headers={"x-functions-key": "wrong"})[0] == 401
        assert request(host, "POST", path, headers={"x-functions-key": "k3y"})[0] == 415
        assert request(host, "POST", path + "?code=k3y")[0] == 415  # past the key: not JSON


@pytest.mark.azurite
def test_timers_fire_on_their_schedules_by_the_injected_clock(
    world: World, local: LocalHost
) -> None:
    # Defaults: scheduler every 5 minutes, expiry every 15; started at 06:00:00.
    def tick_at(after: timedelta) -> list[str]:
        world.clock.now = NOW + after
        return sorted(local.tick())

    assert tick_at(timedelta(minutes=4)) == []
    assert tick_at(timedelta(minutes=5, seconds=1)) == ["scheduler"]
    assert tick_at(timedelta(minutes=5, seconds=30)) == []
    assert tick_at(timedelta(minutes=15)) == ["expiry", "scheduler"]


@pytest.mark.azurite
def test_a_body_that_is_not_base64_goes_to_poison(world: World, local: LocalHost) -> None:
    raw = world.app.queue.account.queue_client(  # type: ignore[attr-defined]
        world.app.settings.removal_queue, message_encode_policy=None
    )
    raw.send_message("not base64 at all!")
    result = local.drain()
    assert result.poisoned == 1
    poison = world.app.queue.account.queue_client(  # type: ignore[attr-defined]
        world.app.settings.removal_queue + "-poison", message_decode_policy=None
    )
    assert [m.content for m in poison.peek_messages()] == ["not base64 at all!"]


@pytest.mark.azurite
def test_serve_runs_until_stopped(
    storage_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        "policies:\n"
        "  - name: visio\n"
        "    application: Visio\n"
        "    directory: {kind: csv, group: VISIO, file: members.csv}\n"
        "    usage: {source: csv, file: usage.csv, match_on: upn}\n"
    )
    for name, value in {**binding_settings(), **storage_env}.items():
        monkeypatch.setenv(name, value)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert serve(Settings.from_env(storage_env), policies, 0, stop_event=stop) == 0


def test_serve_with_a_bad_configuration_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env({"RECLAIM_STATE_BACKEND": "sqlite"})
    assert serve(settings, tmp_path / "policies.yaml", 0, stop_event=threading.Event()) == 2
    assert "RECLAIM_STATE_BACKEND=tables" in capsys.readouterr().err

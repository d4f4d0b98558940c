"""Admin access is an identity: every manage route wants an Entra ID token with an app role,
checked against the fake tenant's published keys (tests/fakes/issuer.py) by the real verifier."""

from __future__ import annotations

import json
import time
from typing import Any

import azure.functions as func
import pytest

from reclaim.functions import app_context
from reclaim.settings import Settings
from tests.conftest import make_policy
from tests.fakes.issuer import API_CLIENT_ID, READER, FakeIssuer, new_key, platform_principal
from tests.functions.conftest import World
from tests.support.functions import call_http, json_body, pump, registered, trigger

pytestmark = pytest.mark.azurite

JSON = {"Content-Type": "application/json"}
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"

# Every manage route, called as an administrator would: (function, route params, body, method).
ROUTES = [
    ("manage_run_policy", {"name": "salesforce"}, b"", "POST"),
    (
        "manage_restore",
        {},
        json.dumps({"policy": "salesforce", "user": "u0@c.com"}).encode(),
        "POST",
    ),
    ("manage_kill_switch", {}, json.dumps({"on": True, "reason": "drill"}).encode(), "POST"),
]


def test_every_manage_route_is_listed_here() -> None:
    manage = {name for name in registered() if trigger(name).get("route", "").startswith("manage/")}
    assert manage == {name for name, *_ in ROUTES}


def call(
    route: tuple[str, dict[str, str], bytes, str], headers: dict[str, str]
) -> func.HttpResponse:
    name, params, body, method = route
    return call_http(name, body, method=method, headers={**JSON, **headers}, route_params=params)


def removed(world: World) -> None:
    """u0..u3 removed by an enforce run, so a restore or a run would change something."""
    world.use_policies(make_policy(mode="enforce"))
    assert call(ROUTES[0], world.admin()).status_code == 200
    pump(world.app).drain()
    assert len(world.directory.removed) == 4


def everything(world: World) -> tuple[Any, ...]:
    return (
        world.state(),
        [r.id for r in world.ctx.store.runs()],
        world.ctx.store.switch_history("kill_switch"),
        sorted(world.directory.removed),
    )


def hostile(issuer: FakeIssuer) -> dict[str, str]:
    """Authorization headers that must all be refused with 401."""
    now = int(time.time())
    return {
        "missing": "",
        "not bearer": "Basic YWRhOnNlY3JldA==",
        "empty bearer": "Bearer ",
        "malformed": "Bearer not.a.jwt",
        "expired": "Bearer " + issuer.mint(exp=now - 600, nbf=now - 4000, iat=now - 4000),
        "not yet valid": "Bearer " + issuer.mint(nbf=now + 600, iat=now + 600),
        "no expiry": "Bearer " + issuer.mint(exp=None),
        "wrong audience": "Bearer " + issuer.mint(aud="https://graph.microsoft.com"),
        "wrong tenant": "Bearer "
        + issuer.mint(tid=OTHER_TENANT, iss=f"{issuer.authority_host}/{OTHER_TENANT}/v2.0"),
        "tid of another tenant": "Bearer " + issuer.mint(tid=OTHER_TENANT),
        "wrong issuer": "Bearer "
        + issuer.mint(iss="https://evil.example/" + issuer.tenant_id + "/v2.0"),
        "v1 issuer of another tenant": "Bearer "
        + issuer.mint(version="1.0", iss=f"https://sts.windows.net/{OTHER_TENANT}/"),
        "unknown kid": "Bearer " + issuer.mint(key=new_key()),
        "forged": "Bearer " + issuer.mint(headers={"kid": issuer.key.kid}, key=new_key()),
        "alg none": "Bearer " + FakeIssuer.unsigned(issuer.claims()),
        "HS256 with the public key": "Bearer " + _hs256_confusion(issuer),
    }


def _hs256_confusion(issuer: FakeIssuer) -> str:
    """HS256 keyed with (part of) the published public key: the classic algorithm confusion."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    public = issuer.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return jwt.encode(
        issuer.claims(), public.decode()[:32], algorithm="HS256", headers={"kid": issuer.key.kid}
    )


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_bad_tokens_get_401_with_a_challenge_and_change_nothing(world: World, route) -> None:
    removed(world)
    before = everything(world)
    for case, authorization in hostile(world.issuer).items():
        response = call(route, {"Authorization": authorization} if authorization else {})
        assert response.status_code == 401, (case, response.get_body())
        assert json_body(response)["error"]["code"] == "unauthenticated", case
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="reclaim"'), case
        assert ("invalid_token" in challenge) is (case != "missing"), case
    assert everything(world) == before


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_a_token_without_the_admin_role_gets_403_and_changes_nothing(world: World, route) -> None:
    removed(world)
    before = everything(world)
    for roles in [(), (READER,), ("Reclaim.admin",), ("Admin",)]:
        response = call(route, world.admin(roles=roles))
        assert response.status_code == 403, roles
        assert json_body(response)["error"]["code"] == "forbidden"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert "Reclaim.Admin" in json_body(response)["error"]["message"]
    assert everything(world) == before


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_an_admin_with_the_role_gets_through_with_v1_and_v2_tokens(world: World, version) -> None:
    response = call(ROUTES[0], world.admin(version=version))
    assert response.status_code == 200
    assert [r.id for r in world.ctx.store.runs()] == [json_body(response)["run_id"]]


def test_a_reader_may_read_the_kill_switch_but_not_flip_it(world: World) -> None:
    response = call_http("manage_kill_switch", method="GET", headers=world.admin(roles=(READER,)))
    assert response.status_code == 200 and json_body(response)["on"] is False
    assert call_http("manage_kill_switch", method="GET").status_code == 401


def test_the_campaign_callers_function_key_opens_no_manage_route(world: World) -> None:
    """The answer poster holds the webhook's function key; the manage routes do not look at
    function keys at all (auth level anonymous) but at the token, which the poster lacks."""
    from reclaim.host import LocalHost

    removed(world)
    before = everything(world)
    with LocalHost(
        world.app.settings, app=world.app, port=0, env=world.env, function_key="hook-key"
    ) as host:
        assert (
            _post(host, "/api/campaign/responses", b"{}", {})[0] == 401
        )  # the key is checked there
        for name, params, body, _ in ROUTES:
            path = "/api/" + trigger(name)["route"].replace("{name}", params.get("name", ""))
            for extra in ({}, world.admin(roles=())):
                status, headers, _ = _post(
                    host, path, body, {"x-functions-key": "hook-key", **extra}
                )
                assert status == (403 if extra else 401), (path, extra)
                assert "WWW-Authenticate" in headers
            status, _, _ = _post(host, path + "?code=hook-key", body, {})
            assert status == 401
    assert everything(world) == before


def _post(
    host: Any, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    import http.client

    port = int(host.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={**JSON, **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_an_unknown_policy_is_404_without_naming_the_others(world: World) -> None:
    world.use_policies(make_policy(name="salesforce"), make_policy(name="secret-project"))
    response = call_http("manage_run_policy", route_params={"name": "visio"}, headers=world.admin())
    assert response.status_code == 404
    message = json_body(response)["error"]["message"]
    assert "visio" in message and "salesforce" not in message and "secret-project" not in message


def _platform_world(world: World, trusted: bool) -> None:
    env = {**world.env, "RECLAIM_PLATFORM_AUTH": "true" if trusted else "false"}
    world.app.settings = Settings.from_env(env)
    world.app.identities = None  # built again from the new settings


def principal(world: World, **claims: str | list[str]) -> dict[str, str]:
    base: dict[str, str | list[str]] = {
        "aud": API_CLIENT_ID,
        "http://schemas.microsoft.com/identity/claims/tenantid": world.issuer.tenant_id,
        "http://schemas.microsoft.com/identity/claims/objectidentifier": "oid-of-ada",
        "preferred_username": "ada@contoso.example",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ["Reclaim.Admin"],
    }
    return {"X-MS-CLIENT-PRINCIPAL": platform_principal({**base, **claims})}


def test_the_platform_principal_is_ignored_unless_platform_auth_is_on(world: World) -> None:
    _platform_world(world, trusted=False)
    assert call(ROUTES[0], principal(world)).status_code == 401
    assert world.ctx.store.runs() == []


def test_the_platform_principal_is_trusted_when_platform_auth_is_on(world: World) -> None:
    _platform_world(world, trusted=True)
    assert call(ROUTES[2], principal(world)).status_code == 200
    (change,) = world.ctx.store.switch_history("kill_switch")
    assert change.by == "ada@contoso.example (oid oid-of-ada)"
    wrong_tenant = {"http://schemas.microsoft.com/identity/claims/tenantid": OTHER_TENANT}
    assert call(ROUTES[2], principal(world, **wrong_tenant)).status_code == 401
    assert call(ROUTES[2], principal(world, aud="api://someone-else")).status_code == 401
    no_role = {"http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ["Reclaim.Reader"]}
    assert call(ROUTES[2], principal(world, **no_role)).status_code == 403
    assert call(ROUTES[2], {"X-MS-CLIENT-PRINCIPAL": "%%%not base64"}).status_code == 401
    assert len(world.ctx.store.switch_history("kill_switch")) == 1


def test_without_audience_or_tenant_the_manage_routes_refuse_everyone(world: World) -> None:
    world.app.settings = Settings.from_env({**world.env, "RECLAIM_ADMIN_AUDIENCE": ""})
    world.app.identities = None
    response = call(ROUTES[0], world.admin())
    assert response.status_code == 503
    assert "RECLAIM_ADMIN_AUDIENCE" in json_body(response)["error"]["message"]
    assert world.ctx.store.runs() == []


def test_an_unreachable_identity_platform_is_503_not_401_or_500(world: World) -> None:
    with FakeIssuer(world.issuer.tenant_id) as gone:
        env = {**world.env, **gone.settings()}
    world.app.settings = Settings.from_env(env)  # its port is closed now
    world.app.identities = None
    response = call(ROUTES[0], world.issuer.bearer())
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert json_body(response)["error"]["code"] == "identity_unavailable"
    assert world.ctx.store.runs() == []


def test_a_manage_route_never_answers_500_when_the_context_cannot_be_built(world: World) -> None:
    app_context.install(None)  # built from os.environ on the next call: nothing is configured
    response = call(ROUTES[0], world.admin())
    assert response.status_code == 503
    assert json_body(response)["error"]["code"] in ("not_configured", "unavailable")

"""The Graph adapter and the Graph fake against Microsoft's published v1.0 types
(graph-v1.0-types.json, README.md beside this file):

- every property the adapter `$select`s or filters on exists on the type of the resource it asks,
  and every key it reads from an answer is a Graph property or part of the OData/JSON-batch
  envelope (read from the adapter's source, so a new call is checked without a new test);
- the fake accepts no `$select` of a property Graph does not have, answers only with properties
  of the resource's type, each a valid value of its EDM type, and casts as Graph does
  (`microsoft.graph.user` and `graph.user`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
import requests

import tests.fakes
from tests.contracts import adapter_scan
from tests.contracts.graph_contract import (
    graph_type,
    missing_in_filter,
    problems,
    properties,
    type_names,
    untyped,
)
from tests.fakes.graph import FakeGraph

# Keys the adapter reads that are not properties of a Graph type, by where they come from.
ENVELOPE = {
    # OData JSON format: collections, paging, annotations
    "value", "@odata.nextLink", "@odata.type", "@odata.context", "@odata.id",
    # Graph's error body: {"error": {"code", "message", "innerError", "details", "target"}}
    "error", "code", "message", "innerError", "details", "target", "request-id", "date",
    # JSON batching: {"responses": [{"id", "status", "headers", "body"}]} and its headers
    "responses", "id", "status", "headers", "body", "Retry-After", "Content-Type",
}  # fmt: skip
# msal's token result (a dict from msal, not from Graph): auth.py only
MSAL_RESULT = {"access_token", "error", "error_codes", "error_description"}
ERROR_MEMBERS = {"code", "message", "innerError", "details", "target"}


# ---- the adapter, read from its source ----------------------------------------------------------


def test_every_request_of_the_adapter_names_a_resource_of_known_type() -> None:
    unknown = [
        f"{r.where}: {r.path}"
        for r in adapter_scan.requests()
        if r.path is None or (graph_type(r.path) is None and not untyped(r.path))
    ]
    assert not unknown, (
        f"requests whose Graph type the contract tests do not know: {unknown}; add the path's "
        "type to ROUTES in tests/contracts/graph_contract.py"
    )


def _typed_requests() -> Iterator[tuple[adapter_scan.Request, str]]:
    for request in adapter_scan.requests():
        type_name = graph_type(request.path or "")
        if type_name:
            yield request, type_name


def test_every_property_the_adapter_selects_is_on_its_type() -> None:
    missing = [
        f"{request.where}: {name} on {type_name}"
        for request, type_name in _typed_requests()
        for option in ("select", "orderby")
        for name in (n.strip().split(" ")[0] for n in request.options.get(option, "").split(","))
        if name and name not in properties(type_name)
    ]
    assert not missing, f"properties Graph does not have: {missing}"


def test_every_property_the_adapter_filters_on_is_on_its_type() -> None:
    filters = [(r, t) for r, t in _typed_requests() if "filter" in r.options]
    assert filters  # the scan sees the adapter's filters (members, users, sign-ins)
    missing = [
        f"{request.where}: {name} on {type_name}"
        for request, type_name in filters
        for name in missing_in_filter(type_name, request.options["filter"])
    ]
    assert not missing, f"filtered properties Graph does not have: {missing}"


def test_every_key_the_adapter_reads_is_a_graph_property_or_envelope() -> None:
    known = set(ENVELOPE).union(*(properties(name) for name in type_names()))
    reads = adapter_scan.reads()
    assert {"userPrincipalName", "licenseAssignmentStates"} <= {r.key for r in reads}
    unknown = [
        f"{r.where}: {r.key!r}"
        for r in reads
        if r.key not in known
        and not (r.where.startswith("auth.py") and r.key in MSAL_RESULT)
        and not any(c.isspace() for c in r.key)  # a CSV report's column, not an OData property
    ]
    assert not unknown, f"keys read that no Graph type has: {unknown}"


def test_the_scan_catches_a_property_graph_does_not_have() -> None:
    """The checks above can fail: a misspelt or invented property is reported."""
    assert missing_in_filter("user", "userPrincipleName eq 'v'") == ["userPrincipleName"]
    assert (
        missing_in_filter("user", "signInActivity/lastSignInDateTime le 2026-01-01T00:00:00Z") == []
    )
    assert missing_in_filter("user", "signInActivity/lastLogon le 'v'") == [
        "signInActivity/lastLogon"
    ]
    assert missing_in_filter("directoryAudit", "targetResources/any(t: t/objectId eq 'v')") == [
        "targetResources/objectId"
    ]
    assert "lastActivity" not in properties("signIn")
    wrong = {"id": "x", "accountEnabled": "yes", "bogus": 1, "createdDateTime": "2026-12-01"}
    assert sorted(p.split(":")[0] for p in problems(wrong, "graph.user", "u")) == [
        "u.accountEnabled",
        "u.bogus",
        "u.createdDateTime",
    ]
    assert problems({"assignedLicenses": [{"skuId": "not-a-guid"}]}, "graph.user", "u")


# ---- the fake -----------------------------------------------------------------------------------


def _fake_modules() -> list[Any]:
    return [
        importlib.import_module(f"tests.fakes.{m.name}")
        for m in pkgutil.iter_modules(tests.fakes.__path__)
        if m.name == "graph" or m.name.startswith("graph_")
    ]


def _select_lists() -> list[tuple[str, str, set[str]]]:
    """(module.name, Graph type, properties) of each `_<TYPE>_PROPERTIES` set of the fakes."""
    by_lower = {name.lower(): name for name in type_names()}
    found = []
    for module in _fake_modules():
        for name, value in vars(module).items():
            if name.startswith("_") and name.endswith("_PROPERTIES") and isinstance(value, set):
                stem = name[1 : -len("_PROPERTIES")].replace("_", "").lower()
                found.append((f"{module.__name__}.{name}", by_lower.get(stem, stem), value))
    return found


def test_the_fake_accepts_no_select_graph_would_refuse() -> None:
    lists = _select_lists()
    assert {t for _, t, _ in lists} >= {"user", "group"}
    for where, type_name, allowed in lists:
        assert type_name in type_names(), f"{where}: name the Graph type it lists"
        extra = sorted(allowed - set(properties(type_name)))
        assert not extra, f"{where} accepts $select of {extra}, which {type_name} does not have"


@pytest.fixture(scope="module")
def tenant() -> Iterator[tuple[FakeGraph, dict[str, str]]]:
    """A fake tenant with something of every kind the fake answers about."""
    with FakeGraph() as graph:
        sku, other_sku = graph.new_sku(), graph.new_sku()
        group = graph.add_group("Salesforce users", licences=[sku])
        nested = graph.add_group("Salesforce contractors", licences=[sku])
        ada = graph.add_user("ada@contoso.test", direct_licences=[other_sku], sid="S-1-5-21-1-2")
        bob = graph.add_user("bob@contoso.test", mail=None, sam_account_name="bob", created=None)
        cy = graph.add_user("cy@contoso.test")
        graph.set_manager(ada, cy)
        at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        graph.add_member(group, ada, bob, nested, at=at)
        graph.add_member(nested, cy)
        app = "0d1f5a44-9b6b-4f5e-8a0e-4c9f4d1c2b3a"
        graph.add_sign_in(ada, app, at)
        graph.add_sign_in(bob, app, at)
        yield graph, {"group": group, "user": ada, "app": app}


def _get(graph: FakeGraph, target: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(graph.ca_file)
    token = graph.identity.issue(graph.client_id, graph.base_url)
    return session.get(
        f"{graph.url}{target}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _targets(ids: dict[str, str]) -> list[str]:
    group, user, app = ids["group"], ids["user"], ids["app"]
    signins = f"appId eq '{app}' and createdDateTime ge 2026-10-01T00:00:00Z"
    return [
        f"/groups/{group}",
        f"/groups/{group}/members",
        f"/groups/{group}/members/microsoft.graph.user",
        f"/groups/{group}/members/microsoft.graph.group",
        f"/groups/{group}/transitiveMembers/microsoft.graph.user",
        f"/users/{user}",
        f"/users/{user}/manager",
        "/users?$filter=" + quote("userPrincipalName eq 'ada@contoso.test'"),
        "/auditLogs/signIns?$filter=" + quote(signins),
        "/auditLogs/directoryAudits?$filter="
        + quote("activityDisplayName eq 'Add member to group'"),
    ]


def _with_every_select(target: str) -> str | None:
    """The same request selecting everything the fake lets a client select there, if any."""
    type_name = graph_type(target.partition("?")[0])
    allowed = set().union(*(a for _, t, a in _select_lists() if t == type_name))
    if not allowed:
        return None
    return target + ("&" if "?" in target else "?") + "$select=" + ",".join(sorted(allowed))


def test_every_answer_of_the_fake_is_an_instance_of_its_type(
    tenant: tuple[FakeGraph, dict[str, str]],
) -> None:
    graph, ids = tenant
    checked = 0
    for plain in _targets(ids):
        for target in filter(None, (plain, _with_every_select(plain))):
            path = target.partition("?")[0]
            type_name = graph_type(path)
            assert type_name, f"name the Graph type of {path} in ROUTES"
            response = _get(graph, target)
            if (
                "auditLogs/signIns" in target
                and response.status_code == 400
                and "$select" in target
            ):
                continue  # the fake refuses $select on signIns, as Graph does
            assert response.status_code == 200, (target, response.text[:300])
            body = response.json()
            items = body.get("value", [body])
            assert items, f"{target}: seed the tenant so that something comes back"
            for item in items:
                kind = str(item.get("@odata.type", "")).removeprefix("#microsoft.graph.")
                found = problems(item, f"graph.{kind or type_name}", target)
                assert not found, found
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("target", ["/groups/{missing}", "/users?$filter=nonsense"])
def test_the_fakes_errors_have_graphs_error_shape(
    tenant: tuple[FakeGraph, dict[str, str]], target: str
) -> None:
    graph, _ = tenant
    response = _get(graph, target.format(missing="00000000-0000-0000-0000-000000000000"))
    assert response.status_code in (400, 404)
    error = response.json()["error"]
    assert set(error) <= ERROR_MEMBERS and isinstance(error["code"], str) and error["message"]


def test_a_user_without_a_manager_is_graphs_404(
    tenant: tuple[FakeGraph, dict[str, str]],
) -> None:
    """Graph answers an unset manager with 404 Request_ResourceNotFound naming 'manager'."""
    graph, _ = tenant
    bob = next(u.id for u in graph.users.values() if u.upn == "bob@contoso.test")
    response = _get(graph, f"/users/{bob}/manager?$select=id,userPrincipalName")
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) <= ERROR_MEMBERS and error["code"] == "Request_ResourceNotFound"
    assert error["message"].startswith("Resource 'manager' does not exist")


@pytest.mark.parametrize("kind", ["user", "group"])
@pytest.mark.parametrize("listing", ["members", "transitiveMembers"])
def test_the_fake_casts_as_graph_does(
    tenant: tuple[FakeGraph, dict[str, str]], kind: str, listing: str
) -> None:
    """Graph takes the cast segment with and without the namespace alias: reclaim sends
    microsoft.graph.user, Microsoft's SDK sends graph.user."""
    graph, ids = tenant
    answers = [
        _get(graph, f"/groups/{ids['group']}/{listing}/{cast}.{kind}")
        for cast in ("microsoft.graph", "graph")
    ]
    assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
    full, short = ([i["id"] for i in a.json()["value"]] for a in answers)
    assert full == short and full
    assert {i["@odata.type"] for a in answers for i in a.json()["value"]} == {
        f"#microsoft.graph.{kind}"
    }

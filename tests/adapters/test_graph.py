"""GraphDirectory against the Graph and token-endpoint fakes over real HTTPS (real msal, requests)."""

from __future__ import annotations

import base64
import datetime as dt
import math
import pathlib
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from reclaim.adapters import graph as graph_package
from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient, RetryPolicy, shared_client
from reclaim.adapters.graph.directory import GraphDirectory
from reclaim.adapters.graph.paths import member_ref_path
from reclaim.adapters.graph.signins import EntraSignInsUsage
from reclaim.domain.model import User
from reclaim.errors import ConfigurationError, GroupRefused, UserNotFound
from reclaim.ports import AddOutcome, RemovalOutcome
from reclaim.settings import Settings
from tests.fakes.graph import FakeGraph, fake_graph

__all__ = ["fake_graph"]  # the fixture, imported for pytest


@dataclass
class FakeClock:
    """Injected into RetryPolicy: records each sleep and moves time on, without waiting."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_directory(
    graph: FakeGraph, env: dict[str, str] | None = None, clock: FakeClock | None = None
) -> GraphDirectory:
    env = env or graph.settings_env()
    clock = clock or FakeClock()
    retry = RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    client = GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env), retry)
    return GraphDirectory(client)


@pytest.fixture
def directory(fake_graph: FakeGraph) -> GraphDirectory:
    return make_directory(fake_graph)


@dataclass
class Tenant:
    group: str
    sku: str
    users: list[str]


@pytest.fixture
def tenant(fake_graph: FakeGraph) -> Tenant:
    sku = fake_graph.new_sku()
    group = fake_graph.add_group("Salesforce users", licences=[sku])
    users = fake_graph.add_users(5)
    fake_graph.add_member(group, *users)
    return Tenant(group, sku, users)


def user_of(graph: FakeGraph, user_id: str) -> User:
    fake = graph.users[user_id]
    return User(object_id=fake.id, upn=fake.upn, mail=fake.mail or "")


# ---- token --------------------------------------------------------------------------------------


def test_one_token_serves_many_calls_and_every_call_is_one_request(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    directory.check_group(tenant.group)
    fake_graph.clear_log()
    for user_id in tenant.users:
        assert directory.remove(tenant.group, user_of(fake_graph, user_id)).outcome is (
            RemovalOutcome.REMOVED
        )
    assert fake_graph.token_requests == 1
    assert fake_graph.count() == len(tenant.users)  # steady state: one HTTP request per removal
    assert fake_graph.identity.discovery_requests == 1


def test_token_is_renewed_before_it_expires() -> None:
    # msal treats a token as expired 5 minutes before its end: 302 s gives ~2 s of cache life.
    with FakeGraph(expires_in=302) as graph:
        group = graph.add_group("g")
        directory = make_directory(graph)
        directory.check_group(group)
        directory.check_group(group)
        assert graph.token_requests == 1
        threading.Event().wait(2.1)
        directory.check_group(group)
        assert graph.token_requests == 2


def test_wrong_client_secret_is_a_configuration_error_without_the_value(
    fake_graph: FakeGraph, tenant: Tenant
) -> None:
    env = fake_graph.settings_env()
    variable = "RECLAIM_SECRET_GRAPH_CLIENT_SECRET"
    env[variable] = "not-the-secret-value"
    directory = make_directory(fake_graph, env)
    with pytest.raises(ConfigurationError) as caught:
        directory.check_group(tenant.group)
    assert "AADSTS7000215" in str(caught.value)
    assert "not-the-secret-value" not in str(caught.value)
    assert fake_graph.client_secret not in str(caught.value)
    # Rotated in the vault: the next call reads the secret again and gets on.
    env[variable] = fake_graph.client_secret
    assert directory.check_group(tenant.group).display_name == "Salesforce users"


def test_unknown_tenant_is_a_configuration_error(fake_graph: FakeGraph) -> None:
    env = fake_graph.settings_env() | {"RECLAIM_TENANT_ID": "no-such-tenant"}
    with pytest.raises(ConfigurationError, match="RECLAIM_TENANT_ID"):
        make_directory(fake_graph, env).check_group("anything")


def test_missing_settings_are_named(fake_graph: FakeGraph) -> None:
    env = {"RECLAIM_SECRETS_SOURCE": "env"}
    with pytest.raises(ConfigurationError) as caught:
        GraphDirectory.from_settings(Settings.from_env(env), EnvironmentSecrets(env))
    for variable in ("RECLAIM_TENANT_ID", "RECLAIM_CLIENT_ID", "RECLAIM_GRAPH_CLIENT_SECRET_NAME"):
        assert variable in str(caught.value)


def _certificate() -> tuple[str, str, bytes]:
    """(PEM key + certificate, certificate PEM, PKCS#12 bytes) of a fresh RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reclaim-app")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    pfx = pkcs12.serialize_key_and_certificates(
        b"reclaim-app", key, certificate, None, serialization.NoEncryption()
    )
    return key_pem + cert_pem, cert_pem, pfx


@pytest.mark.parametrize("form", ["pem", "pkcs12"])
def test_certificate_credential_from_the_secret_store(fake_graph: FakeGraph, form: str) -> None:
    bundle, cert_pem, pfx = _certificate()
    fake_graph.identity.add_client("cert-app", certificate_pem=cert_pem)
    group = fake_graph.add_group("g")
    env = fake_graph.settings_env() | {
        "RECLAIM_CLIENT_ID": "cert-app",
        "RECLAIM_GRAPH_CLIENT_SECRET_NAME": "",
        "RECLAIM_GRAPH_CERTIFICATE_NAME": "graph-cert",
        "RECLAIM_SECRET_GRAPH_CERT": bundle if form == "pem" else base64.b64encode(pfx).decode(),
    }
    make_directory(fake_graph, env).check_group(group)
    (request,) = fake_graph.identity.token_requests
    assert (request.client_id, request.method, request.status) == ("cert-app", "assertion", 200)


def test_a_certificate_the_app_does_not_know_is_refused(fake_graph: FakeGraph) -> None:
    bundle, _, _ = _certificate()
    _, other_cert, _ = _certificate()
    fake_graph.identity.add_client("cert-app", certificate_pem=other_cert)
    env = fake_graph.settings_env() | {
        "RECLAIM_CLIENT_ID": "cert-app",
        "RECLAIM_GRAPH_CERTIFICATE_NAME": "graph-cert",
        "RECLAIM_SECRET_GRAPH_CERT": bundle,
    }
    with pytest.raises(ConfigurationError, match="AADSTS700027") as caught:
        make_directory(fake_graph, env).check_group("g")
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_certificate_secret_without_its_key_is_a_configuration_error(
    fake_graph: FakeGraph,
) -> None:
    _, cert_pem, _ = _certificate()
    env = fake_graph.settings_env() | {
        "RECLAIM_GRAPH_CERTIFICATE_NAME": "graph-cert",
        "RECLAIM_SECRET_GRAPH_CERT": cert_pem,
    }
    with pytest.raises(ConfigurationError, match="graph-cert"):
        make_directory(fake_graph, env).check_group("g")


# ---- groups -------------------------------------------------------------------------------------


def test_check_group_reads_an_assigned_group(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    info = directory.check_group(tenant.group)
    assert (info.id, info.display_name) == (tenant.group, "Salesforce users")
    (request,) = fake_graph.requests
    assert request.query["$select"].split(",") == [
        "id",
        "displayName",
        "groupTypes",
        "membershipRule",
        "onPremisesSyncEnabled",
        "securityEnabled",
        "mailEnabled",
        "assignedLicenses",
    ]


def test_dynamic_group_is_refused_with_what_to_do(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("All sales (dynamic)", dynamic=True)
    with pytest.raises(GroupRefused) as caught:
        directory.check_group(group)
    message = str(caught.value)
    assert "All sales (dynamic)" in message and group in message
    assert "dynamic membership" in message and "membership rule" in message


def test_group_synced_from_on_premises_is_routed_to_the_ad_path(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("SF-Licensed", synced=True)
    with pytest.raises(GroupRefused) as caught:
        directory.check_group(group)
    message = str(caught.value)
    assert "SF-Licensed" in message and "on-premises" in message
    assert "'ad'" in message and "nexthink-remote-action" in message


@pytest.mark.parametrize("group", ["6f1c0000-0000-0000-0000-000000000000", "Salesforce users"])
def test_missing_group_is_refused_as_not_found(directory: GraphDirectory, group: str) -> None:
    with pytest.raises(GroupRefused, match="not found"):
        directory.check_group(group)


# ---- members ------------------------------------------------------------------------------------


def test_members_follow_next_links_across_pages(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    fake_graph.page_size = 3
    group = fake_graph.add_group("g")
    users = [
        fake_graph.add_user(
            f"u{n}@contoso.test",
            mail=f"U{n}@Contoso.test",
            sam_account_name=f"u{n}",
            sid=f"S-1-5-21-1-2-3-{1000 + n}",
            display_name=f"User {n}",
        )
        for n in range(8)
    ]
    fake_graph.add_member(group, *users)
    members = list(directory.members(group))
    assert [m.user.object_id for m in members] == users
    first = members[0].user
    assert (first.upn, first.mail, first.sam_account_name, first.sid, first.display_name) == (
        "u0@contoso.test",
        "U0@Contoso.test",
        "u0",
        "S-1-5-21-1-2-3-1000",
        "User 0",
    )
    assert fake_graph.count("GET", "/groups/*/members/microsoft.graph.user") == 3
    assert all(r.query["$top"] == "999" for r in fake_graph.requests)


@pytest.mark.parametrize("count", [0, 999, 1000, 1999])
def test_listing_takes_ceil_n_over_999_requests(
    fake_graph: FakeGraph, directory: GraphDirectory, count: int
) -> None:
    group = fake_graph.add_group("g")
    fake_graph.add_member(group, *fake_graph.add_users(count))
    assert sum(1 for _ in directory.members(group)) == count
    assert fake_graph.count("GET", "/groups/*/members/*") == max(1, math.ceil(count / 999))


def test_members_of_a_missing_group_is_refused(directory: GraphDirectory) -> None:
    with pytest.raises(GroupRefused):
        list(directory.members("6f1c0000-0000-0000-0000-000000000000"))


# ---- remove and add -----------------------------------------------------------------------------


def test_remove_then_remove_again_is_not_member(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    user = user_of(fake_graph, tenant.users[0])
    assert directory.remove(tenant.group, user).outcome is RemovalOutcome.REMOVED
    assert not fake_graph.is_member(tenant.group, user.object_id)
    again = directory.remove(tenant.group, user)
    assert again.outcome is RemovalOutcome.NOT_MEMBER
    assert tenant.users[0] in fake_graph.users  # the user object is untouched


def test_remove_by_upn_resolves_the_object_id_first(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    upn = fake_graph.users[tenant.users[1]].upn
    assert directory.remove(tenant.group, User(upn=upn.upper())).outcome is RemovalOutcome.REMOVED
    lookup, delete = fake_graph.requests
    assert (lookup.method, lookup.path) == ("GET", "/users")
    assert delete.path == f"/groups/{tenant.group}/members/{tenant.users[1]}/$ref"


def test_remove_of_an_unknown_user_is_user_not_found(
    directory: GraphDirectory, tenant: Tenant
) -> None:
    with pytest.raises(UserNotFound):
        directory.remove(tenant.group, User(mail="nobody@contoso.test"))


def test_odata_literals_are_quoted_and_urls_encoded(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    user_id = fake_graph.add_user("o'brien+sales@contoso.test")
    fake_graph.add_member(tenant.group, user_id)
    result = directory.remove(tenant.group, User(upn="o'brien+sales@contoso.test"))
    assert result.outcome is RemovalOutcome.REMOVED
    lookup = fake_graph.requests[0]
    assert lookup.query["$filter"] == (
        "userPrincipalName eq 'o''brien+sales@contoso.test' "
        "or mail eq 'o''brien+sales@contoso.test'"
    )
    assert "%2B" in lookup.target  # a literal + would read as a space


def test_add_then_add_again_is_already_member(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    newcomer = fake_graph.add_user("newcomer@contoso.test")
    user = user_of(fake_graph, newcomer)
    assert directory.add(tenant.group, user) is AddOutcome.ADDED
    assert fake_graph.is_member(tenant.group, newcomer)
    assert directory.add(tenant.group, user) is AddOutcome.ALREADY_MEMBER
    post = fake_graph.requests[0]
    assert post.path == f"/groups/{tenant.group}/members/$ref"
    assert post.body == {"@odata.id": f"{fake_graph.url}/directoryObjects/{newcomer}"}


def test_add_of_a_user_that_does_not_exist_is_user_not_found(
    directory: GraphDirectory, tenant: Tenant
) -> None:
    with pytest.raises(UserNotFound):
        directory.add(tenant.group, User(object_id="6f1c0000-0000-0000-0000-00000000dead"))


# ---- one request per removal --------------------------------------------------------------------


def test_remove_is_one_request_the_seat_is_checked_later(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    """The seat check moved after the fact (reclaim.adapters.graph.licences): nothing is read
    before the DELETE, so steady-state removal is one request per removal."""
    fake_graph.users[tenant.users[0]].direct_licences.append(tenant.sku)
    for user_id in tenant.users[:2]:
        result = directory.remove(tenant.group, user_of(fake_graph, user_id))
        assert result.outcome is RemovalOutcome.REMOVED
    assert [r.method for r in fake_graph.requests] == ["DELETE", "DELETE"]


# ---- bulk ---------------------------------------------------------------------------------------


def test_resolve_batches_twenty_lookups_per_request(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    ids = fake_graph.add_users(23)
    fake_graph.add_user("o'neil@contoso.test", mail="olivia.oneil@contoso.test")
    wanted = [fake_graph.users[i].upn for i in ids] + [
        "olivia.oneil@contoso.test",  # by mail
        ids[0],  # by object id
        "nobody@contoso.test",
    ]
    found = directory.resolve(wanted)
    assert set(found) == set(wanted) - {"nobody@contoso.test"}
    assert found["olivia.oneil@contoso.test"].upn == "o'neil@contoso.test"
    assert found[ids[0]].upn == fake_graph.users[ids[0]].upn
    assert fake_graph.count("POST", "/$batch") == 2
    assert fake_graph.count(in_batch=True) == len(wanted)


def test_remove_many_and_add_many_give_one_outcome_per_user(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("g")
    ids = fake_graph.add_users(45)
    fake_graph.add_member(group, *ids[:40])  # the last five are not members
    users = [user_of(fake_graph, i) for i in ids]
    users[3] = User(upn=users[3].upn)  # no object id: resolved first
    users.append(User(upn="ghost@contoso.test"))
    removed = directory.remove_many(group, users)
    assert [o.user for o in removed] == users
    assert [o.outcome.outcome if o.outcome else None for o in removed] == (
        [RemovalOutcome.REMOVED] * 40 + [RemovalOutcome.NOT_MEMBER] * 5 + [None]
    )
    assert isinstance(removed[-1].error, UserNotFound)
    assert not fake_graph.groups[group].members
    assert fake_graph.count("POST", "/$batch") == 1 + 3  # one resolve batch, 45 deletes in 3

    fake_graph.add_member(group, ids[0])
    restored = directory.add_many(group, users[:25])
    assert [o.outcome for o in restored] == [AddOutcome.ALREADY_MEMBER] + [AddOutcome.ADDED] * 24
    assert set(fake_graph.groups[group].members) == set(ids[:25])


def test_batch_ids_are_unique_and_batches_hold_at_most_twenty(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("g")
    ids = fake_graph.add_users(41)
    fake_graph.add_member(group, *ids)
    directory.remove_many(group, [user_of(fake_graph, i) for i in ids])
    batches = [r.body["requests"] for r in fake_graph.requests if r.path == "/$batch"]
    assert [len(b) for b in batches] == [20, 20, 1]
    assert all(len({item["id"] for item in b}) == len(b) for b in batches)


# ---- the /$ref guard ----------------------------------------------------------------------------


def test_every_delete_the_adapter_sends_ends_in_ref(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    """Without /$ref Graph deletes the user object itself, not the membership."""
    users = [user_of(fake_graph, i) for i in tenant.users]
    directory.remove(tenant.group, users[0])
    directory.remove(tenant.group, User(upn=users[1].upn))
    directory.remove(tenant.group, users[0])  # not a member any more
    directory.remove_many(tenant.group, [*users[2:], User(mail=users[1].mail)])
    deletes = [r for r in fake_graph.requests if r.method == "DELETE"]
    assert len(deletes) == 7
    assert all(r.path.endswith("/$ref") for r in deletes)
    assert fake_graph.deleted_users == []
    assert set(tenant.users) <= set(fake_graph.users)


@given(group=st.text(min_size=1), object_id=st.text(min_size=1))
def test_member_ref_path_ends_in_ref_whatever_the_ids(group: str, object_id: str) -> None:
    path = member_ref_path(group, object_id)
    segments = path.split("/")
    assert path.endswith("/$ref")
    assert len(segments) == 6
    assert [unquote(s) for s in segments] == ["", "groups", group, "members", object_id, "$ref"]
    assert "?" not in path and "#" not in path


def test_every_delete_in_the_adapter_source_goes_through_member_ref_path() -> None:
    package = pathlib.Path(graph_package.__file__ or "").parent
    source = "\n".join(module.read_text() for module in sorted(package.glob("*.py")))
    calls = re.findall(r'"DELETE",\s*([^\n]+)', source)
    assert calls, "the adapter sends no DELETE?"
    assert all(call.startswith("member_ref_path(") for call in calls), calls


# ---- sharing ------------------------------------------------------------------------------------


def test_requests_carry_low_throttle_priority(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    directory.check_group(tenant.group)
    list(directory.members(tenant.group))
    directory.remove_many(tenant.group, [User(upn=fake_graph.users[tenant.users[0]].upn)])
    assert fake_graph.requests
    assert all(r.headers.get("x-ms-throttle-priority") == "low" for r in fake_graph.requests)


def test_one_directory_is_safe_to_share_between_threads(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("g")
    ids = fake_graph.add_users(80)
    fake_graph.add_member(group, *ids)
    results: list[RemovalOutcome] = []
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            for user_id in chunk:
                results.append(directory.remove(group, user_of(fake_graph, user_id)).outcome)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(ids[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [RemovalOutcome.REMOVED] * 80
    assert not fake_graph.groups[group].members
    assert fake_graph.token_requests == 1


def test_directory_and_usage_source_share_one_client(fake_graph: FakeGraph) -> None:
    env = fake_graph.settings_env()
    settings, secrets = Settings.from_env(env), EnvironmentSecrets(env)
    directory = GraphDirectory.from_settings(settings, secrets)
    usage = EntraSignInsUsage.from_settings(settings, secrets)
    assert shared_client(settings, secrets) is directory._client is usage._client
    group = fake_graph.add_group("g")
    directory.check_group(group)
    assert fake_graph.token_requests == 1

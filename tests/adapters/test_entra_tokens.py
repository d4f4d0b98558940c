"""The admin token verifier against the fake tenant over real HTTPS: TLS, key caching, claims."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reclaim.adapters.entra_tokens import EntraTokenVerifier
from reclaim.errors import ConfigurationError, TransientError, Unauthenticated
from tests.fakes.issuer import ADMIN, API_APP_ID_URI, API_CLIENT_ID, READER, FakeIssuer, new_key


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    with FakeIssuer() as fake:
        yield fake


def verifier(issuer: FakeIssuer, **overrides: object) -> EntraTokenVerifier:
    options: dict[str, object] = {
        "authority_host": issuer.authority_host,
        "tenant_id": issuer.tenant_id,
        "audiences": (API_CLIENT_ID, API_APP_ID_URI),
        "ca_bundle": str(issuer.ca_file),
        **overrides,
    }
    return EntraTokenVerifier(**options)  # type: ignore[arg-type]


def test_v1_and_v2_tokens_name_the_caller_and_their_roles(issuer: FakeIssuer) -> None:
    check = verifier(issuer)
    v2 = check.identify(f"Bearer {issuer.mint(roles=(READER,))}")
    assert (v2.upn, v2.roles, v2.tenant_id) == ("ada@contoso.example", {READER}, issuer.tenant_id)
    assert v2.label == "ada@contoso.example (oid 0d6f1b7e-5c2a-4b8e-9f00-00000000a11a)"
    v1 = check.identify(f"Bearer {issuer.mint(version='1.0')}")
    assert (v1.upn, v1.roles, v1.app_id) == (
        "ada@contoso.example",
        {ADMIN},
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    )


def test_the_keys_are_fetched_with_tls_validation_not_the_environments_ca(
    issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's REQUESTS_CA_BUNDLE trusting the fake must not make an untrusted host trusted.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(issuer.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(issuer.ca_file))
    with pytest.raises(TransientError, match="cannot be reached: SSLError"):
        verifier(issuer, ca_bundle="").identify(f"Bearer {issuer.mint()}")
    assert issuer.jwks_requests == 0


def test_keys_are_fetched_once_and_unknown_kids_cannot_hammer_the_tenant(
    issuer: FakeIssuer,
) -> None:
    check = verifier(issuer)
    for _ in range(20):
        check.identify(f"Bearer {issuer.mint()}")
    stranger = new_key()
    for _ in range(20):
        with pytest.raises(Unauthenticated, match="not one the tenant publishes"):
            check.identify(f"Bearer {issuer.mint(key=stranger)}")
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)  # PyJWKClient's cooldown


def test_a_missing_tenant_or_audience_closes_the_door(issuer: FakeIssuer) -> None:
    with pytest.raises(ConfigurationError, match="RECLAIM_ADMIN_AUDIENCE"):
        verifier(issuer, audiences=())
    with pytest.raises(ConfigurationError, match="RECLAIM_TENANT_ID"):
        verifier(issuer, tenant_id="")


def test_a_tenant_the_authority_does_not_know_is_a_configuration_error(
    issuer: FakeIssuer,
) -> None:
    check = verifier(issuer, tenant_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ConfigurationError, match="no OpenID configuration"):
        check.identify(f"Bearer {issuer.mint()}")


def test_roles_that_are_not_a_list_of_strings_give_no_role(issuer: FakeIssuer) -> None:
    check = verifier(issuer)
    assert check.identify(f"Bearer {issuer.mint(roles=None)}").roles == frozenset()
    token = issuer.mint(roles="Reclaim.Admin")
    assert check.identify(f"Bearer {token}").roles == frozenset()

"""GraphDirectory under Graph's faults: throttling, 5xx, slow answers, malformed JSON, expired
tokens, missing permissions, dropped connections. Sleeps go through an injected clock."""

from __future__ import annotations

import time

import pytest

from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient, RetryPolicy
from reclaim.adapters.graph.directory import GraphDirectory
from reclaim.domain.model import User
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    PermanentError,
    PermissionDenied,
    SourceError,
    TransientError,
)
from reclaim.ports import RemovalOutcome
from reclaim.settings import Settings
from tests.adapters.test_graph import FakeClock, Tenant, make_directory, user_of
from tests.fakes.graph import FakeGraph, Fault, fake_graph

__all__ = ["fake_graph"]  # the fixture, imported for pytest

REF = "/groups/*/members/*/$ref"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def directory(fake_graph: FakeGraph, clock: FakeClock) -> GraphDirectory:
    return make_directory(fake_graph, clock=clock)


@pytest.fixture
def tenant(fake_graph: FakeGraph) -> Tenant:
    sku = fake_graph.new_sku()
    group = fake_graph.add_group("Salesforce users", licences=[sku])
    users = fake_graph.add_users(5)
    fake_graph.add_member(group, *users)
    return Tenant(group, sku, users)


# ---- throttling and 5xx -------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, Fault.throttled(retry_after=7), Fault.throttled(retry_after=3))
    result = directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    assert result.outcome is RemovalOutcome.REMOVED
    assert clock.sleeps == [7, 3]
    assert fake_graph.count("DELETE") == 3


@pytest.mark.parametrize("fault", [Fault.unavailable(), Fault.gateway_timeout()])
def test_503_and_504_without_retry_after_back_off_exponentially(
    fake_graph: FakeGraph,
    directory: GraphDirectory,
    clock: FakeClock,
    tenant: Tenant,
    fault: Fault,
) -> None:
    fake_graph.inject("GET", "/groups/*", fault, fault, fault)
    assert directory.check_group(tenant.group).display_name == "Salesforce users"
    assert clock.sleeps == [1.0, 2.0, 4.0]  # jitter pinned to the whole step


def test_backoff_has_jitter_within_half_and_whole_step() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=lambda: 0.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 6, 10)] == [0.5, 1.0, 2.0, 15.0, 15.0]


def test_503_honours_retry_after_too(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("GET", "/groups/*", Fault.unavailable(retry_after=5))
    directory.check_group(tenant.group)
    assert clock.sleeps == [5]


def test_throttling_beyond_the_attempts_is_transient_with_retry_after(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, *[Fault.throttled(retry_after=2)] * 5)
    with pytest.raises(TransientError) as caught:
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    assert caught.value.retry_after == 2
    assert fake_graph.count("DELETE") == 5  # bounded attempts
    assert fake_graph.is_member(tenant.group, tenant.users[0])


def test_a_retry_after_beyond_the_time_budget_hands_back_at_once(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, Fault.throttled(retry_after=300))
    with pytest.raises(TransientError) as caught:
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    assert caught.value.retry_after == 300  # the queue waits; this worker does not
    assert clock.sleeps == []


def test_429_inside_a_batch_retries_only_the_throttled_items(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, Fault.throttled(retry_after=4), skip=3)
    outcomes = directory.remove_many(tenant.group, [user_of(fake_graph, u) for u in tenant.users])
    assert [o.outcome.outcome for o in outcomes if o.outcome] == [RemovalOutcome.REMOVED] * 5
    assert clock.sleeps == [4]
    batches = [r.body["requests"] for r in fake_graph.requests if r.path == "/$batch"]
    assert [len(b) for b in batches] == [5, 1]
    assert batches[1][0]["url"] == batches[0][3]["url"]


def test_an_item_still_throttled_at_the_end_is_a_transient_error_for_that_user(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    one_user = f"/groups/*/members/{tenant.users[1]}/$ref"
    fake_graph.inject("DELETE", one_user, *[Fault.throttled(retry_after=1)] * 5)
    outcomes = directory.remove_many(tenant.group, [user_of(fake_graph, u) for u in tenant.users])
    errors = [type(o.error) for o in outcomes]
    assert errors == [type(None), TransientError, type(None), type(None), type(None)]
    assert outcomes[1].error.retry_after == 1  # type: ignore[union-attr]
    assert fake_graph.is_member(tenant.group, tenant.users[1])
    assert fake_graph.count("DELETE", one_user) == 5  # the policy's attempts, then handed back


def test_a_throttled_batch_request_is_retried_whole(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("POST", "/$batch", Fault.throttled(retry_after=2))
    outcomes = directory.remove_many(tenant.group, [user_of(fake_graph, u) for u in tenant.users])
    assert all(o.outcome for o in outcomes)
    assert clock.sleeps == [2]


def test_write_token_bucket_throttles_and_nothing_is_lost() -> None:
    """The benchmark knob: writes beyond the bucket get 429 + Retry-After; with real (short)
    waits every removal still lands exactly once."""
    with FakeGraph() as graph:
        group = graph.add_group("g")
        ids = graph.add_users(12)
        graph.add_member(group, *ids)
        graph.throttle_writes(capacity=4, refill_per_second=40)
        retry = RetryPolicy(sleep=lambda s: time.sleep(min(s, 0.1)), max_attempts=10)
        env = graph.settings_env()
        directory = GraphDirectory(
            GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env), retry)
        )
        results = [directory.remove(group, user_of(graph, i)).outcome for i in ids]
        assert results == [RemovalOutcome.REMOVED] * 12
        throttled = [r for r in graph.requests if r.status == 429]
        assert throttled
        assert all(r.method == "DELETE" for r in throttled)
        assert graph.count("DELETE", REF) == 12 + len(throttled)


def test_write_throttle_answer_has_graph_headers() -> None:
    with FakeGraph() as graph:
        group = graph.add_group("g")
        ids = graph.add_users(2)
        graph.add_member(group, *ids)
        graph.throttle_writes(capacity=1, refill_per_second=0.01)
        clock = FakeClock()
        directory = make_directory(graph, clock=clock)
        directory.remove(group, user_of(graph, ids[0]))
        with pytest.raises(TransientError) as caught:
            directory.remove(group, user_of(graph, ids[1]))
        assert caught.value.retry_after == 100  # one token at 0.01/s: beyond the budget


# ---- slow, malformed, dropped -------------------------------------------------------------------


def _client(graph: FakeGraph, clock: FakeClock, read_timeout: float) -> GraphDirectory:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    return GraphDirectory(
        GraphClient(
            base_url=graph.url,
            authority=f"{graph.authority_host}/{graph.tenant_id}",
            client_id=graph.client_id,
            load_credential=lambda: graph.client_secret,
            ca_bundle=str(graph.ca_file),
            retry=retry,
            timeout=(2.0, read_timeout),
        )
    )


def test_a_slow_answer_within_the_timeout_is_simply_awaited(
    fake_graph: FakeGraph, clock: FakeClock, tenant: Tenant
) -> None:
    directory = _client(fake_graph, clock, read_timeout=2.0)
    fake_graph.inject("GET", "/groups/*", Fault.slow(0.3))
    directory.check_group(tenant.group)
    assert clock.sleeps == []


def test_an_answer_slower_than_the_timeout_is_retried(
    fake_graph: FakeGraph, clock: FakeClock, tenant: Tenant
) -> None:
    directory = _client(fake_graph, clock, read_timeout=0.3)
    fake_graph.inject("GET", "/groups/*", Fault.slow(1.0))
    assert directory.check_group(tenant.group).display_name == "Salesforce users"
    assert clock.sleeps == [1.0]


def test_malformed_json_is_retried(
    fake_graph: FakeGraph, directory: GraphDirectory, clock: FakeClock, tenant: Tenant
) -> None:
    fake_graph.inject("GET", "/groups/*", Fault.malformed_json())
    assert directory.check_group(tenant.group).display_name == "Salesforce users"
    assert len(clock.sleeps) == 1


def test_malformed_json_that_persists_is_a_clear_transient_error(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.inject("GET", "/groups/*", *[Fault.malformed_json()] * 5)
    with pytest.raises(TransientError, match="malformed JSON"):
        directory.check_group(tenant.group)


def test_a_listing_that_fails_part_way_raises_source_error(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    fake_graph.page_size = 3
    group = fake_graph.add_group("g")
    fake_graph.add_member(group, *fake_graph.add_users(8))
    fake_graph.inject("GET", "/groups/*/members/*", *[Fault.unavailable()] * 5, skip=1)
    seen = []
    with pytest.raises(SourceError, match="part-way"):
        for member in directory.members(group):
            seen.append(member)
    assert len(seen) == 3  # the first page, and then the run fails closed


def test_malformed_json_in_a_listing_raises_source_error(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.inject("GET", "/groups/*/members/*", *[Fault.malformed_json()] * 5)
    with pytest.raises(SourceError, match="malformed JSON"):
        list(directory.members(tenant.group))


def test_connection_refused_is_transient(fake_graph: FakeGraph, clock: FakeClock) -> None:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 1.0, max_attempts=3)
    directory = GraphDirectory(
        GraphClient(
            base_url="https://127.0.0.1:9/v1.0",  # nothing listens on the discard port
            authority=f"{fake_graph.authority_host}/{fake_graph.tenant_id}",
            client_id=fake_graph.client_id,
            load_credential=lambda: fake_graph.client_secret,
            ca_bundle=str(fake_graph.ca_file),
            retry=retry,
        )
    )
    with pytest.raises(TransientError, match="connection failed"):
        directory.check_group("g")
    assert clock.sleeps == [1.0, 2.0]


def test_an_unreachable_authority_is_transient(clock: FakeClock) -> None:
    directory = GraphDirectory(
        GraphClient(
            base_url="https://127.0.0.1:9/v1.0",
            authority="https://127.0.0.1:9/tenant",
            client_id="app",
            load_credential=lambda: "secret",
            retry=RetryPolicy(sleep=clock.sleep, clock=clock),
        )
    )
    with pytest.raises(TransientError, match="could not be reached"):
        directory.check_group("g")


# ---- tokens and permissions ---------------------------------------------------------------------


def test_a_token_expired_mid_run_is_replaced_once(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    fake_graph.expire_tokens()
    result = directory.remove(tenant.group, user_of(fake_graph, tenant.users[1]))
    assert result.outcome is RemovalOutcome.REMOVED
    assert fake_graph.token_requests == 2
    assert [r.status for r in fake_graph.requests] == [204, 401, 204]


def test_a_token_refused_twice_is_a_configuration_error(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.inject("GET", "/groups/*", Fault.expired_token(), Fault.expired_token())
    with pytest.raises(ConfigurationError, match="RECLAIM_TENANT_ID"):
        directory.check_group(tenant.group)
    assert fake_graph.token_requests == 2


def test_missing_write_permission_is_named(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.granted = {"GroupMember.Read.All", "User.Read.All"}
    with pytest.raises(ConfigurationError, match=r"GroupMember\.ReadWrite\.All"):
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    with pytest.raises(ConfigurationError, match=r"GroupMember\.ReadWrite\.All"):
        directory.remove_many(tenant.group, [user_of(fake_graph, tenant.users[0])])
    assert fake_graph.is_member(tenant.group, tenant.users[0])


def test_missing_user_read_permission_is_named(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All"}
    upn = fake_graph.users[tenant.users[0]].upn
    with pytest.raises(ConfigurationError, match=r"User\.Read\.All"):
        directory.remove(tenant.group, User(upn=upn))
    with pytest.raises(ConfigurationError, match=r"User\.Read\.All"):
        directory.resolve([upn])


def test_missing_group_read_permission_is_named(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.granted = {"User.Read.All"}
    with pytest.raises(ConfigurationError, match=r"GroupMember\.Read\.All"):
        directory.check_group(tenant.group)
    with pytest.raises(ConfigurationError, match=r"GroupMember\.Read\.All"):
        list(directory.members(tenant.group))


def test_a_removal_graph_refuses_is_a_permanent_error(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("SF-Licensed", synced=True)
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)
    with pytest.raises(PermanentError, match="Request_BadRequest"):
        directory.remove(group, user_of(fake_graph, user))


# ---- issue 13: lost answers, refusals of one object, outages ------------------------------------


def test_a_lost_answer_to_our_delete_is_reported_as_our_own_write(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, Fault.connection_reset(after_work=True))
    result = directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    assert result.outcome is RemovalOutcome.NOT_MEMBER and result.after_own_write
    assert fake_graph.count("DELETE") == 2 and not fake_graph.is_member(
        tenant.group, tenant.users[0]
    )
    fake_graph.remove_member(tenant.group, tenant.users[1])  # someone else removed her first
    result = directory.remove(tenant.group, user_of(fake_graph, tenant.users[1]))
    assert result.outcome is RemovalOutcome.NOT_MEMBER and not result.after_own_write


def test_a_missing_permission_names_it_and_a_protected_user_fails_alone(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    protected = fake_graph.add_user("vip@contoso.test", restricted=True)
    fake_graph.add_member(tenant.group, protected)
    with pytest.raises(PermanentError, match="restricted management") as caught:
        directory.remove(tenant.group, user_of(fake_graph, protected))
    assert not isinstance(caught.value, ConfigurationError)
    fake_graph.granted = {"GroupMember.Read.All", "User.Read.All"}
    with pytest.raises(PermissionDenied) as denied:
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    assert denied.value.permission == "GroupMember.ReadWrite.All"


def test_5xx_to_the_end_is_an_outage_and_throttling_is_not(
    fake_graph: FakeGraph, directory: GraphDirectory, tenant: Tenant
) -> None:
    fake_graph.inject("DELETE", REF, *[Fault.unavailable()] * 5)
    with pytest.raises(DirectoryOutage):
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[0]))
    fake_graph.inject("DELETE", REF, *[Fault.throttled(retry_after=1)] * 5)
    with pytest.raises(TransientError) as caught:
        directory.remove(tenant.group, user_of(fake_graph, tenant.users[1]))
    assert not isinstance(caught.value, DirectoryOutage)

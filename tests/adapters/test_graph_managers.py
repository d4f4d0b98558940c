"""GraphManagers against the Graph fake over real HTTPS: GET /users/{id}/manager with a $select,
the manager read back whole, 404 (no manager, or no such user) as "none", a missing permission
named, and throttling that outlasts the retries handed back to be tried again."""

from __future__ import annotations

import pytest

from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient, RetryPolicy
from reclaim.adapters.graph.managers import GraphManagers
from reclaim.domain.model import User
from reclaim.errors import ConfigurationError, ReclaimError, TransientError
from reclaim.settings import Settings
from tests.adapters.test_graph import FakeClock
from tests.fakes.graph import FakeGraph, Fault, fake_graph

__all__ = ["fake_graph"]  # the fixture, imported for pytest


@pytest.fixture
def managers(fake_graph: FakeGraph) -> GraphManagers:
    env = fake_graph.settings_env()
    clock = FakeClock()
    retry = RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 1.0, max_attempts=3)
    return GraphManagers(
        GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env), retry)
    )


def test_reads_the_manager_with_the_fields_it_selects(
    fake_graph: FakeGraph, managers: GraphManagers
) -> None:
    boss = fake_graph.add_user("grace@contoso.test", display_name="Grace Hopper", mail="gh@c.test")
    ada = fake_graph.add_user("ada@contoso.test")
    fake_graph.set_manager(ada, boss)

    found = managers.manager(User(object_id=ada, upn="ada@contoso.test"))

    assert found == User(
        object_id=boss, upn="grace@contoso.test", mail="gh@c.test", display_name="Grace Hopper"
    )
    (call,) = [r for r in fake_graph.requests if r.path.endswith("/manager")]
    assert call.query["$select"] == "id,userPrincipalName,mail,displayName"


def test_no_manager_and_no_such_user_are_none(
    fake_graph: FakeGraph, managers: GraphManagers
) -> None:
    ada = fake_graph.add_user("ada@contoso.test")
    assert managers.manager(User(object_id=ada)) is None
    missing = "00000000-0000-0000-0000-000000000000"
    assert managers.manager(User(object_id=missing)) is None
    assert managers.manager(User(sam_account_name="ada")) is None  # nothing to look her up by
    fake_graph.set_manager(ada, None)
    assert managers.manager(User(upn="ada@contoso.test")) is None  # by UPN too


def test_an_id_cannot_walk_to_another_resource(
    fake_graph: FakeGraph, managers: GraphManagers
) -> None:
    with pytest.raises(ReclaimError):  # Graph has no such user id; what matters is the path
        managers.manager(User(object_id="../groups/x?$select=id"))
    (call,) = [r for r in fake_graph.requests if "manager" in r.path]
    assert call.target.startswith("/users/..%2Fgroups%2Fx%3F%24select%3Did/manager?")


def test_without_user_read_all_the_permission_is_named(
    fake_graph: FakeGraph, managers: GraphManagers
) -> None:
    ada = fake_graph.add_user("ada@contoso.test")
    fake_graph.granted = {"GroupMember.ReadWrite.All"}
    with pytest.raises(ConfigurationError, match=r"User\.Read\.All"):
        managers.manager(User(object_id=ada))


def test_throttling_that_outlasts_the_retries_is_transient(
    fake_graph: FakeGraph, managers: GraphManagers
) -> None:
    ada = fake_graph.add_user("ada@contoso.test")
    fake_graph.inject("GET", "/users/*/manager", *[Fault.throttled(1)] * 3)
    with pytest.raises(TransientError):
        managers.manager(User(object_id=ada))

"""A world for the function tests: the real app context over real Azurite (Table storage state,
the Storage removal queue), with an in-memory directory, usage and campaign where
which directory it is does not matter. The registered functions are called through the
azure-functions API (tests/support/functions.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from reclaim import usecases
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.policy import Policy
from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.settings import Settings
from tests.conftest import NOW, asking_policy
from tests.fakes.issuer import FakeIssuer
from tests.support.functions import binding_settings
from tests.support.memory import MemoryAdapters, MemoryCampaign, MemoryDirectory, MemoryUsage

SECRET = "webhook-signing-secret-for-tests"
SECRET_NAME = "reclaim-webhook-secret"
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(10)]
USAGE = [UsageRow(f"u{i}@c.com", 1.0 if i < 4 else 120.0) for i in range(10)]  # u0..u3 idle


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str:
        if name not in self.values:
            raise ConfigurationError(f"secret {name!r} not found")
        return self.values[name]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


@dataclass
class World:
    app: app_context.AppContext
    directory: MemoryDirectory
    adapters: MemoryAdapters
    secrets: DictSecrets
    clock: Clock
    env: dict[str, str]
    ids: Iterator[str]
    issuer: FakeIssuer  # the tenant whose tokens open the manage routes

    def admin(self, **mint: Any) -> dict[str, str]:
        """Headers of a manage-route call with a valid token (Reclaim.Admin unless told)."""
        return self.issuer.bearer(**mint)

    @property
    def ctx(self) -> usecases.Context:
        return self.app.ctx

    @property
    def policy(self) -> Policy:
        return next(iter(self.ctx.policies.values()))

    def use_policies(self, *policies: Policy) -> None:
        self.ctx.policies = {p.name: p for p in policies}

    def run(self, policy: Policy | None = None) -> usecases.RunOutcome:
        return usecases.run_policy(self.ctx, policy or self.policy, self.clock())

    def table_rows(self, suffix: str) -> list[dict[str, Any]]:
        service_client = self.app.queue.account.table_service()  # type: ignore[attr-defined]
        name = self.app.settings.table_prefix + suffix
        return list(service_client.get_table_client(name).list_entities())

    def queued_texts(self, poison: bool = False) -> list[str]:
        """Visible messages of the removal queue (or its poison queue), decoded, not removed."""
        queue = self.app.queue
        client = queue.poison_client if poison else queue.client  # type: ignore[attr-defined]
        try:
            return [m.content for m in client.peek_messages(max_messages=32)]
        except Exception:  # the queue was never created: nothing in it
            return []

    def message_count(self) -> int:
        """Every message of the removal queue, visible or waiting for its delay."""
        try:
            return self.app.queue.client.get_queue_properties().approximate_message_count  # type: ignore[attr-defined]
        except Exception:
            return 0

    def state(self) -> tuple[Any, ...]:
        """Everything an incoming request could change, to assert that nothing did."""
        return (
            self.ctx.store.requests(),
            [(e.id, e.outcome) for e in self.ctx.store.ledger()],
            sorted(e["RowKey"] for e in self.table_rows("Answers")),
            self.message_count(),
        )


@pytest.fixture(scope="session")
def issuer() -> Iterator[FakeIssuer]:
    """One fake Entra ID tenant for the session (its keys and JWKS over HTTPS)."""
    with FakeIssuer() as fake:
        yield fake


@pytest.fixture
def world(storage_env: dict[str, str], issuer: FakeIssuer) -> Iterator[World]:
    env = {
        **binding_settings(),
        **storage_env,
        **issuer.settings(),
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_WEBHOOK_SECRET_NAME": SECRET_NAME,
    }
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    adapters = MemoryAdapters(directory, MemoryUsage(list(USAGE), NOW), MemoryCampaign())
    secrets = DictSecrets({SECRET_NAME: SECRET})
    clock = Clock(NOW)
    policy = asking_policy()
    app = app_context.build(
        Settings.from_env(env),
        env=env,
        policies={policy.name: policy},
        adapters=adapters,
        secrets=secrets,
        clock=clock,
    )
    ids = (f"id-{n:03d}" for n in itertools.count())
    app.ctx.new_id = lambda: next(ids)
    app_context.install(app)
    try:
        yield World(app, directory, adapters, secrets, clock, env, ids, issuer)
    finally:
        app_context.install(None)

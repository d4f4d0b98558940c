"""Shared fixtures. Real servers (Samba AD, Azurite) come from the plugins in tests/support/."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from typing import Any

import pytest

from reclaim.domain.policy import Policy, policies_from_data

pytest_plugins = ["tests.support.samba", "tests.support.azurite", "tests.contracts.answers"]

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)

# A test that names no RECLAIM_STATE_DB (e.g. Graph adapter tests, whose writes keep the fleet's
# write budget in the default state database) must not write into the user's home.
os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp(prefix="reclaim-state-"))


@pytest.fixture
def now() -> datetime:
    return NOW


def make_policy(**overrides: object) -> Policy:
    """A valid policy from the YAML shape, with nested overrides merged in."""
    data: dict = {
        "name": "salesforce",
        "application": "Salesforce Lightning",
        "directory": {"kind": "csv", "group": "SF", "file": "members.csv"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 100, "max_percent_of_group": 100},
        "licence": {"monthly_cost": 25.0},
    }
    if overrides.get("mode") == "enforce":
        # Enforcing needs a directory that can remove (the tests inject an in-memory one) and
        # ask_permission stated: these tests remove without asking unless they say otherwise.
        data["directory"] = {"kind": "ad", "group": "SF"}
        data["ask_permission"] = False
    directory = overrides.get("directory")
    if isinstance(directory, dict) and directory.get("kind", "csv") != "csv":
        data["directory"] = {}  # the members file belongs to kind csv only (validate refuses it)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return policies_from_data({"policies": [data]})[0]


def asking_policy(**overrides: Any) -> Policy:
    """Enforce, asking through the webhook channel; answers within 7 days, silence reclaims."""
    return make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={
            "channel": "webhook",
            "url": "https://survey.example/ask",
            "respond_within": "7d",
        },
        **overrides,
    )

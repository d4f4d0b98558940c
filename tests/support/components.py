"""The one rule for a component the tests need (Samba, Azurite, Chromium, terraform, checkov):
missing in CI is a failure, never a skip; on a developer's machine it skips with what to install."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)

"""Secrets from environment variables, for local runs and CI (RECLAIM_SECRETS_SOURCE=env).

A secret named `graph-client-secret` is read from RECLAIM_SECRET_GRAPH_CLIENT_SECRET: the name
upper-cased, every character that is not a letter or digit replaced by `_`. Chosen explicitly by
settings, never as a silent fallback when Key Vault fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from reclaim.errors import ConfigurationError

PREFIX = "RECLAIM_SECRET_"
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def variable_for(name: str) -> str:
    """The environment variable that holds the secret called `name`."""
    return PREFIX + _NOT_ALNUM.sub("_", name.upper())


class EnvironmentSecrets:
    """reclaim.ports.Secrets over the environment (or any mapping given for tests)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, name: str) -> str:
        if not name:
            raise ConfigurationError("a secret was asked for without a name: set its *_SECRET_NAME")
        variable = variable_for(name)
        value = self._environ.get(variable, "")
        if not value:
            raise ConfigurationError(
                f"secret {name!r} is not set: RECLAIM_SECRETS_SOURCE=env reads it from the "
                f"environment variable {variable}"
            )
        return value

"""Who may use the manage routes: Entra ID app roles, and which role a route needs.

The identity itself is verified by an adapter (reclaim.adapters.entra_tokens); this module only
holds the caller it found and the rule that decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """App roles of the API's app registration (the token's `roles` claim)."""

    ADMIN = "Reclaim.Admin"  # actions: run a policy now, restore, flip the kill switch
    READER = "Reclaim.Reader"  # read-only routes: state and reports


# Methods that read and never change anything; every other method acts.
_READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


def required_role(method: str) -> Role:
    """A route that only reads needs Reclaim.Reader; anything that acts needs Reclaim.Admin."""
    return Role.READER if method.upper() in _READ_ONLY_METHODS else Role.ADMIN


def grants(roles: Iterable[str], needed: Role) -> bool:
    """Admin includes reading; role names are compared exactly, as Entra ID issues them."""
    held = set(roles)
    return Role.ADMIN.value in held or (needed is Role.READER and Role.READER.value in held)


@dataclass(frozen=True)
class Caller:
    """The identity behind a verified token (a user, or an application with an app role)."""

    object_id: str
    tenant_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str = ""
    upn: str = ""  # preferred_username (v2) or upn / unique_name (v1)
    app_id: str = ""  # the client that asked for the token (azp / appid)

    @property
    def label(self) -> str:
        """Who did it, for the audit trail: "ada@contoso.com (oid 1f0c...)"."""
        who = self.upn or self.name or (f"app {self.app_id}" if self.app_id else "unknown")
        return f"{who} (oid {self.object_id})" if self.object_id else who

"""Errors every layer understands; messages say what to fix and never carry a secret value."""

from __future__ import annotations


class ReclaimError(Exception):
    """Base of reclaim's own errors."""


class ConfigurationError(ReclaimError):
    """A setting, permission or policy does not allow the work: an administrator must act."""


class PermissionDenied(ConfigurationError):
    """The directory refused the operation itself (not one object): the app lacks `permission`.
    Every removal of the policy would fail the same way, so its circuit breaker opens."""

    def __init__(self, message: str, permission: str = "") -> None:
        super().__init__(message)
        self.permission = permission


class GroupRefused(ConfigurationError):
    """The group cannot be managed on this path (dynamic, synced from on-premises, missing)."""


class SourceError(ReclaimError):
    """A usage source or directory failed part-way; the run fails closed."""


class TransientError(ReclaimError):
    """Worth trying again later (throttling, 5xx, a dropped connection)."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, unsent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # True only when the write certainly never reached the directory (connection refused,
        # every attempt throttled, no token): otherwise it may have been applied.
        self.unsent = unsent


class DirectoryOutage(TransientError):
    """The directory timed out or answered 5xx: after a few in a row it is treated as down."""


class PermanentError(ReclaimError):
    """This one item cannot succeed as asked (unknown user, rejected by the directory)."""


class UserNotFound(PermanentError):
    """The directory has no such user."""


class Unauthenticated(ReclaimError):
    """A manage route's caller has no acceptable token (missing, malformed, expired, forged...).

    `missing` tells "no credentials at all" apart from "credentials refused" (RFC 6750: only the
    latter carries error="invalid_token")."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing

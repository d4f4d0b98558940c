"""Switches an operator flips during an incident (the kill switch), kept in the state store.

The newest change of a switch decides. The app setting RECLAIM_KILL_SWITCH can only force the kill
switch on: a deployment rewrites app settings, and must not undo an incident response.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

KILL_SWITCH = "kill_switch"
MAX_REASON = 500
MAX_BY = 300


class SwitchError(ValueError):
    """A switch change that cannot be recorded as given (says what to fix)."""


def _clean(text: str, limit: int, what: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise SwitchError(f"{what} may not contain control characters")
    text = text.strip()
    if len(text) > limit:
        raise SwitchError(f"{what} is limited to {limit} characters")
    return text


@dataclass(frozen=True)
class SwitchChange:
    """One flip of a switch: what, who, when, how and why."""

    name: str
    on: bool
    at: datetime
    by: str  # the caller's label (name, upn and object id) or, from the CLI, the OS user
    via: str  # "cli" or the manage route
    reason: str = ""

    @classmethod
    def checked(
        cls, name: str, on: bool, at: datetime, by: str, via: str, reason: str = ""
    ) -> SwitchChange:
        if at.tzinfo is None:
            raise SwitchError("the time of a switch change must carry a time zone")
        return cls(
            name,
            on,
            at,
            _clean(by, MAX_BY, "who") or "unknown",
            via,
            _clean(reason, MAX_REASON, "the reason"),
        )


@dataclass(frozen=True)
class KillSwitch:
    """The kill switch as every path sees it: forced on by the setting, or the store's latest."""

    forced_by_setting: bool
    latest: SwitchChange | None = None

    @property
    def on(self) -> bool:
        return self.forced_by_setting or (self.latest is not None and self.latest.on)

    def describe(self) -> str:
        """One line for `report` and `kill-switch`: the state, and who set it when."""
        state = "ON" if self.on else "off"
        parts = [f"kill switch: {state}"]
        if self.forced_by_setting:
            parts.append("forced on by the app setting RECLAIM_KILL_SWITCH=true")
        if self.latest is not None:
            change = self.latest
            flipped = "on" if change.on else "off"
            text = f"set {flipped} by {change.by} via {change.via} at {change.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            parts.append(text + (f": {change.reason}" if change.reason else ""))
        elif not self.forced_by_setting:
            parts.append("never set")
        return "; ".join(parts)

"""A notice before removal: the date told to the user, and the words every channel uses.

The date counts from the notice's delivery, never from the decision: a notice the channel
could not deliver is sent again by a later tick with a later date, so a failed delivery never
shortens the period (reclaim.usecases.send_notices).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reclaim.domain.durations import format_duration


@dataclass(frozen=True)
class Notice:
    application: str
    remove_after: datetime  # the earliest removal; the request waits in NOTICE until then
    period: timedelta

    def describe(self) -> str:
        """For the ledger and explain."""
        return (
            f"removal not before {self.remove_after:%Y-%m-%d %H:%M} UTC "
            f"(notice {format_duration(self.period)})"
        )

    def text(self) -> str:
        """What the user reads (mail, card or a receiver's message)."""
        return (
            f"Your {self.application} licence will be removed on or after "
            f"{self.remove_after:%Y-%m-%d %H:%M} UTC, because it was decided that you no longer "
            f"need it. If you still need {self.application}, answer yes before then and you "
            "keep it."
        )


def notice_from(application: str, period: timedelta, delivered_at: datetime) -> Notice:
    """The notice a delivery at `delivered_at` tells: the period counts from that moment."""
    return Notice(application, delivered_at + period, period)

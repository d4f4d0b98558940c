"""set_kill_switch and kill_switch_report: the operator's emergency stop, kept in the state store.

The switch is an operational state, not configuration: it is set by `python -m reclaim
kill-switch` or POST /api/manage/kill-switch, recorded with who and when, and kept as history. The
app setting RECLAIM_KILL_SWITCH only forces it on, so a deployment (which rewrites every app
setting) cannot turn off a switch an operator set during an incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reclaim.domain.switches import KILL_SWITCH, KillSwitch, SwitchChange
from reclaim.usecases.context import Context


@dataclass(frozen=True)
class KillSwitchReport:
    state: KillSwitch
    history: list[SwitchChange]  # newest first


def set_kill_switch(
    ctx: Context, *, on: bool, by: str, via: str, now: datetime, reason: str = ""
) -> KillSwitchReport:
    """Record one flip (raises reclaim.domain.switches.SwitchError for a reason it cannot keep)."""
    ctx.store.record_switch(SwitchChange.checked(KILL_SWITCH, on, now, by, via, reason))
    return kill_switch_report(ctx)


def kill_switch_report(ctx: Context, limit: int = 10) -> KillSwitchReport:
    history = ctx.store.switch_history(KILL_SWITCH, limit)
    return KillSwitchReport(KillSwitch(ctx.forced_kill_switch, next(iter(history), None)), history)

"""A run or plan as a table, JSON or CSV: one row per member, most interesting first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from reclaim import usecases
from reclaim.cli.parser import _ORDER
from reclaim.domain.policy import DirectoryKind, Policy
from reclaim.domain.selection import Decision
from reclaim.safe_output import SafeCsvWriter, one_line


def _sorted(decisions: Sequence[Decision]) -> list[Decision]:
    return sorted(decisions, key=lambda d: (_ORDER.index(d.kind), d.member.user.label.lower()))


def _outcome_json(policy: Policy, outcome: usecases.RunOutcome) -> dict[str, Any]:
    return {
        "policy": policy.name,
        "application": policy.application,
        "group": policy.directory.group,
        "mode": policy.mode.value,
        "run_id": outcome.run.id,
        "status": outcome.run.status.value,
        "halt_check": outcome.halt.check if outcome.halt else None,
        "halt_reason": outcome.halt.reason if outcome.halt else None,
        "counts": outcome.run.counts,
        "decisions": [
            {
                "user": d.member.user.label,
                "identifiers": d.member.user.to_dict(),
                "decision": d.kind.value,
                "reason": d.reason,
                "evidence": d.evidence.to_dict(),
            }
            for d in _sorted(outcome.decisions)
        ],
    }


def _table(cells: Sequence[Sequence[str]], out: TextIO) -> None:
    rows = [[one_line(cell) for cell in row] for row in cells]  # a name cannot forge a row
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[-1] = 0  # the last column (the reason) is not padded
    for index, row in enumerate(rows):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * max(w, len(row[-1])) for w in widths) + "\n")


def _print_outcome_table(policy: Policy, outcome: usecases.RunOutcome, out: TextIO) -> None:
    run = outcome.run
    out.write(
        f"\n== {policy.name}: {policy.application}, {_holding(policy)} ({policy.mode.value})\n"
    )
    if outcome.halt:
        out.write(f"HALTED by {outcome.halt.check}: {outcome.halt.reason}\n")
        out.write("Nothing was asked or removed.\n")
    dated = next((d.evidence for d in outcome.decisions if d.evidence.usage_clock), None)
    if dated is not None:
        when = f"{dated.usage_as_of:%Y-%m-%d %H:%M %Z}" if dated.usage_as_of else "unknown"
        out.write(f"usage data as of {when} ({dated.usage_clock})\n")
    counted = next((d.evidence.counted for d in outcome.decisions if d.evidence.counted), "")
    if counted:  # e.g. the v1.0 sign-in log's interactive sign-ins only
        out.write(f"usage counted: {counted}\n")
    unread = [d.evidence.account_unread for d in outcome.decisions if d.evidence.account_unread]
    if unread:
        out.write(f"account state unknown for {len(unread)} member(s): {unread[0]}\n")
    if outcome.decisions:
        rows = [("USER", "DECISION", "REASON")]
        rows += [(d.member.user.label, d.kind.value, d.reason) for d in _sorted(outcome.decisions)]
        _table(rows, out)
    counts = ", ".join(f"{k} {n}" for k in _ORDER if (n := run.counts.get(k.value, 0)))
    out.write(f"{run.members} members: {counts or 'none'}\n")
    if run.asked or run.enqueued:
        out.write(f"asked {run.asked}, removals queued {run.enqueued}\n")
    if outcome.held:
        out.write(f"{outcome.held} removal(s) held by the rate limit (limits.rate): they wait\n")
    doubled = [
        one_line(d.member.user.label) for d in _sorted(outcome.decisions) if d.evidence.seat_note
    ]
    if doubled:
        out.write(
            f"{len(doubled)} member(s) hold {policy.seat_sku} both directly and through the group: "
            f"a removal from the group frees no seat for them (reclaim the direct assignments with "
            f"directory.kind entra-licence): {', '.join(doubled)}\n"
        )
    for user, why in outcome.not_asked.items():
        out.write(f"not asked: {one_line(user)}: {one_line(why)}\n")


def _holding(policy: Policy) -> str:
    """What the policy takes the licence from: a group, or (entra-licence) a SKU's direct holders."""
    if policy.directory.kind is DirectoryKind.ENTRA_LICENCE:
        return f"SKU {policy.directory.sku_id} assigned directly"
    return f"group {policy.directory.group}"


def _figure(value: float | None) -> float | int | None:
    """A computed amount as a number cell: 3 rather than 3.0, six significant digits."""
    if value is None:
        return None
    return int(value) if value.is_integer() else float(f"{value:.6g}")


def _print_outcome_csv(outcomes: list[tuple[Policy, usecases.RunOutcome]], out: TextIO) -> None:
    writer = SafeCsvWriter(out)
    writer.writerow(
        ["policy", "status", "user", "decision", "reason", "used", "threshold", "unit", "window"]
    )
    for policy, outcome in outcomes:
        for d in _sorted(outcome.decisions):
            e = d.evidence
            writer.writerow(
                [
                    policy.name,
                    outcome.run.status.value,
                    d.member.user.label,
                    d.kind.value,
                    d.reason,
                    _figure(e.used),
                    _figure(e.threshold),
                    e.unit,
                    e.window,
                ]
            )
        if outcome.halt and not outcome.decisions:
            writer.writerow(
                [policy.name, outcome.run.status.value, "", "", outcome.halt.reason, "", "", "", ""]
            )


# ---- commands ----------------------------------------------------------------------------------

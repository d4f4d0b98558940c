"""`python -m reclaim simulate`: a proposed policy over the recorded history, per period, in a
table, JSON or CSV (reclaim.usecases.simulate; read-only)."""

from __future__ import annotations

import argparse
import io
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from reclaim.domain.durations import parse_duration
from reclaim.domain.simulation import CameBack, Period, PeriodResult
from reclaim.safe_output import SafeCsvWriter, one_line
from reclaim.usecases.context import InputError
from reclaim.usecases.simulate import SimulateCommand, SimulationReport, simulate_policy

if TYPE_CHECKING:
    from reclaim.usecases import Context

REGRET_RATE = (
    "regret rate = removals that came back / removals, where a removal came back when, after "
    'it, the member was restored, appealed, answered "yes, I still need it", or a later '
    "recorded run found her use at or above the proposed threshold"
)


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--since", default="180d", help="replay the runs this far back (default 180d)")
    sub.add_argument("--threshold", help="proposed usage.threshold (a duration, or sign-ins)")
    sub.add_argument("--lookback", help="proposed usage.lookback (refused, with the reason)")
    sub.add_argument("--new-member-grace", help="proposed new_member_grace, like 30d")
    sub.add_argument("--period", choices=[p.value for p in Period], default=Period.MONTH.value)
    sub.add_argument("--format", choices=["table", "json", "csv"], default="table")


def run(ctx: Context, policies: dict[str, Any], args: argparse.Namespace, now: datetime,
        out: TextIO) -> int:  # fmt: skip
    if args.policy not in policies:
        known = ", ".join(sorted(policies))
        raise InputError(f"no policy named {args.policy!r}; the file has: {known}")
    try:
        since = parse_duration(args.since)
    except ValueError as error:
        raise InputError(f"--since: {error}") from None
    command = SimulateCommand(
        policies[args.policy],
        since,
        Period(args.period),
        threshold=args.threshold,
        lookback=args.lookback,
        new_member_grace=args.new_member_grace,
    )
    report = simulate_policy(ctx, command, now)
    render = {"table": as_table, "json": as_json, "csv": as_csv}[args.format]
    out.write(render(report))
    return 0


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _halts(period: PeriodResult) -> str:
    return ", ".join(f"{check} {n}" for check, n in sorted(period.halts.items()))


def as_table(report: SimulationReport) -> str:
    out = io.StringIO()
    simulation = report.simulation
    changes = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in report.changed.items())
    out.write(
        f"\n== {one_line(report.proposal.name)}: simulated over {report.runs} recorded run(s) "
        f"since {report.since:%Y-%m-%d} ({changes or 'the policy as the file has it'})\n"
    )
    rows = [("PERIOD", "RUNS", "ASKED", "REMOVED", "CAME BACK", "REGRET RATE", "HALTED BY")]
    rows += [
        (p.label, str(p.runs), str(p.asked), str(p.removals), str(p.came_back),
         _rate(p.regret_rate), _halts(p))
        for p in simulation.periods
    ]  # fmt: skip
    asked = sum(p.asked for p in simulation.periods)
    halts = sum(sum(p.halts.values()) for p in simulation.periods)
    rows.append(
        ("total", str(sum(p.runs for p in simulation.periods)), str(asked),
         str(simulation.total_removals), str(simulation.total_came_back),
         _rate(simulation.regret_rate), f"{halts} run(s)" if halts else "")
    )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for index, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:6], widths[1:], strict=True)),
        ]
        out.write(("  ".join(cells) + "  " + row[6]).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * w for w in widths) + "  " + "-" * 9 + "\n")
    why = _came_back_by(report)
    if why:
        out.write("came back: " + ", ".join(f"{n} {reason}" for reason, n in why.items()) + "\n")
    out.write(REGRET_RATE + "\n")
    for note in report.notes:
        out.write(f"note: {one_line(note)}\n")
    return out.getvalue()


def _came_back_by(report: SimulationReport) -> dict[str, int]:
    counts = {reason.value: 0 for reason in CameBack}
    for removal in report.simulation.removals:
        if removal.came_back is not None:
            counts[removal.came_back.value] += 1
    return {reason: n for reason, n in counts.items() if n}


def _period_json(period: PeriodResult) -> dict[str, Any]:
    return {
        "period": period.label,
        "runs": period.runs,
        "asked": period.asked,
        "removals": period.removals,
        "came_back": period.came_back,
        "came_back_by": dict(period.back_by),
        "regret_rate": period.regret_rate,
        "halted_by": dict(period.halts),
    }


def as_json(report: SimulationReport) -> str:
    simulation = report.simulation
    document = {
        "policy": report.proposal.name,
        "since": report.since.isoformat(),
        "changed": {k: {"file": old, "proposal": new} for k, (old, new) in report.changed.items()},
        "runs": report.runs,
        "runs_without_history": report.without_history,
        "regret_rate_definition": REGRET_RATE,
        "periods": [_period_json(p) for p in simulation.periods],
        "total": {
            "asked": sum(p.asked for p in simulation.periods),
            "removals": simulation.total_removals,
            "came_back": simulation.total_came_back,
            "came_back_by": _came_back_by(report),
            "regret_rate": simulation.regret_rate,
            "open_asks": simulation.open_asks,
        },
        "removals": [
            {
                "user": r.key,
                "run_id": r.run_id,
                "decided_at": r.decided_at.isoformat(),
                "removed_at": r.removed_at.isoformat(),
                "asked": r.asked,
                "came_back": r.came_back.value if r.came_back else None,
                "came_back_at": r.came_back_at.isoformat() if r.came_back_at else None,
            }
            for r in simulation.removals
        ],
        "notes": list(report.notes),
    }
    return json.dumps(document, indent=2) + "\n"


def as_csv(report: SimulationReport) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(
        ["policy", "period", "runs", "asked", "removals", "came_back", "regret_rate", "halted_by"]
    )
    for p in report.simulation.periods:
        rate = p.regret_rate
        writer.writerow(
            [report.proposal.name, p.label, p.runs, p.asked, p.removals, p.came_back,
             "" if rate is None else round(rate, 4), _halts(p)]
        )  # fmt: skip
    return out.getvalue()

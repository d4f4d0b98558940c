"""The command line: its commands, their options and the order decisions are shown in."""

from __future__ import annotations

import argparse
from pathlib import Path

from reclaim.cli import simulate as cli_simulate
from reclaim.domain.selection import DecisionKind
from reclaim.errors import ReclaimError

EXIT_OK, EXIT_HALTED, EXIT_BAD_INPUT, EXIT_BUSY = 0, 1, 2, 3


# Most interesting first: leavers (immediate, undisputed savings), who would lose the licence,
# then who is waiting, then who keeps it.
_ORDER = [
    DecisionKind.DISABLED,
    DecisionKind.CANDIDATE,
    DecisionKind.PENDING,
    DecisionKind.KEPT,
    DecisionKind.ACTIVE,
    DecisionKind.UNKNOWN_USAGE,
    DecisionKind.NEW,
    DecisionKind.EXCLUDED,
    DecisionKind.NESTED,
]


class UsageError(ReclaimError):
    """The command line asks for something that cannot be done."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reclaim",
        description="Reclaim licences people hold but do not use. Dry run unless a policy says enforce.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, policy: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--policies", type=Path, help="policies YAML file (default: RECLAIM_POLICIES_FILE)"
        )
        if policy == "optional":
            sub.add_argument("--policy", help="only this policy")
        elif policy == "required":
            sub.add_argument("--policy", required=True, help="the policy's name")
        return sub

    command("validate", "check a policies file and list every problem")
    plan = command(
        "plan", "show what each policy would decide for every member; changes nothing", "optional"
    )
    plan.add_argument(
        "--format",
        choices=["table", "json", "csv", "html"],
        default="table",
        help="html: --what-if",
    )
    plan.add_argument(
        "--what-if",
        action="store_true",
        help="candidates at other thresholds, from the same read, and where the caps bite",
    )
    command(
        "run", "run one policy now, honouring its mode (dry-run records, enforce acts)", "required"
    )
    report = command("report", "runs, outcomes and savings so far")
    report.add_argument("--since", help="only this far back, like 90d")
    report.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    report.add_argument("--out", type=Path, help="write to this file instead of the terminal")
    report.add_argument(
        "--answers",
        action="store_true",
        help="list every recorded answer with its justification instead (table or csv)",
    )
    report.add_argument(
        "--months",
        action="store_true",
        help="only the savings by policy and month, one row each (table or csv)",
    )
    explain = command(
        "explain",
        "one user's history under a policy: decisions, asks, answers, removals",
        "required",
    )
    explain.add_argument(
        "--user", required=True, help="UPN, mail, sAMAccountName, SID or object id"
    )
    explain.add_argument("--format", choices=["table", "json"], default="table")
    restore = command("restore", "re-add removed users to the group", "required")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="UPN, mail, sAMAccountName, SID or object id")
    target.add_argument("--run", help="restore every removal of this run id")
    switch = command(
        "kill-switch",
        "show the kill switch, or turn it on or off (kept in the state store, with who and when)",
    )
    switch.add_argument("state", nargs="?", choices=["on", "off"], help="omit to show the state")
    switch.add_argument("--reason", default="", help="why, for the record (at most 500 characters)")
    simulate = command("simulate", "replay a proposed policy over its recorded runs", "required")
    cli_simulate.add_arguments(simulate)
    command("expire", "pull answers, apply deadlines, settle remote actions, then work the queue")
    command("work", "perform the removals waiting in the local queue")
    host = command(
        "host", "serve the function app on this machine: timers, HTTP routes, queue worker"
    )
    host.add_argument(
        "--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (default 7071)"
    )
    return parser

"""python -m reclaim: the same use cases as the function app, from a terminal.

Exit codes: 0 success, 1 a run was halted by a guardrail (or some removals failed), 2 bad input,
3 the policy is already running (another run or the expiry tick holds its lease).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from reclaim import cli_simulate, usecases
from reclaim.domain.durations import parse_duration
from reclaim.domain.policy import DirectoryKind, Policy, PolicyError
from reclaim.domain.records import MessageError, RemovalMessage
from reclaim.domain.selection import Decision, DecisionKind
from reclaim.domain.switches import SwitchError
from reclaim.errors import ConfigurationError, ReclaimError
from reclaim.policy_file import load_policies
from reclaim.request_links import appeal_settings_problem
from reclaim.safe_output import SafeCsvWriter, TerminalStream, one_line
from reclaim.settings import Settings

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


def _check_graph_settings(settings: Settings, policies: Sequence[Policy]) -> None:
    """An AD or remote-action policy naming licence.entra_sku_id has its seats verified in Entra
    ID: the Graph settings are then required; name each missing one."""
    needing = [
        p.name
        for p in policies
        if p.directory.kind not in (DirectoryKind.ENTRA, DirectoryKind.ENTRA_LICENCE) and p.seat_sku
    ]
    missing = settings.graph_missing() if needing else []
    if missing:
        raise ConfigurationError(
            f"policy(ies) {', '.join(needing)} verify seats in Entra ID (licence.entra_sku_id): "
            f"set {', '.join(missing)}"
        )


@dataclass
class _App:
    settings: Settings
    policies: dict[str, Policy]
    ctx: usecases.Context


def _app(args: argparse.Namespace, env: dict[str, str] | None) -> _App:
    from reclaim.adapters.local_queue import SqliteQueue
    from reclaim.adapters.sqlite import SqliteStore
    from reclaim.ports import StateStore
    from reclaim.wiring import Wiring, build_notifier, build_store, removal_limits

    settings = Settings.from_env(env)
    path = args.policies or settings.policies_file
    # The report reads the store alone; it needs no policies file unless one is named.
    optional = (
        args.command in ("report", "kill-switch") and args.policies is None and not path.exists()
    )
    policies = {} if optional else {p.name: p for p in load_policies(path)}
    if (
        args.command in ("plan", "simulate")
        and settings.state_backend == "sqlite"
        and not settings.state_db.exists()
    ):
        # Nothing recorded yet, and a plan (or a simulation) writes nothing: not even a file.
        store: StateStore = SqliteStore(":memory:")
    else:
        store = build_store(settings)
    if isinstance(store, SqliteStore):
        queue: Any = SqliteQueue(store, lease=settings.claim_lease)
    else:
        from reclaim.adapters.queues import StorageQueue

        queue = StorageQueue.from_settings(settings)
    wiring = Wiring(settings, path.parent)
    ctx = usecases.Context(
        store,
        queue,
        wiring,
        policies,
        forced_kill_switch=settings.kill_switch,
        notifier=build_notifier(settings, wiring),
        limits=removal_limits(settings),
        retention=settings.retention,
    )
    return _App(settings, policies, ctx)


def _chosen(app: _App, name: str | None) -> list[Policy]:
    if name is None:
        return list(app.policies.values())
    if name not in app.policies:
        known = ", ".join(sorted(app.policies))
        raise UsageError(f"no policy named {name!r}; the file has: {known}")
    return [app.policies[name]]


# ---- output ------------------------------------------------------------------------------------


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


def _plan(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    if args.what_if:
        return _what_if(app, args, now, out)
    if args.format == "html":
        raise UsageError("--format html goes with --what-if (the plan itself: table, json or csv)")
    outcomes = [
        (p, usecases.run_policy(app.ctx, p, now, read_only=True)) for p in _chosen(app, args.policy)
    ]
    if args.format == "json":
        json.dump([_outcome_json(p, o) for p, o in outcomes], out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        _print_outcome_csv(outcomes, out)
    else:
        for policy, outcome in outcomes:
            _print_outcome_table(policy, outcome, out)
    return EXIT_HALTED if any(o.halted for _, o in outcomes) else EXIT_OK


def _what_if(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    from reclaim import what_if_output

    outcomes = [usecases.what_if(app.ctx, p, now) for p in _chosen(app, args.policy)]
    render = {
        "table": what_if_output.as_table,
        "json": what_if_output.as_json,
        "csv": what_if_output.as_csv,
        "html": lambda o: what_if_output.as_html(o, now),
    }[args.format]
    out.write(render(outcomes))
    return EXIT_HALTED if any(o.halt for o in outcomes) else EXIT_OK


def _work(
    app: _App, now: datetime, out: TextIO, *, recover: bool = True, again: bool = True
) -> int:
    """Drain the local queue (the CLI's stand-in for the queue-triggered worker), after handing
    back and re-deciding the removals whose worker died holding them."""
    from reclaim.adapters.local_queue import SqliteQueue

    if recover and (recovered := usecases.recover_and_redecide(app.ctx, now)):
        out.write(
            f"{recovered} removal(s) left behind by a worker that stopped: re-decided on "
            "fresh data\n"
        )
    queue = app.ctx.queue
    if not isinstance(queue, SqliteQueue):
        out.write("removals are queued to Azure Storage; the function app's worker performs them\n")
        return EXIT_OK
    failed = 0
    handed: set[str] = set()  # policies whose removals went back to DUE while draining
    while (item := queue.take()) is not None:
        if item.dequeue_count > queue.max_dequeue_count:  # its workers died every time
            queue.poison(item, f"delivered {item.dequeue_count} times without an outcome")
            failed += 1
            continue
        try:
            message = RemovalMessage.from_json(item.body)
            command = usecases.RemovalCommand(
                message, final_attempt=item.dequeue_count >= queue.max_dequeue_count
            )
            result = usecases.perform_removal(app.ctx, command, now)
        except MessageError as error:
            queue.poison(item, f"malformed: {error}")
            out.write(f"dropped a malformed message: {error}\n")
            failed += 1
            continue
        # Settled only now that the outcome is stored: a worker that dies before leaves the
        # message to come back after its lease.
        if result.status is usecases.RemovalStatus.FAILED:
            queue.poison(item, f"removal {message.request_id} failed: {result.detail}")
            failed += 1
        else:
            queue.delete(item)
        if result.status is usecases.RemovalStatus.HANDED_BACK:
            handed.add(message.policy)
        out.write(
            f"{one_line(message.user.label)}: {result.status.value}"
            f"{': ' + one_line(result.detail) if result.detail else ''}\n"
        )
    if handed and again:  # re-decided now, as the expiry tick would, and worked once more
        usecases.redecide(app.ctx, handed, now)
        failed += _work(app, now, out, recover=False, again=False) != EXIT_OK
    elif waiting := queue.waiting():
        out.write(f"{waiting} removal(s) wait in the queue for a later `python -m reclaim work`\n")
    return EXIT_HALTED if failed else EXIT_OK


def _run(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    (policy,) = _chosen(app, args.policy)
    outcome = usecases.run_policy(app.ctx, policy, now, trigger="cli")
    _print_outcome_table(policy, outcome, out)
    out.write(f"run {outcome.run.id} recorded ({outcome.run.status.value})\n")
    if outcome.halted:
        return EXIT_HALTED
    return _work(app, now, out) if outcome.run.enqueued else EXIT_OK


def _report(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    from reclaim import reporting

    try:
        window = parse_duration(args.since) if args.since else None
    except ValueError as error:
        raise UsageError(f"--since: {error}") from None
    if args.answers:
        if args.format not in ("table", "csv"):
            raise UsageError("--answers: use --format table or --format csv")
        lines = usecases.answers_report(app.ctx, now - window if window else None)
        render = reporting.answers_as_csv if args.format == "csv" else reporting.answers_as_table
        return _write_report(render(lines), args, out)
    reports = usecases.report(app.ctx, now - window if window else None, now)
    if args.months:
        if args.format not in ("table", "csv"):
            raise UsageError(
                "--months: use --format table or --format csv (json and html have them)"
            )
        return _write_report(reporting.months(reports, args.format), args, out)
    text = {
        "table": lambda: reporting.as_table(reports),
        "csv": lambda: reporting.as_csv(reports),
        "json": lambda: reporting.as_json(reports),
        "html": lambda: reporting.as_html(reports, now, window),
    }[args.format]()
    if args.format == "table":
        text += usecases.kill_switch_report(app.ctx, limit=1).state.describe() + "\n"
    return _write_report(text, args, out)


def _write_report(text: str, args: argparse.Namespace, out: TextIO) -> int:
    if args.out is None:
        out.write(text)
        return EXIT_OK
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--out: cannot write {args.out}: {error.strerror}") from None
    out.write(f"report written to {args.out}\n")
    return EXIT_OK


def _operator() -> str:
    """Who runs the CLI: the OS user (the switch log's "who")."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown OS user"


def _kill_switch(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    if args.state is None:
        if args.reason:
            raise UsageError("--reason goes with on or off")
        report = usecases.kill_switch_report(app.ctx)
    else:
        try:
            report = usecases.set_kill_switch(
                app.ctx,
                on=args.state == "on",
                by=_operator(),
                via=f"cli on {socket.gethostname()}",
                now=now,
                reason=args.reason,
            )
        except SwitchError as error:
            raise UsageError(f"--reason: {error}") from None
    out.write(report.state.describe() + "\n")
    if args.state == "off" and report.state.on:
        out.write("it stays on: RECLAIM_KILL_SWITCH=true forces it (change the app setting)\n")
    if report.history:
        out.write("recent changes:\n")
        for change in report.history:
            reason = f": {change.reason}" if change.reason else ""
            out.write(
                f"  {change.at.astimezone(UTC):%Y-%m-%d %H:%M} {'on ' if change.on else 'off'} "
                f"by {change.by} via {change.via}{reason}\n"
            )
    return EXIT_OK


def _explain(app: _App, args: argparse.Namespace, out: TextIO) -> int:
    from reclaim import explain_output
    from reclaim.usecases.explain import JudgedInRun, explain_user

    (policy,) = _chosen(app, args.policy)
    explanation = explain_user(app.ctx, policy, args.user)
    if not explanation.found:
        raise UsageError(
            f"no history for {args.user!r} under {policy.name!r} (decisions are kept by "
            f"{policy.usage.match_on.value}: give the user's {policy.usage.match_on.value})"
        )
    if args.format == "json":
        out.write(explain_output.as_json(explanation))
        return EXIT_OK
    out.write(f"{args.user} under {policy.name} ({policy.application}, {_holding(policy)})\n")
    for at, event in explanation.events():
        if isinstance(event, JudgedInRun):
            run, d = event.run, event.decision
            text = (
                f"run {d.run_id[:8]} ({run.mode}, {run.status.value}): {d.decision}: "
                f"{one_line(d.reason)}\n{'':18}evidence: "
                + " ".join(f"{k}={one_line(str(v))}" for k, v in d.evidence.items())
            )
        else:
            detail = f": {one_line(event.detail)}" if event.detail else ""
            text = f"{event.outcome.value}{detail} (request {event.request_id[:8]})"
        out.write(f"{at:%Y-%m-%d %H:%M}  {text}\n")
    if explanation.what_would_change and explanation.latest:
        out.write(
            f"what would change the latest decision ({explanation.latest.decision.decision}):\n"
        )
        out.writelines(f"  {one_line(change)}\n" for change in explanation.what_would_change)
    return EXIT_OK


def _restore(app: _App, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    result = usecases.restore(
        app.ctx, usecases.RestoreCommand(args.policy, args.user or "", args.run or ""), now
    )
    for user in result.restored:
        out.write(f"restored {one_line(user)}\n")
    for user in result.already_member:
        out.write(f"{one_line(user)} was already a member: recorded as restored\n")
    for user, why in result.failed.items():
        out.write(f"could not restore {one_line(user)}: {one_line(why)}\n")
    return EXIT_HALTED if result.failed else EXIT_OK


def _expire(app: _App, now: datetime, out: TextIO) -> int:
    result = usecases.expire_requests(app.ctx, now)
    out.write(
        f"answers pulled {result.answers_pulled}, queued {result.queued}, lapsed {result.lapsed}, "
        f"cancelled on re-decision {result.cancelled}, held {result.held}, "
        f"remote actions settled {result.finished}, seats checked {result.seats_checked}\n"
    )
    if result.reminded:
        out.write(f"reminders sent {result.reminded}\n")
    if result.noticed:
        out.write(f"notices of removal sent {result.noticed}\n")
    for halt in result.halted:
        out.write(f"HALTED releases of {halt}; nothing was released\n")
    for busy in result.busy:
        out.write(f"waiting: {busy}\n")
    for error in result.errors:
        out.write(f"error: {error}\n")
    if result.recovered:
        out.write(
            f"{result.recovered} removal(s) left behind by a worker that stopped: re-decided\n"
        )
    code = _work(app, now, out, recover=False)
    return EXIT_HALTED if result.errors or result.halted else code


def main(
    argv: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
    env: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    # Everything printed may carry directory-supplied text: control characters are escaped.
    out = cast(TextIO, TerminalStream(out or sys.stdout))
    err = cast(TextIO, TerminalStream(err or sys.stderr))
    args = _parser().parse_args(argv)
    now = now or datetime.now(UTC)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=err
    )
    try:
        if args.command == "validate":
            settings = Settings.from_env(env)
            policies = load_policies(args.policies or settings.policies_file)
            _check_graph_settings(settings, policies)
            if problem := appeal_settings_problem(settings, policies):
                raise ConfigurationError(problem)
            out.write(f"{len(policies)} policy(ies) valid: {', '.join(p.name for p in policies)}\n")
            return EXIT_OK
        if args.command == "host":
            from reclaim.host import serve

            return serve(Settings.from_env(env), args.policies, args.port)
        app = _app(args, env)
        match args.command:
            case "plan":
                return _plan(app, args, now, out)
            case "run":
                return _run(app, args, now, out)
            case "report":
                return _report(app, args, now, out)
            case "explain":
                return _explain(app, args, out)
            case "restore":
                return _restore(app, args, now, out)
            case "kill-switch":
                return _kill_switch(app, args, now, out)
            case "simulate":
                return cli_simulate.run(app.ctx, app.policies, args, now, out)
            case "expire":
                return _expire(app, now, out)
            case "work":
                return _work(app, now, out)
    except usecases.PolicyBusy as busy:
        err.write(f"busy: {busy}\n")
        return EXIT_BUSY
    except (PolicyError, ReclaimError) as error:
        err.write(f"error: {error}\n")
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT

"""One function per command: parse its options, call its use case, print the result."""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from datetime import UTC, datetime
from typing import TextIO

from reclaim import usecases
from reclaim.cli.app import _App, _chosen
from reclaim.cli.outcome_output import (
    _holding,
    _outcome_json,
    _print_outcome_csv,
    _print_outcome_table,
)
from reclaim.cli.parser import EXIT_HALTED, EXIT_OK, UsageError
from reclaim.domain.durations import parse_duration
from reclaim.domain.records import MessageError, RemovalMessage
from reclaim.domain.switches import SwitchError
from reclaim.safe_output import one_line


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
    from reclaim.adapters.sqlite.removal_queue import SqliteQueue

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

"""python -m reclaim: the same use cases as the function app, from a terminal.

Exit codes: 0 success, 1 a run was halted by a guardrail (or some removals failed), 2 bad input,
3 the policy is already running (another run or the expiry tick holds its lease).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO, cast

from reclaim import usecases
from reclaim.cli import simulate as cli_simulate
from reclaim.cli.app import _app, _check_graph_settings
from reclaim.cli.commands import (
    _expire,
    _explain,
    _kill_switch,
    _plan,
    _report,
    _restore,
    _run,
    _work,
)
from reclaim.cli.outcome_output import _print_outcome_table
from reclaim.cli.parser import EXIT_BAD_INPUT, EXIT_BUSY, EXIT_OK, _parser
from reclaim.domain.policy import PolicyError
from reclaim.errors import ConfigurationError, ReclaimError
from reclaim.policy_file import load_policies
from reclaim.request_links import appeal_settings_problem
from reclaim.safe_output import TerminalStream
from reclaim.settings import Settings

__all__ = ["_print_outcome_table", "main"]


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

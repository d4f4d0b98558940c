"""Administrators' routes: run a policy now, restore removed users, the kill switch.

The Functions host reserves routes starting with "admin" (its own /admin API; a function route
"admin/..." fails to load with "The specified route conflicts with one or more built in
routes"), so these live under /api/manage/. Access is an identity, not a shared key: the host lets
the request in (auth level ANONYMOUS, so no function key opens or is needed for these routes) and
reclaim.functions.manage_access checks an Entra ID token with the app role the route needs
(Reclaim.Admin to act, Reclaim.Reader to read) before anything else happens.

- POST /api/manage/policies/{name}/run: one run now, honouring the policy's mode (dry-run
  records, enforce asks or enqueues); 200 with the run summary, 404 unknown policy, 409 when
  a run of that policy is already going on ("already running since ..."; nothing was done).
- POST /api/manage/restore {"policy": ..., "user": ...} or {"policy": ..., "run_id": ...}: re-add
  removed users; 200 when all were restored, 207 when some failed, 422 when nothing matches.
- GET /api/manage/kill-switch: its state and recent history. POST {"on": true|false,
  "reason": "..."}: flip it, recorded with the caller's identity (Reclaim.Admin).
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from reclaim import usecases
from reclaim.domain.access import Caller
from reclaim.domain.switches import SwitchChange, SwitchError
from reclaim.functions.app_context import AppContext
from reclaim.functions.manage_access import guarded
from reclaim.functions.responses import error_response, is_json, json_response

bp = func.Blueprint()

RUN_ROUTE = "manage/policies/{name}/run"
RESTORE_ROUTE = "manage/restore"
KILL_SWITCH_ROUTE = "manage/kill-switch"
KILL_SWITCH_VIA = "POST /api/manage/kill-switch"
MAX_BODY = 16_384


class BadBody(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json_body(req: func.HttpRequest) -> Any:
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise BadBody(
            error_response(413, "payload_too_large", f"the body is limited to {MAX_BODY} bytes")
        )
    if not is_json(req):
        raise BadBody(error_response(415, "unsupported_media_type", "send application/json"))
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadBody(
            error_response(400, "invalid_json", f"the body is not JSON: {error}")
        ) from None


def run_summary(outcome: usecases.RunOutcome) -> dict[str, Any]:
    run = outcome.run
    return {
        "policy": run.policy,
        "run_id": run.id,
        "mode": run.mode,
        "status": run.status.value,
        "started_at": run.started_at.isoformat(),
        "members": run.members,
        "counts": run.counts,
        "asked": run.asked,
        "enqueued": run.enqueued,
        "halt_check": run.halt_check or None,
        "halt_reason": run.halt_reason or None,
        "not_asked": outcome.not_asked,
    }


@bp.function_name("manage_run_policy")
@bp.route(route=RUN_ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_run_policy(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _run_policy)


def _run_policy(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    policy = app.ctx.policies.get(name)
    if policy is None:  # names of the other policies are not given away
        return error_response(404, "unknown_policy", f"no policy named {name[:100]!r}")
    try:
        outcome = usecases.run_policy(app.ctx, policy, app.now(), trigger="run-now")
    except usecases.PolicyBusy as busy:
        return error_response(409, "already_running", str(busy))
    return json_response(run_summary(outcome))


@bp.function_name("manage_restore")
@bp.route(route=RESTORE_ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_restore(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _restore)


def _restore(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    try:
        data = _json_body(req)
    except BadBody as bad:
        return bad.response
    fields = ("policy", "user", "run_id")
    if not isinstance(data, dict) or any(not isinstance(data.get(f, ""), str) for f in fields):
        return error_response(
            400,
            "invalid_schema",
            'expected {"policy": ..., "user": ...} or {"policy": ..., "run_id": ...}',
        )
    command = usecases.RestoreCommand(
        data.get("policy", "").strip(), data.get("user", "").strip(), data.get("run_id", "").strip()
    )
    report = usecases.restore(app.ctx, command, app.now())  # InputError: 422 (manage_access)
    body_out = {
        "restored": report.restored,
        "already_member": report.already_member,
        "failed": report.failed,
    }
    return json_response(body_out, 207 if report.failed else 200)


@bp.function_name("manage_kill_switch")
@bp.route(route=KILL_SWITCH_ROUTE, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def manage_kill_switch(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _kill_switch)


def _change_json(change: SwitchChange) -> dict[str, Any]:
    return {
        "on": change.on,
        "at": change.at.isoformat(),
        "by": change.by,
        "via": change.via,
        "reason": change.reason,
    }


def _kill_switch(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    if req.method.upper() == "POST":
        try:
            data = _json_body(req)
        except BadBody as bad:
            return bad.response
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("on"), bool)
            or not isinstance(data.get("reason", ""), str)
        ):
            return error_response(
                400, "invalid_schema", 'expected {"on": true|false, "reason": "why (optional)"}'
            )
        try:
            report = usecases.set_kill_switch(
                app.ctx,
                on=data["on"],
                by=caller.label,
                via=KILL_SWITCH_VIA,
                now=app.now(),
                reason=data.get("reason", ""),
            )
        except SwitchError as error:
            return error_response(400, "invalid_reason", str(error))
    else:
        report = usecases.kill_switch_report(app.ctx)
    return json_response(
        {
            "on": report.state.on,
            "forced_by_setting": report.state.forced_by_setting,
            "summary": report.state.describe(),
            "history": [_change_json(c) for c in report.history],
        }
    )

"""Administrators' routes: run a policy now, restore removed users.

The Functions host reserves routes starting with "admin" (its own /admin API; a function route
"admin/..." fails to load with "The specified route conflicts with one or more built in
routes"), so these live under /api/manage/. Auth level FUNCTION: give the operators' tooling its
own function key for these two functions, separate from the campaign tool's key.

- POST /api/manage/policies/{name}/run: one run now, honouring the policy's mode (dry-run
  records, enforce asks or enqueues); 200 with the run summary, 404 unknown policy.
- POST /api/manage/restore {"policy": ..., "user": ...} or {"policy": ..., "run_id": ...}: re-add
  removed users; 200 when all were restored, 207 when some failed, 422 when nothing matches.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from reclaim import usecases
from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.functions.responses import error_response, is_json, json_response

log = logging.getLogger("reclaim.functions.admin")

bp = func.Blueprint()

RUN_ROUTE = "manage/policies/{name}/run"
RESTORE_ROUTE = "manage/restore"
MAX_BODY = 16_384


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
@bp.route(route=RUN_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def manage_run_policy(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = app_context.current()
    except ConfigurationError as error:
        log.error("the app is not configured: %s", error)
        return error_response(503, "not_configured", "the app is not configured; see its logs")
    name = req.route_params.get("name", "")
    policy = app.ctx.policies.get(name)
    if policy is None:
        known = ", ".join(sorted(app.ctx.policies)) or "none"
        return error_response(404, "unknown_policy", f"no policy named {name!r} (known: {known})")
    outcome = usecases.run_policy(app.ctx, policy, app.now())
    return json_response(run_summary(outcome))


@bp.function_name("manage_restore")
@bp.route(route=RESTORE_ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def manage_restore(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = app_context.current()
    except ConfigurationError as error:
        log.error("the app is not configured: %s", error)
        return error_response(503, "not_configured", "the app is not configured; see its logs")
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        return error_response(413, "payload_too_large", f"the body is limited to {MAX_BODY} bytes")
    if not is_json(req):
        return error_response(415, "unsupported_media_type", "send application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return error_response(400, "invalid_json", f"the body is not JSON: {error}")
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
    try:
        report = usecases.restore(app.ctx, command, app.now())
    except usecases.InputError as error:
        return error_response(422, "unknown_reference", str(error))
    body_out = {
        "restored": report.restored,
        "already_member": report.already_member,
        "failed": report.failed,
    }
    return json_response(body_out, 207 if report.failed else 200)

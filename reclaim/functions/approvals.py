"""POST /api/campaign/approvals: an approver's "keep" or "release" (policy key escalation).

The same two locks as the campaign webhook (reclaim/functions/webhook.py): the Functions key and
the HMAC signature over the timestamp and the raw body. The receiver that asked the approver
(the `approval` event of the webhook channel) vouches for who decides.

Body: {"request_id": "...", "policy": "...", "approver": "UPN or mail of who decides",
"decision": "keep" | "release", "justification": "optional, one line"}.

200 {"status": "kept" | "released" | "cancelled" | "duplicate" | "recorded"}; errors are
{"error": {"code", "message"}} with 400 bad JSON or schema, 401 signature or timestamp, 403 not an
approver of this request, 413 too large, 415 not JSON, 422 unknown policy or request, not
escalated, or a justification refused, 503 not configured or storage unavailable. A refused
decision changes nothing. Never a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from reclaim import signing
from reclaim.domain.approval import ApproverDecision
from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.functions.responses import error_response, is_json, json_response
from reclaim.functions.webhook import Rejected, body_within_limit
from reclaim.usecases.context import InputError
from reclaim.usecases.record_approval import ApprovalCommand, NotApprover, record_approval

log = logging.getLogger("reclaim.functions.approvals")

bp = func.Blueprint()

ROUTE = "campaign/approvals"


@bp.function_name("campaign_approvals")
@bp.route(route=ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def campaign_approvals(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = app_context.current()
        command = _command(app, req)
        status = record_approval(app.ctx, command, app.now())
    except Rejected as rejected:
        log.warning("approval rejected (%d %s): %s", rejected.status, rejected.code,
                    rejected.message)  # fmt: skip
        return rejected.response()
    except NotApprover as error:
        log.warning("approval refused: %s", error)
        return error_response(403, "not_an_approver", str(error))
    except InputError as error:
        return error_response(422, "unprocessable", str(error))
    except ConfigurationError as error:
        log.error("approval not recorded, the app is not configured: %s", error)
        return _unavailable()
    except Exception:  # storage or Key Vault down: retrying is safe, decisions are idempotent
        log.exception("approval not recorded")
        return _unavailable()
    return json_response({"status": status.value}, 200)


def _unavailable() -> func.HttpResponse:
    return error_response(
        503,
        "unavailable",
        "the decision cannot be recorded now; retry later",
        {"Retry-After": "60"},
    )


def _command(app: app_context.AppContext, req: func.HttpRequest) -> ApprovalCommand:
    settings = app.settings
    body = body_within_limit(req, settings.webhook_max_bytes)
    if not is_json(req):
        raise Rejected(415, "unsupported_media_type", "send the decision as application/json")
    try:
        signing.verify(
            app.webhook_secret(),
            req.headers.get(signing.TIMESTAMP_HEADER),
            req.headers.get(signing.SIGNATURE_HEADER),
            body,
            app.now(),
            settings.webhook_tolerance,
        )
    except signing.SignatureError as error:
        raise Rejected(401, "invalid_signature", error.reason) from None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise Rejected(400, "invalid_json", f"the body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise Rejected(400, "invalid_schema", "expected one decision object")
    decision = _text(data, "decision").lower()
    if decision not in {d.value for d in ApproverDecision}:
        raise Rejected(400, "invalid_schema", "decision: expected keep or release")
    justification = data.get("justification")
    if justification is not None and not isinstance(justification, str):
        raise Rejected(400, "invalid_schema", "justification: expected a string")
    return ApprovalCommand(
        policy=_text(data, "policy"),
        request_id=_text(data, "request_id"),
        approver=_text(data, "approver"),
        decision=ApproverDecision(decision),
        justification=(justification or "").strip(),
    )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Rejected(400, "invalid_schema", f"{name}: expected a non-empty string")
    return value.strip()

"""POST /api/campaign/responses: campaign answers pushed by a survey or chat tool.

Two locks on the door: the Functions key (auth level FUNCTION) and an HMAC-SHA256 signature over
the timestamp and the raw body (reclaim.signing; secret from the Secrets port, timestamps outside
RECLAIM_WEBHOOK_TOLERANCE rejected, so a captured request cannot be replayed later).

Body: one answer or a list of them, each
  {"request_id": "...", "answer": "yes"|"no", "answered_at": "2026-11-28T10:00:00Z"}   or
  {"policy": "...", "user": "upn, mail or SID", "answer": "yes"|"no", "answered_at": ...}
("answer" in any case; "answered_at" optional, default now; "justification" optional, one line of
at most 500 characters, required with a "yes" when the policy sets
campaign.require_justification_for_keep; other keys are ignored). Ids are at
most 256 characters without control characters or lone surrogates; "answered_at" is not before
2000-01-01 nor after now (reclaim.domain.limits): what would not read back is never stored.

Every answer of a list is checked (schema, then that its request exists) before any is recorded:
a rejected request changes nothing. Answers are idempotent (the same answer twice: "duplicate").
202 {"kept", "queued", "cancelled", "duplicate", "recorded", "escalated"} (escalated: the
policy's escalation sends the answer to her approver first); errors are
{"error": {"code", "message"}} with 400 bad JSON or schema, 401 signature or timestamp,
413 too large, 415 not JSON, 422 unknown policy, user or request, or a justification too long,
not plain text, or missing where the policy requires one, 503 not configured or storage
unavailable (safe to retry: answers are idempotent). Never a 500.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func

from reclaim import signing, usecases
from reclaim.domain import limits
from reclaim.domain.lifecycle import Request
from reclaim.domain.model import AnswerValue
from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.functions.responses import error_response, is_json, json_response
from reclaim.usecases.bookkeeping import each

log = logging.getLogger("reclaim.functions.webhook")

bp = func.Blueprint()

ROUTE = "campaign/responses"
MAX_ANSWERS = 500  # each answer is looked up before any is recorded: bound the work per request


class Rejected(Exception):
    """A request the webhook refuses; carries the HTTP status and the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> func.HttpResponse:
        return error_response(self.status, self.code, self.message)


@bp.function_name("campaign_responses")
@bp.route(route=ROUTE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def campaign_responses(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = app_context.current()
        commands, request_ids = _accepted_commands(app, req)
        counts = _record(app, commands, request_ids)
    except Rejected as rejected:
        log.warning("campaign answers rejected (%d %s): %s", rejected.status, rejected.code,
                    rejected.message)  # fmt: skip
        return rejected.response()
    except ConfigurationError as error:
        log.error("campaign answers not recorded, the app is not configured: %s", error)
        return _unavailable()
    except Exception:  # storage or Key Vault down: retrying is safe, answers are idempotent
        log.exception("campaign answers not recorded")
        return _unavailable()
    return json_response(counts, 202)


def _unavailable() -> func.HttpResponse:
    return error_response(
        503, "unavailable", "answers cannot be recorded now; retry later", {"Retry-After": "60"}
    )


# ---- checks, in the order a request meets them ------------------------------------------------


def _accepted_commands(
    app: app_context.AppContext, req: func.HttpRequest
) -> tuple[list[usecases.AnswerCommand], list[str]]:
    settings = app.settings
    body = body_within_limit(req, settings.webhook_max_bytes)
    if not is_json(req):
        raise Rejected(415, "unsupported_media_type", "send the answers as application/json")
    now = app.now()
    try:
        signing.verify(
            app.webhook_secret(),
            req.headers.get(signing.TIMESTAMP_HEADER),
            req.headers.get(signing.SIGNATURE_HEADER),
            body,
            now,
            settings.webhook_tolerance,
        )
    except signing.SignatureError as error:
        raise Rejected(401, "invalid_signature", error.reason) from None
    commands = _parse(body, now, settings.webhook_tolerance)
    return commands, _check_known(app.ctx, commands)


def body_within_limit(req: func.HttpRequest, limit: int) -> bytes:
    declared = (req.headers.get("content-length") or "").strip()
    if declared:
        if not (declared.isascii() and declared.isdigit()):  # "²".isdigit() is True
            raise Rejected(400, "invalid_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Rejected(413, "payload_too_large", f"the body is limited to {limit} bytes")
    body = req.get_body() or b""
    if len(body) > limit:  # a missing or false Content-Length does not get past the cap
        raise Rejected(413, "payload_too_large", f"the body is limited to {limit} bytes")
    return body


@dataclass(frozen=True)
class _Field:
    index: int | None  # position in a list, None for a single answer

    def where(self, name: str) -> str:
        return name if self.index is None else f"[{self.index}].{name}"


def _parse(body: bytes, now: datetime, tolerance: timedelta) -> list[usecases.AnswerCommand]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # deep nesting too
        raise Rejected(400, "invalid_json", f"the body is not JSON: {error}") from None
    if isinstance(data, dict):
        return [_command(data, _Field(None), now, tolerance)]
    if isinstance(data, list) and len(data) > MAX_ANSWERS:
        raise Rejected(400, "invalid_schema", f"at most {MAX_ANSWERS} answers per request")
    if isinstance(data, list) and data:
        return [_command(item, _Field(i), now, tolerance) for i, item in enumerate(data)]
    raise Rejected(400, "invalid_schema", "expected an answer object or a non-empty list of them")


def _text(item: dict[str, Any], name: str, at: _Field) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise Rejected(400, "invalid_schema", f"{at.where(name)}: expected a non-empty string")
    if problem := limits.id_problem(value.strip()):
        raise Rejected(400, "invalid_schema", f"{at.where(name)}: {problem}")
    return value.strip()


def _command(item: Any, at: _Field, now: datetime, tolerance: timedelta) -> usecases.AnswerCommand:
    if not isinstance(item, dict):
        raise Rejected(400, "invalid_schema", f"{at.where('answer')}: expected an object")
    answer = _text(item, "answer", at).lower()
    if answer not in (AnswerValue.YES.value, AnswerValue.NO.value):
        raise Rejected(400, "invalid_schema", f"{at.where('answer')}: expected yes or no")
    request_id, policy, user = (_text(item, n, at) for n in ("request_id", "policy", "user"))
    if not request_id and not (policy and user):
        raise Rejected(
            400, "invalid_schema", f"{at.where('request_id')}: give request_id, or policy and user"
        )
    answered_at = now
    if stamp := _text(item, "answered_at", at):
        try:
            answered_at = datetime.fromisoformat(stamp)
        except ValueError:
            answered_at = None  # type: ignore[assignment]
        if answered_at is None or answered_at.tzinfo is None:
            raise Rejected(
                400,
                "invalid_schema",
                f"{at.where('answered_at')}: expected an ISO 8601 time with a zone, like "
                "2026-11-28T10:00:00Z",
            )
        if problem := limits.time_problem(answered_at, now):  # e.g. year 1, or a "yes" of 1970
            raise Rejected(400, "invalid_schema", f"{at.where('answered_at')}: {problem}")
        if answered_at > now + tolerance:  # a future "yes" would protect the user for longer
            raise Rejected(400, "invalid_schema", f"{at.where('answered_at')}: is in the future")
    return usecases.AnswerCommand(
        AnswerValue(answer),
        answered_at,
        request_id=request_id,
        policy=policy,
        user=user,
        justification=_justification(item, at),
    )


def _justification(item: dict[str, Any], at: _Field) -> str:
    value = item.get("justification")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(400, "invalid_schema", f"{at.where('justification')}: expected a string")
    if problem := limits.justification_problem(value.strip()):
        raise Rejected(
            422,
            "invalid_justification",
            f"{at.where('justification')}: {problem}; send one line of plain text",
        )
    return value.strip()


def _check_known(ctx: usecases.Context, commands: list[usecases.AnswerCommand]) -> list[str]:
    """Every answer must find its request (and its policy) before any is recorded; the found
    requests' ids, in order. The lookups go out a few at once (the store's write_concurrency):
    a 500-answer list is 500 round trips."""

    def find(command: usecases.AnswerCommand) -> Request | str:
        try:
            return usecases.find_request(ctx, command)
        except usecases.InputError as error:
            return str(error)

    found = each(ctx, commands, find)
    for index, request in enumerate(found):  # the first problem in the list is the one reported
        if isinstance(request, str):
            where = f"[{index}]: " if len(commands) > 1 else ""
            raise Rejected(422, "unknown_reference", f"{where}{request}")
        policy = ctx.policies.get(request.policy)
        if policy is None:
            raise Rejected(
                422, "unknown_reference", f"policy {request.policy!r} is no longer configured"
            )
        if usecases.unjustified_keep(policy, commands[index]):
            where = f"[{index}]." if len(commands) > 1 else ""
            raise Rejected(
                422,
                "justification_required",
                f"{where}justification: policy {policy.name!r} requires one with a yes",
            )
    return [r.id for r in found if not isinstance(r, str)]


def _record(
    app: app_context.AppContext, commands: list[usecases.AnswerCommand], request_ids: list[str]
) -> dict[str, int]:
    """Answers to one request are recorded in the list's order; answers to different requests
    do not wait for each other (up to the store's write_concurrency at once)."""
    now = app.now()
    by_request: dict[str, list[usecases.AnswerCommand]] = {}
    for command, request_id in zip(commands, request_ids, strict=True):
        by_request.setdefault(request_id, []).append(command)

    def record(group: list[usecases.AnswerCommand]) -> list[usecases.AnswerStatus]:
        statuses = []
        for command in group:
            try:
                statuses.append(usecases.record_answer(app.ctx, command, now))
            except usecases.InputError as error:  # checked above; gone in between: go on
                log.warning("answer not recorded: %s", error)
        return statuses

    counts = {status.value: 0 for status in usecases.AnswerStatus}
    for statuses in each(app.ctx, list(by_request.values()), record):
        for status in statuses:
            counts[status.value] += 1
    return counts

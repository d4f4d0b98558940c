"""JSON responses of the HTTP functions; errors are {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    response = json_response({"error": {"code": code, "message": message}}, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def is_json(request: func.HttpRequest) -> bool:
    """application/json, or a +json type, with or without parameters (charset)."""
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )

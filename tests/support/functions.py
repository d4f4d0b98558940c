"""Drive the registered functions as the Functions host would, without the host (it cannot be
installed here; ENVIRONMENT.md).

- `registered()`: function_app.app's functions by name. A FunctionApp lists its functions only
  once (a second get_functions() raises), so the list is taken once per session.
- `bindings()` / `trigger()`: the function.json the host would read; `binding_settings()` the
  app settings its %NAME% expressions need (the host loads no function whose setting is unset).
- `call_http`, `call_timer`, `call_queue`: real func.HttpRequest / TimerRequest / QueueMessage
  objects handed to the user function under its binding name.
- The host's queue behaviour (base64, dequeue count, visibilityTimeout, poison queue after
  maxDequeueCount read from host.json) is reclaim.host.QueuePump, the one implementation the
  local host uses as well; `pump()` builds one for a test's app context.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from reclaim import signing
from reclaim.functions.app_context import AppContext, QueueOptions
from reclaim.host import QueuePump


@cache
def registered() -> dict[str, Any]:
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@cache
def binding_settings() -> dict[str, str]:
    """Every app setting a binding names (%NAME%), with local.settings.sample.json's value."""
    text = "".join(f.get_function_json() for f in registered().values())
    sample = Path(__file__).resolve().parents[2] / "local.settings.sample.json"
    values = json.loads(sample.read_text(encoding="utf-8"))["Values"]
    return {name: values[name] for name in sorted(set(re.findall(r"%(\w+)%", text)))}


def bindings(name: str) -> list[dict[str, Any]]:
    return json.loads(registered()[name].get_function_json())["bindings"]


def trigger(name: str) -> dict[str, Any]:
    return next(b for b in bindings(name) if b["type"].endswith("Trigger"))


def _call(name: str, value: Any) -> Any:
    return registered()[name].get_user_function()(**{trigger(name)["name"]: value})


def call_http(
    name: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
) -> func.HttpResponse:
    route = trigger(name).get("route", name)
    for key, value in (route_params or {}).items():
        route = route.replace("{" + key + "}", value)
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        headers=headers or {},
        params=params or {},
        route_params=route_params or {},
        body=body,
    )
    return _call(name, request)


def call_timer(name: str, *, past_due: bool = False) -> None:
    _call(name, TimerRequest(past_due=past_due))


def call_queue(name: str, body: str | bytes, *, dequeue_count: int = 1) -> None:
    data = body.encode() if isinstance(body, str) else body
    _call(name, QueueMessage(id="test-message", body=data, dequeue_count=dequeue_count))


def pump(app: AppContext, options: QueueOptions | None = None) -> QueuePump:
    """The host's queue trigger for the worker, on the app's removal queue."""
    queue = app.queue
    return QueuePump(
        queue.account,  # type: ignore[attr-defined]
        queue.name,  # type: ignore[attr-defined]
        lambda message: _call("removal_worker", message),
        options or app.queue_options,
    )


def signed(secret: str, body: bytes, now: datetime | None = None, **extra: str) -> dict[str, str]:
    """Headers of a correctly signed JSON request sent at `now`."""
    timestamp = str(int(now.timestamp() if now else time.time()))
    return {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        signing.TIMESTAMP_HEADER: timestamp,
        signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
        **extra,
    }


def json_body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())

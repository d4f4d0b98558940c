"""A local stand-in for the Azure Functions host: the same registered functions on one machine.

`python -m reclaim host` serves the function app where Core Tools cannot be installed, and it is
the harness of the end-to-end tests. Against the storage in AzureWebJobsStorage (Azurite) it runs:
- the timers on their schedules (croniter, UTC; like run_on_startup=false, the first tick after
  start is the next scheduled time);
- the HTTP routes on 127.0.0.1 under /api/, as func.HttpRequest with route parameters. Function
  keys: when RECLAIM_LOCAL_FUNCTION_KEY is set, routes above auth level anonymous need it in the
  x-functions-key header or the `code` query parameter (401 otherwise); unset, no key is checked,
  as with `func start`;
- the queue trigger with the host's behaviour (QueuePump): poll, base64-decode, dequeue count,
  visibilityTimeout before a failed message is retried, the poison queue after maxDequeueCount
  (all read from host.json).
Binding expressions (%RECLAIM_REMOVAL_QUEUE%) resolve through the given Settings.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from reclaim.errors import ConfigurationError
from reclaim.functions import app_context, new_app
from reclaim.scheduling import latest_due
from reclaim.settings import SETTINGS, Settings

log = logging.getLogger("reclaim.host")

FUNCTION_KEY_VARIABLE = "RECLAIM_LOCAL_FUNCTION_KEY"
ROUTE_PREFIX = "/api/"
PROCESSING_LEASE = timedelta(minutes=5)  # a message being processed stays invisible this long
LATE_AFTER = timedelta(seconds=15)  # a timer tick later than this is past_due
MAX_REQUEST_BYTES = 100 * 1024 * 1024
_BINDING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")
_ROUTE_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}")


def resolve(expression: str, settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """A binding expression's %NAME% parts from the settings (else the environment)."""
    by_variable = {variable: attribute for attribute, (variable, _, _) in SETTINGS.items()}
    environ = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in by_variable:
            return str(getattr(settings, by_variable[name]))
        if name in environ:
            return environ[name]
        raise ConfigurationError(f"binding expression %{name}% names an unset app setting")

    return _BINDING_EXPRESSION.sub(value, expression)


def _route_pattern(template: str) -> re.Pattern[str]:
    """A Functions route template as a regular expression over the path below /api/."""
    pattern, position = "", 0
    for match in _ROUTE_PARAMETER.finditer(template):
        pattern += re.escape(template[position : match.start()])
        catch_all, name, optional = match.groups()
        body = ".*" if catch_all else "[^/]+"
        pattern += f"(?P<{name}>{body}){'?' if optional else ''}"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class _Binding:
    name: str  # the function's parameter
    data: dict[str, Any]


def _trigger(function: Any) -> _Binding:
    for binding in json.loads(function.get_function_json())["bindings"]:
        if binding["type"].endswith("Trigger"):
            return _Binding(binding["name"], binding)
    raise ConfigurationError(f"function {function.get_function_name()} has no trigger")


@dataclass
class _Route:
    name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str
    call: Callable[[func.HttpRequest], func.HttpResponse]


@dataclass
class _Timer:
    name: str
    schedule: str
    call: Callable[[TimerRequest], None]
    last_due: datetime | None = None


# ---- the queue trigger -----------------------------------------------------------------------


@dataclass(frozen=True)
class PumpResult:
    processed: int = 0  # handler returned normally; message deleted
    failed: int = 0  # handler raised; message made visible again after visibilityTimeout
    poisoned: int = 0  # moved to <queue>-poison by the pump (as the host does)


class QueuePump:
    """The host's queue-trigger behaviour for one queue: receive up to batchSize, base64-decode,
    hand over a func.QueueMessage with its dequeue count, delete on success; on failure make it
    visible again after visibilityTimeout, or move it to <queue>-poison when it has been
    dequeued maxDequeueCount times. A body that is not base64 goes to poison at once."""

    def __init__(
        self,
        account: Any,  # reclaim.adapters.storage.StorageAccount
        queue_name: str,
        handler: Callable[[QueueMessage], None],
        options: app_context.QueueOptions,
    ) -> None:
        from reclaim.adapters.queues import poison_name

        # No encode/decode policy: the pump sees the base64 text as stored, like the host.
        self.queue = account.queue_client(
            queue_name, message_encode_policy=None, message_decode_policy=None
        )
        self.poison_queue = account.queue_client(
            poison_name(queue_name), message_encode_policy=None, message_decode_policy=None
        )
        self.handler = handler
        self.options = options

    def create(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for client in (self.queue, self.poison_queue):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def pump_once(self) -> PumpResult:
        """One batch of at most batchSize visible messages."""
        from azure.core.exceptions import AzureError

        outcomes: Counter[str] = Counter()
        batch = list(
            self.queue.receive_messages(
                messages_per_page=self.options.batch_size,
                max_messages=self.options.batch_size,
                visibility_timeout=int(PROCESSING_LEASE.total_seconds()),
            )
        )
        for stored in batch:
            try:
                outcomes[self._deliver(stored)] += 1
            except AzureError as error:
                # Storage failed while settling this message: it reappears when its lease ends,
                # and the worker is idempotent. The rest of the batch still gets its turn.
                log.warning("queue message %s not settled (%s); it will be delivered again",
                            stored.id, type(error).__name__)  # fmt: skip
        return PumpResult(outcomes["processed"], outcomes["failed"], outcomes["poisoned"])

    def _deliver(self, stored: Any) -> str:
        """Hand one message to the function and settle it, as the host does: "processed",
        "failed" (visible again after visibilityTimeout) or "poisoned"."""
        limit = self.options.max_dequeue_count
        try:
            body = base64.b64decode(stored.content, validate=True)
        except (binascii.Error, ValueError, TypeError):
            log.error("queue message %s is not base64: moved to poison", stored.id)
            self._poison(stored)
            return "poisoned"
        if stored.dequeue_count > limit:  # a worker died holding it too often
            self._poison(stored)
            return "poisoned"
        message = QueueMessage(
            id=stored.id,
            body=body,
            dequeue_count=stored.dequeue_count,
            pop_receipt=stored.pop_receipt,
            insertion_time=stored.inserted_on,
            expiration_time=stored.expires_on,
            time_next_visible=stored.next_visible_on,
        )
        try:
            self.handler(message)
        except Exception:
            log.exception(
                "queue function failed on message %s (dequeue count %d of %d)",
                stored.id,
                stored.dequeue_count,
                limit,
            )
            if stored.dequeue_count >= limit:
                self._poison(stored)
                return "poisoned"
            else:
                self.queue.update_message(
                    stored,
                    visibility_timeout=int(self.options.visibility_timeout.total_seconds()),
                )
                return "failed"
        self.queue.delete_message(stored)
        return "processed"

    def drain(self, max_batches: int = 1000) -> PumpResult:
        """Pump until no message is visible; returns the totals."""
        total = PumpResult()
        for _ in range(max_batches):
            result = self.pump_once()
            total = PumpResult(
                total.processed + result.processed,
                total.failed + result.failed,
                total.poisoned + result.poisoned,
            )
            if not (result.processed or result.failed or result.poisoned):
                break
        return total

    def _poison(self, stored: Any) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.poison_queue.send_message(stored.content)
        except ResourceNotFoundError:
            self.poison_queue.create_queue()
            self.poison_queue.send_message(stored.content)
        self.queue.delete_message(stored)


# ---- the host --------------------------------------------------------------------------------


class LocalHost:
    """The registered functions of reclaim/functions/ served on one machine.

    `start()` installs the app context and serves HTTP; with background=True (serve) a thread
    also ticks the timers and pumps the queue. Tests drive it instead: `tick(now)`,
    `run_timer(name)`, `drain()`, and HTTP requests to `url`."""

    def __init__(
        self,
        settings: Settings,
        policies_path: Path | None = None,
        *,
        port: int = 7071,
        clock: Callable[[], datetime] | None = None,
        app: app_context.AppContext | None = None,
        env: Mapping[str, str] | None = None,
        function_key: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        from reclaim.adapters.storage import storage_from_env

        environ = os.environ if env is None else env
        self.settings = settings
        self.app = app or app_context.build(
            settings, env=env, policies_file=policies_path, clock=clock or app_context.utc_now
        )
        self.function_key = (
            environ.get(FUNCTION_KEY_VARIABLE, "") if function_key is None else function_key
        )
        self.poll_interval = poll_interval
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.routes: list[_Route] = []
        self.timers: dict[str, _Timer] = {}
        self.pumps: dict[str, QueuePump] = {}
        account = storage_from_env(env)
        for function in new_app().get_functions():
            name = function.get_function_name()
            trigger = _trigger(function)
            user_function = function.get_user_function()

            def call(value: Any, _f: Any = user_function, _arg: str = trigger.name) -> Any:
                return _f(**{_arg: value})

            kind = trigger.data["type"]
            if kind == "httpTrigger":
                self.routes.append(
                    _Route(
                        name,
                        trigger.data.get("route") or name,
                        _route_pattern(trigger.data.get("route") or name),
                        frozenset(m.upper() for m in trigger.data.get("methods") or ()),
                        str(trigger.data.get("authLevel", "FUNCTION")).upper(),
                        call,
                    )
                )
            elif kind == "timerTrigger":
                self.timers[name] = _Timer(
                    name, resolve(trigger.data["schedule"], settings, env), call
                )
            elif kind == "queueTrigger":
                if trigger.data.get("connection") != "AzureWebJobsStorage":
                    raise ConfigurationError(f"{name}: only AzureWebJobsStorage queues are served")
                queue_name = resolve(trigger.data["queueName"], settings, env)
                self.pumps[name] = QueuePump(account, queue_name, call, self.app.queue_options)
            else:
                raise ConfigurationError(f"{name}: the local host cannot serve {kind}")

    # -- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, *, background: bool = False) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        for pump in self.pumps.values():
            pump.create()
        now = self.app.now()
        for timer in self.timers.values():
            timer.last_due = latest_due(timer.schedule, now)  # run_on_startup: false
        app_context.install(self.app)
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
        ]
        if background:
            self._threads.append(threading.Thread(target=self._loop, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        app_context.install(None)

    def __enter__(self) -> LocalHost:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.tick()
                for pump in self.pumps.values():
                    pump.drain(max_batches=10)
            except Exception:  # the host keeps going; the failure is in the log
                log.exception("local host loop")

    # -- timers

    def tick(self) -> list[str]:
        """Fire every timer whose schedule came due (by the host's clock) since it last fired;
        the names fired."""
        now = self.app.now()
        fired = []
        for timer in self.timers.values():
            due = latest_due(timer.schedule, now)
            if timer.last_due is not None and due <= timer.last_due:
                continue
            timer.last_due = due
            self._fire(timer, past_due=now - due > LATE_AFTER)
            fired.append(timer.name)
        return fired

    def run_timer(self, name: str, *, past_due: bool = False) -> None:
        """Fire one timer now, whatever its schedule."""
        self._fire(self.timers[name], past_due=past_due)

    @staticmethod
    def _fire(timer: _Timer, *, past_due: bool) -> None:
        try:
            timer.call(TimerRequest(past_due=past_due))
        except Exception:
            log.exception("timer function %s failed", timer.name)

    # -- queues

    def drain(self) -> PumpResult:
        """Run the queue triggers until their queues have no visible message."""
        results = [pump.drain() for pump in self.pumps.values()]
        return PumpResult(
            sum(r.processed for r in results),
            sum(r.failed for r in results),
            sum(r.poisoned for r in results),
        )

    # -- HTTP

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request through the routes: (status, headers, body)."""
        parts = urlsplit(target)
        if not parts.path.startswith(ROUTE_PREFIX):
            return _plain(404, "not found")
        path = parts.path[len(ROUTE_PREFIX) :]
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        matched = [(r, m) for r in self.routes if (m := r.pattern.match(path))]
        if not matched:
            return _plain(404, "not found")
        allowed = [(r, m) for r, m in matched if not r.methods or method.upper() in r.methods]
        if not allowed:
            return _plain(405, "method not allowed")
        route, match = allowed[0]
        if route.auth_level != "ANONYMOUS" and self.function_key:
            given = {k.lower(): v for k, v in headers.items()}.get("x-functions-key") or params.get(
                "code", ""
            )
            if not hmac.compare_digest(given.encode(), self.function_key.encode()):
                return _plain(401, "a function key is required (x-functions-key or ?code=)")
        request = func.HttpRequest(
            method=method.upper(),
            url=f"http://127.0.0.1{target}",
            headers=dict(headers),
            params=params,
            route_params={k: v for k, v in match.groupdict().items() if v is not None},
            body=body,
        )
        try:
            response = route.call(request)
        except Exception:
            log.exception("HTTP function %s failed", route.name)
            return _plain(500, "internal server error")
        out_headers = dict(response.headers)
        if response.mimetype:
            out_headers.setdefault("Content-Type", response.mimetype)
        return response.status_code, out_headers, response.get_body() or b""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:  # the Functions front end's limit
                    status, headers, payload = _plain(413, "request body too large")
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length > 0 else b""
                    status, headers, payload = host.dispatch(
                        self.command, self.path, dict(self.headers.items()), body
                    )
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.info("%s %s", self.address_string(), format % args)

        return Handler


def _plain(status: int, text: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()


def serve(
    settings: Settings,
    policies_path: Path | None,
    port: int = 7071,
    *,
    stop_event: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Run the function set locally until stop_event is set (or Ctrl+C). 0 when stopped, 2 when
    the configuration is wrong (the message says what to set)."""
    logging.getLogger("reclaim").setLevel(logging.INFO)
    try:
        host = LocalHost(settings, policies_path, port=port, clock=clock)
        host.start(background=True)
    except (ConfigurationError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except AzureError as error:
        sys.stderr.write(f"error: storage in AzureWebJobsStorage cannot be reached: {error}\n")
        return 2
    timers = ", ".join(f"{t.name} ({t.schedule})" for t in host.timers.values())
    routes = ", ".join(
        f"{'/'.join(sorted(r.methods))} {ROUTE_PREFIX}{r.template}" for r in host.routes
    )
    key_note = " (function key required)" if host.function_key else ""
    sys.stderr.write(
        f"reclaim local host on {host.url}{key_note}\n  HTTP: {routes}\n  timers: {timers}\n"
        f"  queue: {settings.removal_queue} (poison: {settings.removal_queue}-poison)\n"
    )
    stop = stop_event or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return 0

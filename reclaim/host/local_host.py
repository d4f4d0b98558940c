"""LocalHost: the registered functions of reclaim/functions/ served on one machine.

What each part follows in the real host's documentation is said in reclaim/host/bindings.py
(%SETTING% binding expressions), http_server.py (HTTP parsing and limits) and queue_pump.py (the
queue trigger). The timers run on their NCRONTAB schedules (croniter, UTC; like
run_on_startup=false, the first tick after start is the next scheduled time). Function keys: when
RECLAIM_LOCAL_FUNCTION_KEY is set, routes above auth level anonymous need it in the
x-functions-key header or the `code` query parameter (401 otherwise); unset, no key is checked,
as with `func start`.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.functions.timer import TimerRequest

from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.host.bindings import registered_functions, route_pattern
from reclaim.host.http_server import HttpLimits, HttpServer
from reclaim.host.queue_pump import PumpResult, QueuePump
from reclaim.scheduling import latest_due
from reclaim.settings import Settings

log = logging.getLogger("reclaim.host")

FUNCTION_KEY_VARIABLE = "RECLAIM_LOCAL_FUNCTION_KEY"
ROUTE_PREFIX = "/api/"
LATE_AFTER = timedelta(seconds=15)  # a timer tick later than this is past_due


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
        http_limits: HttpLimits | None = None,
    ) -> None:
        from reclaim.adapters.storage import storage_from_env

        environ = os.environ if env is None else env
        self.settings = settings
        self.app = app or app_context.build(
            settings, env=env, policies_file=policies_path, clock=clock or app_context.utc_now
        )
        functions = registered_functions(environ)  # an unset %SETTING% fails here, loudly
        self.function_key = (
            environ.get(FUNCTION_KEY_VARIABLE, "") if function_key is None else function_key
        )
        self.poll_interval = poll_interval
        self._port = port
        self.http_limits = http_limits or HttpLimits()
        self._server: HttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.routes: list[_Route] = []
        self.timers: dict[str, _Timer] = {}
        self.pumps: dict[str, QueuePump] = {}
        account = storage_from_env(env)
        for function in functions:
            name, trigger = function.name, function.trigger
            if function.kind == "httpTrigger":
                self.routes.append(
                    _Route(
                        name,
                        trigger.get("route") or name,
                        route_pattern(trigger.get("route") or name),
                        frozenset(m.upper() for m in trigger.get("methods") or ()),
                        str(trigger.get("authLevel", "FUNCTION")).upper(),
                        function.call,
                    )
                )
            elif function.kind == "timerTrigger":
                self.timers[name] = _Timer(name, trigger["schedule"], function.call)
            elif function.kind == "queueTrigger":
                if trigger.get("connection") != "AzureWebJobsStorage":
                    raise ConfigurationError(f"{name}: only AzureWebJobsStorage queues are served")
                self.pumps[name] = QueuePump(
                    account,
                    trigger["queueName"],
                    function.call,
                    self.app.queue_options,
                    settings.claim_lease,
                )
            else:
                raise ConfigurationError(f"{name}: the local host cannot serve {function.kind}")

    # -- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, *, background: bool = False) -> None:
        self._server = HttpServer(self._port, self.dispatch, self.http_limits)
        for pump in self.pumps.values():
            pump.create()
        now = self.app.now()
        for timer in self.timers.values():
            timer.last_due = latest_due(timer.schedule, now)  # run_on_startup: false
        app_context.install(self.app)
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
        for pump in self.pumps.values():
            pump.close()
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
        return sum((pump.drain() for pump in self.pumps.values()), PumpResult())

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
        if response.mimetype and not any(k.lower() == "content-type" for k in out_headers):
            out_headers["Content-Type"] = response.mimetype
        return response.status_code, out_headers, response.get_body() or b""


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
    queues = ", ".join(
        f"{p.queue.queue_name} (poison: {p.poison_queue.queue_name})" for p in host.pumps.values()
    )
    sys.stderr.write(
        f"reclaim local host on {host.url}{key_note}\n  HTTP: {routes}\n  timers: {timers}\n"
        f"  queue: {queues}\n"
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

"""The function app's composition root: one usecases.Context per process, built on first use.

Triggers call `current()`; it builds everything from Settings.from_env() and the host's storage
variables (reclaim.adapters.storage) once, then shares it: Table storage for state, the Storage
queue the worker is triggered by, the adapters each policy names (reclaim.wiring), the secrets.
Importing this module is cheap; the SDKs load on the first invocation, not at cold start.

Tests and the local host (reclaim.host) `install()` a context of their own, with an injected clock.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from reclaim import usecases
from reclaim.domain.policy import Policy, PolicyError
from reclaim.domain.records import RemovalMessage
from reclaim.errors import ConfigurationError
from reclaim.ports import AdminIdentities, Secrets
from reclaim.settings import Settings

APP_ROOT = Path(__file__).resolve().parents[2]  # where function_app.py and host.json live
HOST_JSON = APP_ROOT / "host.json"


class RemovalQueue(Protocol):
    """The WorkQueue the worker is triggered by, plus its poison queue."""

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None: ...

    def poison(self, message_text: str, reason: str) -> None: ...


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


def _timespan(text: str) -> timedelta:
    """A host.json timespan: [d.]hh:mm:ss."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ConfigurationError(f"host.json: expected a timespan like 00:00:30, got {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class QueueOptions:
    """extensions.queues of host.json (defaults: the host's own)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)

    @classmethod
    def from_host_json(cls, path: Path = HOST_JSON) -> QueueOptions:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"cannot read {path}: {error}") from None
        queues = (data.get("extensions") or {}).get("queues") or {}
        batch_size = int(queues.get("batchSize", cls.batch_size))
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(queues.get("maxDequeueCount", cls.max_dequeue_count)),
            visibility_timeout=_timespan(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=_timespan(queues.get("maxPollingInterval", "00:01:00")),
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    """Everything a trigger needs: the use cases' Context, the queue, settings, secrets, time."""

    settings: Settings
    ctx: usecases.Context
    queue: RemovalQueue
    secrets: Callable[[], Secrets]  # built on first use: only the webhook needs one
    queue_options: QueueOptions = field(default_factory=QueueOptions.from_host_json)
    clock: Callable[[], datetime] = utc_now
    identities: AdminIdentities | None = None  # built on first use: only the manage routes need it

    def now(self) -> datetime:
        return self.clock()

    def admin_identities(self) -> AdminIdentities:
        """The manage routes' token check; ConfigurationError (kept for the next call to retry)
        while the tenant or the audience is not set."""
        if self.identities is None:
            from reclaim.adapters.entra_tokens import EntraTokenVerifier

            self.identities = EntraTokenVerifier.from_settings(self.settings)
        return self.identities

    def webhook_secret(self) -> str:
        return self.secrets().get(self.settings.webhook_secret_name)

    def link_key(self) -> bytes:
        """The signed links' key (the answer page); ConfigurationError when it is not set."""
        from reclaim.adapters.links import link_key

        return link_key(self.settings, self.secrets())


def policies_path(settings: Settings, override: Path | None = None) -> Path:
    """A relative path is read from the working directory, else from the app's root (Azure
    runs the worker in the app's folder; the local host may run elsewhere)."""
    path = override or settings.policies_file
    if path.is_absolute() or path.exists():
        return path
    return APP_ROOT / path


def build(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    policies_file: Path | None = None,
    policies: Mapping[str, Policy] | None = None,
    adapters: usecases.Adapters | None = None,
    secrets: Secrets | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> AppContext:
    """The production context from settings and the environment; tests replace the adapters,
    the policies or the secrets, never the storage."""
    from reclaim.adapters.queues import StorageQueue
    from reclaim.adapters.storage import storage_from_env
    from reclaim.adapters.tables import TableStore
    from reclaim.policy_file import load_policies
    from reclaim.wiring import Wiring, removal_limits

    settings = settings or Settings.from_env(env)
    if settings.state_backend != "tables":
        raise ConfigurationError(
            "the function app keeps its state in Table storage: set RECLAIM_STATE_BACKEND=tables "
            "(the SQLite store is for the CLI on one machine)"
        )
    path = policies_path(settings, policies_file)
    if policies is None:
        try:
            policies = {p.name: p for p in load_policies(path)}
        except PolicyError as error:
            raise ConfigurationError(str(error)) from None
    account = storage_from_env(env)
    store = TableStore.from_account(account, settings.table_prefix)
    queue = StorageQueue(account, settings.removal_queue)
    wiring = Wiring(settings, path.parent, secrets)
    ctx = usecases.Context(
        store,
        queue,
        adapters or wiring,
        dict(policies),
        forced_kill_switch=settings.kill_switch,
        limits=removal_limits(settings),
        retention=settings.retention,
    )
    return AppContext(settings, ctx, queue, wiring.secrets, clock=clock)


_lock = threading.Lock()
_current: AppContext | None = None


def current() -> AppContext:
    """This process's context, built on the first call (a failed build is tried again on the
    next call, so a fixed setting takes effect without a restart)."""
    global _current
    with _lock:
        if _current is None:
            _current = build()
        return _current


def install(app: AppContext | None) -> None:
    """Use `app` from now on (the local host, tests); None: build from the environment again."""
    global _current
    with _lock:
        _current = app

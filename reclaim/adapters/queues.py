"""The removal queue on Azure Storage queues (azure-storage-queue): reclaim.ports.WorkQueue.

Messages are RemovalMessage JSON, base64-encoded (TextBase64EncodePolicy) because the Functions
queue trigger decodes base64 by default. A delay becomes the message's initial visibility
timeout, so a deferred removal (kill switch, throttling) is not seen before it is due. The queue
and its poison queue are created on first use when missing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from reclaim.adapters.storage import StorageAccount, storage_from_env
from reclaim.domain.records import RemovalMessage
from reclaim.errors import TransientError

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from reclaim.settings import Settings

log = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"  # the Functions host moves messages it gave up on to <queue>-poison
MAX_DELAY = timedelta(days=7)  # the longest visibility timeout Azure queues accept


def poison_name(queue_name: str) -> str:
    return f"{queue_name}{POISON_SUFFIX}"


class _Queue:
    """One queue client that creates its queue when a send finds it missing (first use, or the
    account lost its data): no extra request while the queue exists."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client

    def send(self, text: str, visibility_timeout: int | None = None) -> None:
        try:
            self.client.send_message(text, visibility_timeout=visibility_timeout)
        except ResourceNotFoundError:
            self.create()
            self.client.send_message(text, visibility_timeout=visibility_timeout)

    def create(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.client.create_queue()


class StorageQueue:
    """reclaim.ports.WorkQueue over one Azure Storage queue, plus its poison queue."""

    def __init__(self, account: StorageAccount, queue_name: str, **client_options: Any) -> None:
        self.name = queue_name
        self.account = account
        self._queue = _Queue(account.queue_client(queue_name, **client_options))
        self._poison = _Queue(account.queue_client(poison_name(queue_name), **client_options))

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, **client_options: Any
    ) -> StorageQueue:
        return cls(storage_from_env(env), settings.removal_queue, **client_options)

    @property
    def client(self) -> QueueClient:
        """The removal queue itself (the local host and tests receive through it)."""
        return self._queue.client

    @property
    def poison_client(self) -> QueueClient:
        return self._poison.client

    def create(self) -> None:
        """Create both queues now (they are otherwise created on the first send)."""
        self._queue.create()
        self._poison.create()

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        seconds = None
        if delay is not None and delay > timedelta(0):
            seconds = int(min(delay, MAX_DELAY).total_seconds() + 0.999)  # never early
        try:
            self._queue.send(message.to_json(), visibility_timeout=seconds)
        except AzureError as error:
            raise TransientError(
                f"could not send removal {message.request_id} to queue {self.name!r} on "
                f"{self.account.describe()}: {type(error).__name__}"
            ) from error

    def poison(self, message_text: str, reason: str) -> None:
        """Put a message the worker gave up on into <queue>-poison, as the host would after
        maxDequeueCount attempts: the original text, so an operator can inspect or resend it."""
        log.warning("removal message moved to %s: %s", poison_name(self.name), reason)
        self._poison.send(message_text)

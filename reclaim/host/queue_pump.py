"""The queue trigger as the Functions host runs it, for one queue.

Follows "Azure Queue storage trigger for Azure Functions" (learn.microsoft.com/azure/
azure-functions/functions-bindings-storage-queue-trigger, sections "Concurrency" and "Poison
messages") and its host.json settings (functions-bindings-storage-queue#host-json), as the
extension's QueuesOptions documents them:
- messages are fetched in batches of `batchSize` and processed in parallel; the host keeps
  fetching batches while no more than `newBatchThreshold` messages are in flight, so at most
  batchSize + newBatchThreshold run at once;
- a message is base64 text (messageEncoding base64) handed over with its dequeue count;
- on success it is deleted; when the function fails it becomes visible again after
  `visibilityTimeout`; after `maxDequeueCount` failed attempts it is moved to <queue>-poison.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage

from reclaim.functions import app_context

log = logging.getLogger("reclaim.host")

# A message being processed stays invisible this long by default: the claim lease's default
# (RECLAIM_CLAIM_LEASE; LocalHost passes the setting), so a message whose worker died comes back
# when its claim may be recovered.
PROCESSING_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class PumpResult:
    processed: int = 0  # handler returned normally; message deleted
    failed: int = 0  # handler raised; message made visible again after visibilityTimeout
    poisoned: int = 0  # moved to <queue>-poison by the pump (as the host does)

    def __add__(self, other: PumpResult) -> PumpResult:
        return PumpResult(
            self.processed + other.processed,
            self.failed + other.failed,
            self.poisoned + other.poisoned,
        )


class QueuePump:
    """The host's queue-trigger behaviour for one queue (see the module's docstring). A body that
    is not base64 goes to poison at once."""

    def __init__(
        self,
        account: Any,  # reclaim.adapters.storage.StorageAccount
        queue_name: str,
        handler: Callable[[QueueMessage], None],
        options: app_context.QueueOptions,
        processing_lease: timedelta = PROCESSING_LEASE,
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
        self.processing_lease = processing_lease
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def create(self) -> None:
        for client in (self.queue, self.poison_queue):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def pump_once(self) -> PumpResult:
        """One batch of at most batchSize visible messages, processed in parallel."""
        return self._collect(wait(self._submit(self._receive())).done)

    def drain(self, max_batches: int = 1000) -> PumpResult:
        """Fetch and process as the host does until no message is visible and none is in flight:
        a new batch whenever at most newBatchThreshold messages are still being processed."""
        total, pending, batches = PumpResult(), set[Future[str]](), 0
        while True:
            if len(pending) <= self.options.new_batch_threshold and batches < max_batches:
                batch = self._receive()
                batches += 1
                if batch:
                    pending |= self._submit(batch)
                    continue
            if not pending:
                return total
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            total += self._collect(done)

    # -- one message

    def _receive(self) -> list[Any]:
        return list(
            self.queue.receive_messages(
                messages_per_page=self.options.batch_size,
                max_messages=self.options.batch_size,
                visibility_timeout=max(1, int(self.processing_lease.total_seconds())),
            )
        )

    def _submit(self, batch: Iterable[Any]) -> set[Future[str]]:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.options.batch_size + self.options.new_batch_threshold,
                    thread_name_prefix="queue-trigger",
                )
            return {self._executor.submit(self._settle, stored) for stored in batch}

    @staticmethod
    def _collect(done: Iterable[Future[str]]) -> PumpResult:
        outcomes = Counter(future.result() for future in done)
        return PumpResult(outcomes["processed"], outcomes["failed"], outcomes["poisoned"])

    def _settle(self, stored: Any) -> str:
        try:
            return self._deliver(stored)
        except AzureError as error:
            # Storage failed while settling this message: it reappears when its lease ends,
            # and the worker is idempotent. The rest of the batch still gets its turn.
            log.warning("queue message %s not settled (%s); it will be delivered again",
                        stored.id, type(error).__name__)  # fmt: skip
            return "unsettled"

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
            self.queue.update_message(
                stored, visibility_timeout=int(self.options.visibility_timeout.total_seconds())
            )
            return "failed"
        self.queue.delete_message(stored)
        return "processed"

    def _poison(self, stored: Any) -> None:
        try:
            self.poison_queue.send_message(stored.content)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):  # another message of the batch made it
                self.poison_queue.create_queue()
            self.poison_queue.send_message(stored.content)
        self.queue.delete_message(stored)

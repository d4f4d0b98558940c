"""The removal worker: one queue message is one removal (RECLAIM_REMOVAL_QUEUE).

The host delivers each message at least once: retries by dequeue count up to maxDequeueCount
(host.json), then <queue>-poison. perform_removal is idempotent by request id and re-checks before
acting; it defers by sending the message again with a delay (kill switch, throttling), so those
never count as failures here. What the worker does with each result:
- FAILED (recorded in the ledger): the message goes to the poison queue now, the function
  returns normally (retrying a permanent failure only repeats it);
- a malformed message or one naming no known request (MessageError): logged and poisoned, never a
  crash loop;
- any other exception propagates: the host retries the message and poisons it after
  maxDequeueCount; the delivery that the host will not repeat is told `final_attempt`, so a
  transient failure there is recorded as FAILED rather than lost.
"""

from __future__ import annotations

import logging

import azure.functions as func

from reclaim import usecases
from reclaim.domain.records import MessageError, RemovalMessage
from reclaim.functions import app_context

log = logging.getLogger("reclaim.functions.worker")

bp = func.Blueprint()


@bp.function_name("removal_worker")
@bp.queue_trigger(
    arg_name="msg", queue_name="%RECLAIM_REMOVAL_QUEUE%", connection="AzureWebJobsStorage"
)
def removal_worker(msg: func.QueueMessage) -> None:
    app = app_context.current()
    body = msg.get_body()
    text = body.decode("utf-8", errors="replace")
    dequeue_count = msg.dequeue_count or 1
    try:
        message = RemovalMessage.from_json(body)
        report = usecases.perform_removal(
            app.ctx,
            usecases.RemovalCommand(
                message, final_attempt=dequeue_count >= app.queue_options.max_dequeue_count
            ),
            app.now(),
        )
    except MessageError as error:
        log.error("removal message %s cannot be acted on (%s): poisoned", msg.id or "", error)
        app.queue.poison(text, f"malformed: {error}")
        return
    if report.status is usecases.RemovalStatus.FAILED:
        app.queue.poison(text, f"removal {message.request_id} failed: {report.detail}")
        return
    log.info(
        "removal %s of %s: %s%s",
        message.request_id,
        message.user.label,
        report.status.value,
        f" ({report.detail})" if report.detail else "",
    )

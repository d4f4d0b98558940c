"""A fake Teams Workflows webhook ("When a Teams webhook request is received") over real HTTPS.

The URL is the flow's: `/workflows/<id>/triggers/manual/paths/invoke?api-version=1&sp=...&sv=1.0
&sig=<signature>`, and the signature is what authenticates a caller (a wrong or missing one is
401 DirectApiInvalidAuthorizationSignature / DirectApiAuthorizationRequired, as Power Automate
answers). The trigger takes JSON only: another Content-Type or a body that is not JSON is 400
InvalidRequestContent, with nothing run. Anything else is accepted with 202 and run afterwards,
as Workflows does, so what the flow cannot post fails in the run, unseen by the caller: a payload
over Teams' 28 KB, no `attachments`, an attachment that is not an Adaptive Card
(application/vnd.microsoft.card.adaptive with content of type AdaptiveCard), a card with no
version, or no `recipient` for the 1:1 chat the flow posts in. `cards` holds what the flow
posted (recipient, card), `failed_runs` why a run failed.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.identity import FakeReply, FakeRequest, FakeService

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_PAYLOAD_BYTES = 28 * 1024


@dataclass(frozen=True)
class PostedCard:
    recipient: str
    card: dict[str, Any]


class FakeTeamsWorkflow(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.workflow_id = uuid.uuid4().hex
        self.signature = secrets.token_urlsafe(32)
        self.cards: list[PostedCard] = []
        self.failed_runs: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return f"/workflows/{self.workflow_id}/triggers/manual/paths/invoke"

    @property
    def webhook_url(self) -> str:
        """The flow's HTTP POST URL, signature included: a secret."""
        return (
            f"{self.base_url}{self.path}?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
            f"&sig={self.signature}"
        )

    def handle(self, request: FakeRequest) -> FakeReply:
        with self._lock:
            self.requests += 1
        if request.path != self.path or request.method != "POST":
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        signature = request.query.get("sig")
        if not signature:
            return _error(
                401,
                "DirectApiAuthorizationRequired",
                "The request must be authenticated only by Shared Access scheme.",
            )
        if not secrets.compare_digest(signature, self.signature):
            return _error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authentication token is not valid.",
            )
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            body = json.loads(request.body) if kind == "application/json" else None
        except ValueError:
            body = None
        if body is None:
            return _error(
                400,
                "InvalidRequestContent",
                "The input body for trigger 'manual' of type 'Request' must be of type JSON, but "
                f"was of type '{kind or 'none'}'.",
            )
        failure = _run_failure(body, len(request.body))
        with self._lock:
            if failure:
                self.failed_runs.append(failure)
            else:
                for attachment in body["attachments"]:
                    self.cards.append(PostedCard(body["recipient"], attachment["content"]))
        return FakeReply(202)


def _run_failure(body: Any, size: int) -> str:
    """Why the flow's run fails on this payload, or ""."""
    if size > MAX_PAYLOAD_BYTES:
        return f"message size {size} bytes is over the limit of {MAX_PAYLOAD_BYTES}"
    if not isinstance(body, dict):
        return "the trigger body is not an object"
    if not isinstance(body.get("recipient"), str) or "@" not in body["recipient"]:
        return "Post card in a chat: the recipient is not a user principal name"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "no attachments: Workflows posts Adaptive Cards only"
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD:
            return "an attachment is not an Adaptive Card"
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return "the attachment's content is not of type AdaptiveCard"
        if not content.get("version"):
            return "the card has no version"
    return ""


def _error(status: int, code: str, message: str) -> FakeReply:
    return FakeReply(status, {"error": {"code": code, "message": message}})


@pytest.fixture
def teams_workflow() -> Iterator[FakeTeamsWorkflow]:
    with FakeTeamsWorkflow() as workflow:
        yield workflow

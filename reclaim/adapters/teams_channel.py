"""Campaign channel `teams`: one Adaptive Card per recipient through a Teams Workflows webhook
("When a Teams webhook request is received"), whose flow posts it to that person in a 1:1 chat
with the Flow bot.

The webhook's URL carries its own signature (`sig=`), so it is a secret: the secret named by
RECLAIM_TEAMS_WEBHOOK_SECRET_NAME holds it, read through the secrets port and never logged (an
error names the status and the service's error code only). The body is what the trigger takes,
plus the recipient for the flow's "Post card in a chat or channel" step:

    {"type": "message", "recipient": "<UPN>",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null, "content": <AdaptiveCard 1.4>}]}

Workflows answers 202 Accepted as soon as it has the request; the flow runs afterwards, so a card
it cannot post (over Teams' 28 KB, or not an Adaptive Card) fails there, unseen by reclaim: the
channel refuses such a card itself before sending. The flow must post to the recipient in a
chat, never to a channel: the links in the card answer for that one person.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import requests

from reclaim.adapters.adaptive_card import card
from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.adapters.links import LinkSigner
from reclaim.adapters.personal_channel import Delivery, PersonalChannel
from reclaim.domain.lifecycle import Request
from reclaim.domain.messages import Action, Message
from reclaim.errors import ConfigurationError
from reclaim.ports import Secrets
from reclaim.settings import Settings

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_PAYLOAD_BYTES = 28 * 1024  # Teams' limit for a message with a card
_SIGNATURE = re.compile(r"([?&]sig=)[^&\s\"']+")


class _HideSignature(logging.Filter):
    """urllib3 logs each request line at DEBUG, query included: the webhook's signature is cut
    out of it, so turning on debug logging does not write the secret URL to the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sig=" in message:
            record.msg, record.args = _SIGNATURE.sub(r"\1[hidden]", message), ()
        return True


_HIDE_SIGNATURE = _HideSignature()


class TeamsWorkflowChannel(PersonalChannel):
    name = "teams"

    def __init__(
        self,
        webhook_url: Callable[[], str],
        signer: LinkSigner,
        *,
        ca_bundle: str = "",
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 30.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(signer)
        self._webhook_url = webhook_url
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True
        logging.getLogger("urllib3.connectionpool").addFilter(_HIDE_SIGNATURE)  # once: same object

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> TeamsWorkflowChannel:
        name = settings.teams_webhook_secret_name
        if not name:
            raise ConfigurationError(
                "campaign channel teams posts to a Workflows webhook: set "
                "RECLAIM_TEAMS_WEBHOOK_SECRET_NAME (the secret holding the flow's HTTP POST URL)"
            )
        signer = LinkSigner.from_settings(settings, secrets)
        return cls(lambda: secrets.get(name), signer, ca_bundle=settings.ca_bundle)

    def recipient(self, request: Request) -> str:
        return request.user.upn  # the flow finds the person's chat by UPN

    def deliver(self, message: Message, links: list[tuple[Action, str]]) -> Delivery:
        body = json.dumps(payload(message, links), separators=(",", ":")).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            return Delivery(
                False, f"the card is {len(body)} bytes, over Teams' {MAX_PAYLOAD_BYTES}"
            )
        url = self._webhook_url()
        if not url.startswith("https://"):
            raise ConfigurationError(
                "the secret RECLAIM_TEAMS_WEBHOOK_SECRET_NAME names is not the flow's https:// URL"
            )
        response = send_with_retries(
            lambda: self.session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            ),
            what="the Teams workflow webhook",
            policy=self.retry,
            sleep=self._sleep,
            idempotent=False,  # a repeat would post a second card
        )
        if 200 <= response.status_code < 300:
            return Delivery(True, "card accepted by the Teams workflow")
        return Delivery(False, f"the Teams workflow answered HTTP {_said(response)}")


def payload(message: Message, links: list[tuple[Action, str]]) -> dict[str, Any]:
    return {
        "type": "message",
        "recipient": message.recipient,
        "attachments": [
            {"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card(message, links)}
        ],
    }


def _said(response: requests.Response) -> str:
    """The status and the service's error code; never the body's free text, which can echo the
    request (its URL holds the webhook's signature)."""
    try:
        error = response.json().get("error")
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
    except (ValueError, AttributeError):
        code = ""
    return f"{response.status_code} {code}".strip()

"""Campaign channel `email`: one mail per recipient through Graph `POST /users/{sender}/sendMail`
from the mailbox RECLAIM_MAIL_SENDER names.

The body is sendMail's JSON: `message` (subject, an HTML itemBody, toRecipients) and
`saveToSentItems: false` (the links are capabilities: a copy in the sender's Sent Items would let
whoever reads that mailbox answer for everyone). Graph answers 202 Accepted with no body: queued
by Exchange, not yet delivered, so "asked" means Exchange took the mail. 429 and 5xx are retried
by the client (a retry after a 5xx may deliver a mail twice: the same links, harmless). Any other
status is that recipient not asked, with Graph's status and error code (ErrorInvalidUser: the
sender mailbox does not exist; MailboxNotEnabledForRESTAPI: it has no Exchange Online mailbox);
401/403 stop the batch as PermissionDenied (Mail.Send, scoped to the sender by Exchange RBAC for
Applications). Exchange Online sends at most 30 messages a minute from one mailbox: large
campaigns are throttled (429) and paced by the client.
"""

from __future__ import annotations

from typing import Any

from reclaim.adapters.graph.client import GraphClient, shared_client
from reclaim.adapters.graph.paths import segment
from reclaim.adapters.links import LinkSigner
from reclaim.adapters.mail_body import html_body
from reclaim.adapters.personal_channel import Delivery, PersonalChannel
from reclaim.domain.lifecycle import Request
from reclaim.domain.messages import Action, Message
from reclaim.errors import ConfigurationError
from reclaim.ports import Secrets
from reclaim.settings import Settings

SEND_MAIL = (
    'Mail.Send (better: Exchange RBAC for Applications, the role "Application Mail.Send" scoped '
    'to the sender mailbox, README "Campaign channel email")'
)


class GraphMailChannel(PersonalChannel):
    name = "email"

    def __init__(self, client: GraphClient, sender: str, signer: LinkSigner) -> None:
        super().__init__(signer)
        self._client = client
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> GraphMailChannel:
        if not settings.mail_sender:
            raise ConfigurationError(
                "campaign channel email sends from one mailbox: set RECLAIM_MAIL_SENDER (its "
                "address, e.g. licences@contoso.com)"
            )
        signer = LinkSigner.from_settings(settings, secrets)
        return cls(shared_client(settings, secrets), settings.mail_sender, signer)

    def recipient(self, request: Request) -> str:
        return request.user.mail or request.user.upn

    def deliver(self, message: Message, links: list[tuple[Action, str]]) -> Delivery:
        reply = self._client.call(
            "POST",
            f"/users/{segment(self.sender)}/sendMail",
            json=send_mail_body(message, links),
            permission=SEND_MAIL,
            what=f"sendMail from {self.sender}",
        )
        if reply.status == 202:
            return Delivery(True, f"mail from {self.sender} accepted by Exchange")
        return Delivery(False, f"Graph sendMail from {self.sender} answered {reply.describe()}")


def send_mail_body(message: Message, links: list[tuple[Action, str]]) -> dict[str, Any]:
    """sendMail's JSON request body for `message` (Graph types user.sendMail, message)."""
    to: dict[str, Any] = {"address": message.recipient}
    if message.recipient_name:
        to["name"] = message.recipient_name
    return {
        "message": {
            "subject": message.subject,
            "body": {"contentType": "html", "content": html_body(message, links)},
            "toRecipients": [{"emailAddress": to}],
        },
        "saveToSentItems": False,
    }

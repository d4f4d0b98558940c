"""What the email and Teams channels share: one personal Message per recipient, built from the
message kinds (reclaim.domain.messages), each with its own signed links. The ask and the reminder
go through `send` like every other kind, so a new kind needs a row in KINDS, not a new method.

Failures come back as not_asked with what the service said (its status and error code), never
with a link or a secret: the ledger and the logs are read by more people than the recipient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from reclaim.adapters.links import LinkSigner
from reclaim.domain import messages
from reclaim.domain.lifecycle import Request
from reclaim.domain.messages import Action, Message
from reclaim.domain.notice import Notice
from reclaim.domain.policy import Policy
from reclaim.domain.reminders import DueReminder
from reclaim.errors import TransientError
from reclaim.ports import AskResult, ChannelAnswer


@dataclass(frozen=True)
class Delivery:
    """What one delivery gave: `sent` with the channel's reference, or the reason it was not."""

    sent: bool
    said: str


class PersonalChannel(ABC):
    name = ""

    def __init__(self, signer: LinkSigner) -> None:
        self.signer = signer

    @abstractmethod
    def recipient(self, request: Request) -> str:
        """The address (or UPN) the user of `request` is reached at; "" when none is known."""

    @abstractmethod
    def deliver(self, message: Message, links: list[tuple[Action, str]]) -> Delivery:
        """Send one message; raise TransientError when the service cannot take it now."""

    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult:
        return self._to_users(policy, [(r, None) for r in requests])

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        return self._to_users(policy, list(reminders))

    def notify(
        self, policy: Policy, notices: Sequence[tuple[Request, Notice]], now: datetime
    ) -> AskResult:
        """policy.notice (ports.NoticeChannel): the NOTICE message, naming the removal date."""
        return self._each_user(
            [
                (r, partial(messages.notice, policy, r, remove_after=notice.remove_after))
                for r, notice in notices
            ]
        )

    def answers(self, policy: Policy, since: datetime) -> list[ChannelAnswer]:
        return []  # people answer on the answer page, which records the answer itself

    def _to_users(
        self, policy: Policy, items: Sequence[tuple[Request, DueReminder | None]]
    ) -> AskResult:
        return self._each_user(
            [(r, partial(messages.ask, policy, r, reminder=reminder)) for r, reminder in items]
        )

    def _each_user(self, items: Sequence[tuple[Request, Callable[[str], Message]]]) -> AskResult:
        """Each request's message, built for her address by its function, sent."""
        built: list[Message] = []
        unreachable: dict[str, str] = {}
        for request, build in items:
            address = self.recipient(request)
            if address:
                built.append(build(address))
            else:
                unreachable[request.id] = f"the {self.name} channel has no address for this user"
        result = self.send(built)
        return AskResult(asked=result.asked, not_asked={**unreachable, **result.not_asked})

    def send(self, outgoing: Sequence[Message]) -> AskResult:
        """Deliver each message (one per request); keyed by request id. A service that is down
        before anything was sent raises TransientError; once some were sent, the rest come back
        not asked, so those already sent stay recorded."""
        asked: dict[str, str] = {}
        not_asked: dict[str, str] = {}
        for index, message in enumerate(outgoing):
            try:
                delivery = self.deliver(message, self.signer.links(message))
            except TransientError as error:
                if not asked:
                    raise
                not_asked.update((m.request_id, f"not sent: {error}") for m in outgoing[index:])
                break
            if delivery.sent:
                asked[message.request_id] = delivery.said
            else:
                not_asked[message.request_id] = delivery.said
        return AskResult(asked=asked, not_asked=not_asked)

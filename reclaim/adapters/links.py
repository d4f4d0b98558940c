"""The signed links a personal message carries: the key from the secrets port, the public address
from RECLAIM_PUBLIC_URL. The key is the UTF-8 bytes of the secret RECLAIM_LINK_SECRET_NAME names
(at least 32); the answer page reads it the same way (`link_key`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from reclaim.domain.answer_links import MIN_KEY_BYTES, SignedLink, link_url, sign_link
from reclaim.domain.messages import Action, Message
from reclaim.errors import ConfigurationError
from reclaim.ports import Secrets
from reclaim.settings import Settings

_NEEDS_KEY = (
    f"signed links need RECLAIM_LINK_SECRET_NAME (a secret of at least {MIN_KEY_BYTES} bytes)"
)


def link_key(settings: Settings, secrets: Secrets) -> bytes:
    if not settings.link_secret_name:
        raise ConfigurationError(_NEEDS_KEY)
    key = secrets.get(settings.link_secret_name).encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"the secret {settings.link_secret_name!r} is shorter than {MIN_KEY_BYTES} bytes: "
            "store a longer random key (e.g. openssl rand -base64 48)"
        )
    return key


class LinkSigner:
    def __init__(self, key: Callable[[], bytes], public_url: str) -> None:
        self._key = key
        self.public_url = public_url

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> LinkSigner:
        if not settings.public_url:
            raise ConfigurationError(
                "the email and teams channels send links to the answer page: set "
                "RECLAIM_PUBLIC_URL (the function app's https:// address)"
            )
        if not settings.link_secret_name:
            raise ConfigurationError(_NEEDS_KEY)
        return cls(lambda: link_key(settings, secrets), settings.public_url)

    def links(self, message: Message) -> list[tuple[Action, str]]:
        """Each action of `message` with the address it opens: one token per purpose, naming
        the request, its policy and the recipient; the choice only preselects on the page."""
        key = self._key()
        tokens: dict[str, str] = {}
        found = []
        for action in message.actions:
            if action.purpose not in tokens:
                link = SignedLink(
                    message.request_id,
                    message.policy,
                    message.recipient,
                    action.purpose,
                    _whole_second_after(message.links_expire),
                )
                tokens[action.purpose] = sign_link(link, key)
            url = link_url(self.public_url, tokens[action.purpose])
            found.append((action, f"{url}&choice={action.choice.value}"))
        return found


def _whole_second_after(moment: datetime) -> datetime:
    """A link carries whole seconds: rounded up, it never expires before its deadline."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)

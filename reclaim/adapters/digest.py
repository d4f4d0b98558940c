"""The admin digest: a short message after each run to a Teams or Slack incoming webhook.

Both accept `{"text": ...}`. The webhook URL is a credential (anyone holding it can post), so it
is read from Key Vault by name and never logged.
"""

from __future__ import annotations

import logging

import requests

from reclaim.errors import ConfigurationError, TransientError
from reclaim.ports import Secrets
from reclaim.settings import Settings

log = logging.getLogger("reclaim.digest")


class IncomingWebhookDigest:
    """reclaim.ports.Notifier over an incoming-webhook URL kept as a secret."""

    def __init__(self, secrets: Secrets, secret_name: str, ca_bundle: str = "") -> None:
        self._secrets = secrets
        self._secret_name = secret_name
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE must not override the setting
        self._session.verify = ca_bundle or True

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> IncomingWebhookDigest:
        return cls(secrets, settings.digest_webhook_secret_name, settings.ca_bundle)

    def notify(self, text: str) -> None:
        url = self._secrets.get(self._secret_name)
        if not url.startswith("https://"):
            raise ConfigurationError(
                f"secret {self._secret_name!r} must hold an https:// incoming-webhook URL"
            )
        try:
            response = self._session.post(url, json={"text": text}, timeout=(5, 15))
        except requests.RequestException as error:
            # The URL is a credential: name the secret, never the address.
            raise TransientError(
                f"digest webhook ({self._secret_name}): {type(error).__name__}"
            ) from None
        if response.status_code >= 400:
            raise TransientError(
                f"digest webhook ({self._secret_name}) answered {response.status_code}"
            )

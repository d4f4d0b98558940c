"""The API token: OAuth client credentials (scope service:integration), cached and shared."""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests

from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.adapters.nexthink.rows import json_object
from reclaim.errors import ConfigurationError

TOKEN_REFRESH_MARGIN = 120.0  # seconds before expiry a cached token is replaced
DEFAULT_LIFETIME = 900.0  # the lifetime Nexthink's own SDK assumes when expires_in is unreadable


class TokenSource:
    """A bearer token that is valid for at least TOKEN_REFRESH_MARGIN more seconds, fetched one
    at a time across threads (the others wait and reuse it)."""

    def __init__(
        self,
        session: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: Callable[[], str],
        *,
        secret_name: str,
        retry: RetryPolicy,
        timeout: tuple[float, float],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.session = session
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._secret_name = secret_name
        self.retry = retry
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token and self._clock() < self._expires_at - TOKEN_REFRESH_MARGIN:
                return self._token
            self._token, self._expires_at = self._fetch()
            return self._token

    def forget(self, token: str) -> None:
        """Drop a token the API refused (revoked or expired early), unless already replaced."""
        with self._lock:
            if self._token == token:
                self._token = ""

    def _fetch(self) -> tuple[str, float]:
        secret = self._client_secret()
        asked_at = self._clock()
        response = send_with_retries(
            lambda: self.session.post(
                self.token_url,
                data={"grant_type": "client_credentials", "scope": "service:integration"},
                auth=(self.client_id, secret),
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            ),
            what="Nexthink token",
            policy=self.retry,
            sleep=self._sleep,
        )
        body = json_object(response)
        if response.status_code in (400, 401, 403):
            reason = ": ".join(
                str(body[k]) for k in ("error", "error_description") if body.get(k)
            ) or (f"HTTP {response.status_code}")
            raise ConfigurationError(
                f"Nexthink refused the API credential ({reason}): check "
                f"RECLAIM_NEXTHINK_CLIENT_ID and the secret named {self._secret_name!r}"
            )
        if response.status_code != 200 or not body.get("access_token"):
            raise ConfigurationError(
                f"Nexthink token endpoint answered HTTP {response.status_code} without a token: "
                "check RECLAIM_NEXTHINK_TOKEN_URL (https://<instance>-login.<region>.nexthink.cloud"
                "/oauth2/default/v1/token)"
            )
        try:
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME))
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        return str(body["access_token"]), asked_at + lifetime

"""One authenticated, thread-safe connection to a Nexthink instance's API, and the reclaim error
for each final non-2xx answer."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import requests

from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.adapters.nexthink.auth import TokenSource
from reclaim.adapters.nexthink.nql import ExportPolling, NqlQueries
from reclaim.adapters.nexthink.rows import json_object
from reclaim.errors import ConfigurationError, TransientError
from reclaim.ports import Secrets
from reclaim.settings import Settings


class NexthinkClient(NqlQueries):
    """Authenticated calls (`call`) and the NQL operations (execute, export, query_rows)."""

    def __init__(
        self,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: Callable[[], str],
        *,
        secret_name: str = "",
        ca_bundle: str = "",
        export_zone: tzinfo = UTC,
        retry: RetryPolicy | None = None,
        polling: ExportPolling | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.export_zone = export_zone
        self.retry = retry or RetryPolicy()
        self.polling = polling or ExportPolling()
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._utcnow = utcnow
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True
        self.tokens = TokenSource(
            self.session,
            token_url,
            client_id,
            client_secret,
            secret_name=secret_name,
            retry=self.retry,
            timeout=timeout,
            sleep=sleep,
            clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets, **options: Any) -> NexthinkClient:
        required = {
            "RECLAIM_NEXTHINK_BASE_URL": settings.nexthink_base_url,
            "RECLAIM_NEXTHINK_TOKEN_URL": settings.nexthink_token_url,
            "RECLAIM_NEXTHINK_CLIENT_ID": settings.nexthink_client_id,
            "RECLAIM_NEXTHINK_CLIENT_SECRET_NAME": settings.nexthink_client_secret_name,
        }
        missing = [variable for variable, value in required.items() if not value]
        if missing:
            raise ConfigurationError(f"Nexthink is not configured: set {', '.join(missing)}")
        name = settings.nexthink_client_secret_name
        return cls(
            settings.nexthink_base_url,
            settings.nexthink_token_url,
            settings.nexthink_client_id,
            lambda: secrets.get(name),  # read at each token fetch, so a rotated secret is used
            secret_name=name,
            ca_bundle=settings.ca_bundle,
            export_zone=ZoneInfo(settings.nexthink_timezone),
            **options,
        )

    def token(self) -> str:
        return self.tokens.token()

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        not_found: str = "",
        rejected: str = "",
    ) -> requests.Response:
        """A 2xx response to an authenticated call; a 401 gets one more try with a new token.

        `not_found` explains a 404, `rejected` a 400 (both followed by what Nexthink said).
        """
        url = self.base_url + path
        for fresh_token_tried in (False, True):
            token = self.tokens.token()
            response = send_with_retries(
                functools.partial(
                    self.session.request,
                    method,
                    url,
                    json=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json",
                        "x-utc-times": "true",
                    },
                    timeout=self.timeout,
                ),
                what=what,
                policy=self.retry,
                sleep=self._sleep,
                idempotent=idempotent,
            )
            if response.status_code == 401 and not fresh_token_tried:
                self.tokens.forget(token)  # revoked or expired early
                continue
            break
        if 200 <= response.status_code < 300:
            return response
        raise _failure(response, what, not_found, rejected)


def _failure(response: requests.Response, what: str, not_found: str, rejected: str) -> Exception:
    """The reclaim error for a final non-2xx answer (its message is Nexthink's, never a secret)."""
    status = response.status_code
    body = json_object(response)
    said = " ".join(str(body[k]) for k in ("code", "message") if body.get(k))
    detail = f" ({said})" if said else ""
    if status == 401:
        return ConfigurationError(f"{what}: Nexthink refused a fresh access token (401){detail}")
    if status == 403:
        return ConfigurationError(
            f"{what}: not authorised (403){detail}: give the API credential's profile the "
            "permission for this API (NQL API queries, campaigns or remote actions)"
        )
    if status == 404:
        return ConfigurationError(f"{what}: {not_found or 'not found (404)'}{detail}")
    if status == 400 and rejected:
        return ConfigurationError(
            f"{what}: Nexthink rejected the request (400): {rejected}{detail}"
        )
    if 400 <= status < 500:
        return ConfigurationError(f"{what}: Nexthink rejected the request (HTTP {status}){detail}")
    return TransientError(f"{what}: HTTP {status}{detail}")

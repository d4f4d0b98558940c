"""Calling HTTP APIs the way they ask to be called: 429 and 5xx are tried again after Retry-After
(or an exponential backoff), within bounds; what is still failing becomes a TransientError."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from reclaim.errors import ConfigurationError, TransientError

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5  # doubled after every attempt that had no Retry-After
    max_delay: float = 30.0
    # A longer Retry-After is not slept through here: the caller (a queue) retries later.
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2**attempt)


def send_with_retries(
    send: Callable[[], requests.Response],
    *,
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    idempotent: bool = True,
) -> requests.Response:
    """The first response that is not 429/5xx. Raises TransientError when attempts run out.

    A request that is not idempotent (it triggers something) is retried after a connect timeout
    only: once it may have reached the server, trying again could trigger it twice.
    """
    retry_after: float | None = None
    problem = ""
    for attempt in range(policy.attempts):
        try:
            response = send()
        except requests.exceptions.SSLError as error:
            raise ConfigurationError(
                f"{what}: the TLS certificate was not accepted ({type(error).__name__}): "
                "check RECLAIM_CA_BUNDLE"
            ) from error
        except (requests.ConnectionError, requests.Timeout) as error:
            if not idempotent and not isinstance(error, requests.ConnectTimeout):
                raise TransientError(
                    f"{what}: {type(error).__name__} after sending; the outcome is not known"
                ) from error
            problem = type(error).__name__
            retry_after = None
        else:
            if response.status_code not in RETRYABLE_STATUSES:
                return response
            problem = f"HTTP {response.status_code}"
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            response.close()
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise TransientError(
                    f"{what}: {problem}, asked to retry after {retry_after:.0f}s",
                    retry_after=retry_after,
                )
        if attempt + 1 < policy.attempts:
            sleep(retry_after if retry_after is not None else policy.backoff(attempt))
    raise TransientError(
        f"{what}: still {problem} after {policy.attempts} attempts", retry_after=retry_after
    )

"""reclaim.signing: HMAC-SHA256 over "<timestamp>." + body, with a replay window."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reclaim.signing import SignatureError, sign, verify

SECRET = "shared-webhook-secret"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b'{"request_id":"r1","answer":"no"}'
WINDOW = timedelta(minutes=5)


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == "sha256=" + expected
    assert sign(SECRET, int(TS), BODY) == sign(SECRET, TS, BODY)


def test_a_good_signature_verifies() -> None:
    verify(SECRET, TS, sign(SECRET, TS, BODY), BODY, NOW, WINDOW)


def test_upper_case_hex_is_accepted() -> None:
    signature = sign(SECRET, TS, BODY)
    verify(SECRET, TS, "sha256=" + signature[7:].upper(), BODY, NOW, WINDOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "reason"),
    [
        (None, "sha256=00", BODY, "missing X-Reclaim-Timestamp"),
        ("", "sha256=00", BODY, "missing X-Reclaim-Timestamp"),
        ("12.5", "sha256=00", BODY, "whole unix seconds"),
        ("-5", "sha256=00", BODY, "whole unix seconds"),
        (TS, None, BODY, "missing X-Reclaim-Signature"),
        (TS, "md5=abc", BODY, "must start with sha256="),
        (TS, "sha256=" + "0" * 64, BODY, "does not match"),
        (TS, "sha256=é", BODY, "must start with sha256="),
        (TS, sign(SECRET, TS, BODY), BODY + b" ", "does not match"),
        (TS, sign("other-secret", TS, BODY), BODY, "does not match"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    timestamp: str | None, signature: str | None, body: bytes, reason: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(SECRET, timestamp, signature, body, NOW, WINDOW)
    assert reason in caught.value.reason


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    later = str(int(TS) + 60)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, later, sign(SECRET, TS, BODY), BODY, NOW, WINDOW)


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_timestamps_outside_the_window_are_replays(skew: int) -> None:
    old = str(int(TS) + skew)
    with pytest.raises(SignatureError, match="stale or replayed"):
        verify(SECRET, old, sign(SECRET, old, BODY), BODY, NOW, WINDOW)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_inside_the_window_are_accepted(skew: int) -> None:
    ts = str(int(TS) + skew)
    verify(SECRET, ts, sign(SECRET, ts, BODY), BODY, NOW, WINDOW)


def test_without_a_secret_nothing_verifies() -> None:
    with pytest.raises(SignatureError, match="no signing secret"):
        verify("", TS, sign("", TS, BODY), BODY, NOW, WINDOW)


def test_the_reason_never_contains_the_expected_signature() -> None:
    with pytest.raises(SignatureError) as caught:
        verify(SECRET, TS, "sha256=" + "0" * 64, BODY, NOW, WINDOW)
    assert sign(SECRET, TS, BODY)[7:] not in str(caught.value)


@given(body=st.binary(max_size=256), secret=st.text(min_size=1, max_size=40))
def test_any_body_signed_with_a_secret_verifies_with_it(body: bytes, secret: str) -> None:
    verify(secret, TS, sign(secret, TS, body), body, NOW, WINDOW)


@given(body=st.binary(max_size=64), flip=st.integers(min_value=0, max_value=63))
def test_any_changed_byte_is_refused(body: bytes, flip: int) -> None:
    if not body:
        return
    changed = bytearray(body)
    changed[flip % len(body)] ^= 0x01
    with pytest.raises(SignatureError):
        verify(SECRET, TS, sign(SECRET, TS, body), bytes(changed), NOW, WINDOW)

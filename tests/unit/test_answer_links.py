"""Signed links: what reclaim signed reads back; anything else is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reclaim.domain.answer_links import (
    MAX_TOKEN_LENGTH,
    LinkPurpose,
    LinkRefused,
    SignedLink,
    link_url,
    read_link,
    sign_link,
)

KEY = b"k" * 32
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
LINK = SignedLink(
    "req-1", "salesforce", "adele@northwind.example", LinkPurpose.ANSWER, NOW + timedelta(days=7)
)

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)


@given(names, names, names, st.sampled_from(LinkPurpose), st.integers(1, 10**8))
def test_a_signed_link_reads_back_as_it_was_signed(
    request_id: str, policy: str, recipient: str, purpose: LinkPurpose, seconds: int
) -> None:
    link = SignedLink(request_id, policy, recipient, purpose, NOW + timedelta(seconds=seconds))
    token = sign_link(link, KEY)
    assert len(token) <= MAX_TOKEN_LENGTH
    assert read_link(token, KEY, NOW) == SignedLink(
        request_id, policy, recipient, purpose, link.expires_at.replace(microsecond=0)
    )


@given(st.data())
def test_any_altered_character_is_refused(data: st.DataObject) -> None:
    token = sign_link(LINK, KEY)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AQgw_-.x0").filter(lambda c: c != token[position]))
    altered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(LinkRefused):
        read_link(altered, KEY, NOW)


@given(st.text(max_size=2000))
def test_arbitrary_text_is_refused_never_crashes(text: str) -> None:
    with pytest.raises(LinkRefused):
        read_link(text, KEY, NOW)


def test_an_expired_link_says_when_it_expired() -> None:
    token = sign_link(LINK, KEY)
    with pytest.raises(LinkRefused, match="expired on 2026-12-05 06:00 UTC"):
        read_link(token, KEY, LINK.expires_at)


def test_another_key_refuses_the_link() -> None:
    with pytest.raises(LinkRefused, match="altered or reclaim's key has changed"):
        read_link(sign_link(LINK, KEY), b"o" * 32, NOW)


def test_a_short_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        sign_link(LINK, b"short")


def test_the_url_points_at_the_answer_page() -> None:
    assert link_url("https://reclaim.example/", "a.b") == "https://reclaim.example/api/answer?t=a.b"

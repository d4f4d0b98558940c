"""What the email and Teams channel tests share: a policy on either channel, requests, settings
with a link secret and a public address, and reading the links back out of what was sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reclaim.adapters.environment import variable_for
from reclaim.domain.answer_links import SignedLink, read_link
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import User
from reclaim.domain.policy import Policy, policies_from_data

LINK_SECRET_NAME = "reclaim-link-key"
LINK_SECRET = "k" * 24 + "-link-secret-for-tests"  # at least 32 bytes
PUBLIC_URL = "https://reclaim.contoso.test"
T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def link_env() -> dict[str, str]:
    return {
        "RECLAIM_LINK_SECRET_NAME": LINK_SECRET_NAME,
        "RECLAIM_PUBLIC_URL": PUBLIC_URL,
        variable_for(LINK_SECRET_NAME): LINK_SECRET,
    }


def policy(channel: str, **campaign: Any) -> Policy:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "mode": "enforce",
        "directory": {"kind": "ad", "group": "SF"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 100, "max_percent_of_group": 100},
        "ask_permission": True,
        "campaign": {"channel": channel, "respond_within": "7d", **campaign},
    }
    return policies_from_data({"policies": [data]})[0]


def request(
    request_id: str,
    upn: str,
    *,
    display_name: str = "",
    reason: str = "2 minute(s) in 30 days, below 5m",
    mail: str | None = None,
) -> Request:
    return Request(
        id=request_id,
        policy="visio",
        group="SF",
        user=User(
            object_id=f"oid-{request_id}",
            upn=upn,
            mail=upn if mail is None else mail,
            display_name=display_name,
        ),
        state_key=upn,
        run_id="run-1",
        state=RequestState.PENDING,
        created_at=T0,
        updated_at=T0,
        deadline=T0 + timedelta(days=7),
        reason=reason,
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def html_links(html: str) -> list[str]:
    """Every href of the mail, in order, unescaped as a mail client reads them."""
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def html_tags(html: str) -> set[str]:
    parser = _Links()
    parser.feed(html)
    return set(parser.tags)


def read(url: str, now: datetime = T0) -> tuple[SignedLink, str]:
    """The signed link behind an answer-page address and the choice it preselects."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL and parts.path == "/api/answer"
    query = parse_qs(parts.query)
    return read_link(query["t"][0], LINK_SECRET.encode(), now), query["choice"][0]


TOKEN = re.compile(r"[?&]t=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def carries_no_link(text: str) -> bool:
    """No token and no secret in what admins read (ledger, logs, errors)."""
    return not TOKEN.search(text) and LINK_SECRET not in text and "sig=" not in text

"""What reclaim agrees to store: times in a sane range and identifiers of bounded, printable text.

Checked before anything is written, so every stored value reads back (Table storage keeps a year-1
time in a form its own SDK cannot parse, and refuses lone surrogates and keys over 1 KiB).
Each check returns what is wrong, or "" when the value is fine.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no answer or removal reclaim knows is older
FUTURE_SLACK = timedelta(days=1)  # clocks disagree; a time further ahead is an error
MAX_ID_LENGTH = 256  # request ids, policy names, user identifiers (UPN <= 113, SID <= 184)
MAX_JUSTIFICATION_LENGTH = 500  # the reason given with an answer: a sentence or two, not a file


def time_problem(value: datetime, now: datetime) -> str:
    """Why `value` may not be stored (naive, before 2000, more than a day after `now`), or ""."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "has no time zone"
    # The year is looked at before any arithmetic: converting year 1 or 9999 across a zone
    # overflows datetime.
    if value.year < EARLIEST.year or value < EARLIEST:
        return f"is before {EARLIEST:%Y-%m-%d}"
    if value.year > now.year + 1 or value > now + FUTURE_SLACK:
        return f"is in the future (more than {FUTURE_SLACK.days} day after now)"
    return ""


def id_problem(value: str, max_length: int = MAX_ID_LENGTH) -> str:
    """Why `value` is not an identifier reclaim stores (too long, control characters, lone
    surrogates), or ""."""
    if len(value) > max_length:
        return f"is {len(value)} characters long (at most {max_length})"
    for position, character in enumerate(value):
        category = unicodedata.category(character)
        if category == "Cs":
            return f"holds a lone surrogate (U+{ord(character):04X}) at position {position}"
        if category == "Cc":
            return f"holds a control character (U+{ord(character):04X}) at position {position}"
    return ""


def justification_problem(value: str) -> str:
    """Why `value` is not a justification reclaim stores (over 500 characters, control characters
    such as a line break, lone surrogates), or "": one line, so the ledger and CSV stay one row."""
    return id_problem(value, MAX_JUSTIFICATION_LENGTH)

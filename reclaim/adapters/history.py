"""How both stores pack a run's history (reclaim.domain.history.RunHistory): one zlib-compressed
JSON document per run, its members in columns (keys, kinds, amounts, times as microseconds
before or after the run's start), cut into pieces of at most PIECE bytes (a Table storage binary
property holds 64 KiB). About 30 bytes per member and run (README "Simulate a policy over its
history" has the measured figures)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from reclaim.domain.history import MemberInputs, RunHistory
from reclaim.domain.policy import MatchOn
from reclaim.domain.selection import DecisionKind

FORMAT = 1
PIECE = 60_000
_KINDS = list(DecisionKind)
_TIMES = ("added", "tracked", "created", "last_seen", "yes_at", "answer_at", "left_at")
_FLAGS = ("matched", "pending", "disabled")
_ANSWERS = {"": "-", "yes": "y", "pending": "p"}
_ANSWER_OF = {code: answer for answer, code in _ANSWERS.items()}


class HistoryError(ValueError):
    """Stored bytes that are not a run history this version can read."""


def _offset(at: datetime | None, start: datetime) -> int | None:
    return None if at is None else (at - start) // timedelta(microseconds=1)


def _time(offset: Any, start: datetime) -> datetime | None:
    return None if offset is None else start + timedelta(microseconds=int(offset))


def pack(history: RunHistory) -> list[bytes]:
    start = history.started_at
    members = history.members
    document: dict[str, Any] = {
        "format": FORMAT,
        "run_id": history.run_id,
        "policy": history.policy,
        "started_at": start.isoformat(),
        "match_on": history.match_on.value,
        "lookback": history.lookback.total_seconds(),
        "threshold": history.threshold,
        "new_member_grace": history.new_member_grace.total_seconds(),
        "observed_at": history.observed_at.isoformat() if history.observed_at else None,
        "rows_read": history.rows_read,
        "reported": history.matched,
        "dated_by_rows": history.dated_by_rows,
        "kill_switch": history.kill_switch,
        "key": [m.key for m in members],
        "kind": "".join(chr(65 + _KINDS.index(m.kind)) for m in members),
        "used": [m.used for m in members],
        "answer": "".join(_ANSWERS[m.answer] for m in members),
    }
    for name in _TIMES:
        document[name] = [_offset(getattr(m, name), start) for m in members]
    for name in _FLAGS:
        document[name] = "".join("1" if getattr(m, name) else "0" for m in members)
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)
    return [packed[i : i + PIECE] for i in range(0, len(packed), PIECE)] or [packed]


def unpack(pieces: Sequence[bytes]) -> RunHistory:
    try:
        document = json.loads(zlib.decompress(b"".join(pieces)))
        if document.get("format") != FORMAT:
            raise HistoryError(f"unknown history format {document.get('format')!r}")
        start = datetime.fromisoformat(document["started_at"])
        members = _members(document, start)  # columns of different lengths: ValueError
        observed = document["observed_at"]
        return RunHistory(
            run_id=document["run_id"],
            policy=document["policy"],
            started_at=start,
            match_on=MatchOn(document["match_on"]),
            lookback=timedelta(seconds=document["lookback"]),
            threshold=float(document["threshold"]),
            new_member_grace=timedelta(seconds=document["new_member_grace"]),
            observed_at=datetime.fromisoformat(observed) if observed else None,
            rows_read=int(document["rows_read"]),
            matched=int(document["reported"]),
            dated_by_rows=bool(document["dated_by_rows"]),
            kill_switch=bool(document["kill_switch"]),
            members=members,
        )
    except HistoryError:
        raise
    except (zlib.error, ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise HistoryError(f"unreadable run history: {error}") from None


def _members(document: dict[str, Any], start: datetime) -> tuple[MemberInputs, ...]:
    """The members from their columns (a column at a time: a year of a large group is millions
    of values)."""
    times = [[_time(value, start) for value in document[name]] for name in _TIMES]
    flags = [[code == "1" for code in document[name]] for name in _FLAGS]
    kinds = [_KINDS[ord(code) - 65] for code in document["kind"]]
    answers = [_ANSWER_OF[code] for code in document["answer"]]
    used = [None if value is None else float(value) for value in document["used"]]
    added, tracked, created, last_seen, yes_at, answer_at, left_at = times
    matched, pending, disabled = flags
    return tuple(
        MemberInputs(*row)
        for row in zip(
            map(str, document["key"]), kinds, matched, used, added, tracked, created,
            last_seen, yes_at, pending, answers, answer_at, disabled, left_at, strict=True,
        )
    )  # fmt: skip

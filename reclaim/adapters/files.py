"""CSV exports: a usage export (the shape of a Nexthink NQL export) and a group members export.

Both are streamed row by row, so a million-row usage export is never held in memory.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from reclaim.domain.model import (
    Account,
    CampaignResponse,
    Member,
    UsageRow,
    User,
    normalise_key,
)
from reclaim.domain.policy import Policy, UsageUnit
from reclaim.errors import ConfigurationError, SourceError
from reclaim.ports import AddOutcome, GroupInfo, RemovalResult, UsageExport

_MINUTES_PER_UNIT = {
    UsageUnit.MILLISECONDS: 1 / 60000,
    UsageUnit.SECONDS: 1 / 60,
    UsageUnit.MINUTES: 1.0,
    UsageUnit.HOURS: 60.0,
    UsageUnit.SIGN_INS: 1.0,
}


def open_text(path: Path) -> io.TextIOBase:
    """A CSV file as text, gzip or plain, with a BOM (as Excel and some exports write) skipped."""
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        if gzipped:
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror or error}") from None


def usage_rows(lines: Iterable[str], policy: Policy, source: str) -> Iterator[UsageRow]:
    """Parse a usage export: the policy names the user and usage columns and the unit.

    An empty usage cell means "observed, no use recorded" (zero). A malformed number fails the
    whole export, naming the line: acting on half-read data is worse than not acting.
    """
    spec = policy.usage
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    columns = [c.strip() for c in header]
    missing = [c for c in (spec.user_column, spec.usage_column) if c not in columns]
    if missing:
        raise SourceError(
            f"{source}: no column {', '.join(repr(m) for m in missing)}; the columns are "
            f"{', '.join(repr(c) for c in columns)} (set usage.user_column / usage.usage_column)"
        )
    user_at, usage_at = columns.index(spec.user_column), columns.index(spec.usage_column)
    answer_at = _optional_column(columns, spec.answer_column, "answer_column", source)
    date_at = _optional_column(columns, spec.answered_at_column, "answered_at_column", source)
    clock_at = _optional_column(columns, spec.timestamp_column, "timestamp_column", source)
    zone = ZoneInfo(spec.timezone)
    factor = _MINUTES_PER_UNIT[spec.unit]
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            key, raw = normalise_key(row[user_at]), row[usage_at].strip()
        except IndexError:
            raise SourceError(
                f"{source} line {line_number}: expected {len(columns)} columns"
            ) from None
        if not key:
            continue  # a device or session with no user: nobody to match
        try:
            amount = float(raw) * factor if raw and raw.lower() != "null" else None
        except ValueError:
            amount = -1.0  # reported just below, with the other kinds of bad number
        if amount is not None and not 0 <= amount < math.inf:
            raise SourceError(
                f"{source} line {line_number}: {spec.usage_column} is {raw!r}, "
                "not a number of 0 or more"
            )
        where = f"{source} line {line_number}"
        answer = None
        if answer_at is not None:
            answer = _response(row, answer_at, date_at, zone, where)
        at = None
        if clock_at is not None:
            at = parse_time(row[clock_at], zone, f"{where}: {spec.timestamp_column}")
        yield UsageRow(key, amount, answer, at)


_RESPONSE_STATES = {
    "yes": "yes",
    "no": "no",
    "pending": "pending",
    "sent": "pending",
    "not answered": "pending",
}


def _optional_column(columns: list[str], name: str, setting: str, source: str) -> int | None:
    if not name:
        return None
    if name not in columns:
        raise SourceError(
            f"{source}: no column {name!r} (usage.{setting}); the columns are {', '.join(columns)}"
        )
    return columns.index(name)


def parse_time(value: str, zone: tzinfo, where: str) -> datetime | None:
    """An ISO 8601 time; one written without an offset is read in `zone` (usage.timezone)."""
    text = value.strip()
    if not text or text.lower() == "null":
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"{where}: {text!r} is not an ISO date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _response(
    row: list[str], answer_at: int, date_at: int | None, zone: tzinfo, where: str
) -> CampaignResponse | None:
    raw = row[answer_at].strip().lower()
    if not raw or raw == "null":
        return None
    state = _RESPONSE_STATES.get(raw)
    if state is None:
        raise SourceError(f"{where}: campaign response {raw!r} is not yes, no or pending")
    at = parse_time(row[date_at], zone, f"{where}: response date") if date_at is not None else None
    return CampaignResponse(state, at)


class CsvUsage:
    """reclaim.ports.UsageSource over a usage export file. Its age is the newest value of
    usage.timestamp_column; without one, the file's modification time, as a last resort (a copy
    resets it, so an old export copied today looks fresh)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        try:
            modified = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError as error:
            raise ConfigurationError(
                f"cannot read {self.path}: {error.strerror or error}"
            ) from None
        column = policy.usage.timestamp_column
        if column:
            clock = f"newest {column} in {self.path.name}"
            return UsageExport(observed_at=None, rows=self._rows(policy), clock=clock)
        clock = (
            f"modification time of {self.path.name}: no usage.timestamp_column, and a copy "
            "resets it"
        )
        return UsageExport(observed_at=modified, rows=self._rows(policy), clock=clock)

    def _rows(self, policy: Policy) -> Iterator[UsageRow]:
        with open_text(self.path) as lines:
            yield from usage_rows(lines, policy, str(self.path))


MEMBER_COLUMNS = (
    "group",
    "object_id",
    "upn",
    "mail",
    "sam_account_name",
    "sid",
    "display_name",
    "added_at",
    "enabled",  # optional: false for a disabled account (a leaver), true or empty otherwise
)
_ENABLED = {"true": True, "false": False, "": None}


class CsvDirectory:
    """reclaim.ports.Directory over a members export (one row per group and user); read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self) -> Iterator[dict[str, str]]:
        with open_text(self.path) as lines:
            reader = csv.DictReader(lines)
            unknown = set(reader.fieldnames or ()) - set(MEMBER_COLUMNS)
            if "group" not in (reader.fieldnames or ()) or unknown:
                raise ConfigurationError(
                    f"{self.path}: expected the columns {', '.join(MEMBER_COLUMNS)} "
                    f"(group required), got {', '.join(reader.fieldnames or ())}"
                )
            yield from reader

    def check_group(self, group: str) -> GroupInfo:
        count = sum(1 for row in self._rows() if row["group"] == group)
        if not count:
            raise ConfigurationError(f"{self.path}: no member of group {group!r} in the export")
        return GroupInfo(id=group, display_name=group, member_count=count)

    def members(self, group: str) -> Iterator[Member]:
        for line_number, row in enumerate(self._rows(), start=2):
            if row["group"] != group:
                continue
            added = (row.get("added_at") or "").strip()
            try:
                added_at = datetime.fromisoformat(added) if added else None
            except ValueError:
                raise SourceError(
                    f"{self.path} line {line_number}: added_at {added!r} is not an ISO date"
                ) from None
            if added_at is not None and added_at.tzinfo is None:
                added_at = added_at.replace(tzinfo=UTC)
            enabled = (row.get("enabled") or "").strip().lower()
            if enabled not in _ENABLED:
                raise SourceError(
                    f"{self.path} line {line_number}: enabled {row['enabled']!r} is not true, "
                    "false or empty"
                )
            yield Member(
                User.from_dict(row),
                added_at,
                added_from="added_at in the members export",
                account=Account(
                    enabled=_ENABLED[enabled], source="enabled false in the members export"
                ),
            )

    def member_groups(self, group: str) -> list[GroupInfo]:
        return []  # an export lists users only: it has no nesting

    def transitive_users(self, group: str) -> Iterator[User]:
        return (m.user for m in self.members(group))

    def _read_only(self) -> ConfigurationError:
        return ConfigurationError(
            f"{self.path} is a members export, read-only: it serves planning. To remove or restore, "
            "point the policy's directory at entra, ad or nexthink-remote-action"
        )

    def remove(self, group: str, user: User, **_: object) -> RemovalResult:
        raise self._read_only()

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        raise self._read_only()

"""Reading a policy's values: a reader that collects every problem with its path instead of
stopping at the first, and one parser per kind of value (each raises ValueError saying what to fix)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from reclaim.domain.durations import format_duration, parse_duration
from reclaim.domain.reminders import in_time_order

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_NQL_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


def is_valid_schedule(expression: str) -> bool:
    """NCRONTAB as Azure Functions reads it: six fields, seconds first."""
    return (
        isinstance(expression, str)
        and len(expression.split()) == 6
        and croniter.is_valid(expression, second_at_beginning=True)
    )


class _Reader:
    """Reads one mapping, collecting problems with their paths instead of stopping at the first."""

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            problems.append(f"{path}: expected a mapping, got {_kind(data)}")

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self._at(key)}: {message}")

    def get(self, key: str, convert: Callable[[Any], T], default: T, required: bool = False) -> T:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.problem(key, "is required")
            return default
        try:
            return convert(self.data[key])
        except (ValueError, TypeError) as error:
            self.problem(key, str(error))
            return default

    def sub(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.data.get(key) or {}, self._at(key), self.problems)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problems.append(f"{self._at(str(key))}: unknown key")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 5m, got {value!r}")
    return parse_duration(value)


def _positive_duration(value: Any) -> timedelta:
    result = _duration(value)
    if result <= timedelta(0):
        raise ValueError(f"must be longer than 0s, got {value!r}")
    return result


def _reminders(value: Any) -> tuple[timedelta, ...]:
    if not isinstance(value, list):
        raise ValueError(
            f"expected a list of durations before the deadline like [3d, 1d], got {_kind(value)}"
        )
    offsets = [_positive_duration(item) for item in value]
    repeated = sorted({format_duration(o) for o in offsets if offsets.count(o) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} is listed more than once: list each offset once")
    return in_time_order(offsets)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {value!r}")
    return value


def _percent(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError(f"expected a percentage from 0 to 100, got {value!r}")
    return float(value)


def _money(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected an amount of 0 or more, got {value!r}")
    return float(value)


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"expected a share from 0 to 1 (0.5 = half), got {value!r}")
    return float(value)


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone like UTC or Europe/Zurich, got {value!r}"
        ) from None
    return name


def _choice(enum: type[T]) -> Callable[[Any], T]:
    def convert(value: Any) -> T:
        try:
            return enum(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = " | ".join(e.value for e in enum)  # type: ignore[attr-defined]
            raise ValueError(f"expected one of {allowed}, got {value!r}") from None

    return convert


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {_kind(value)}")
    bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"entry {bad[0]} is not a non-empty text")
    return tuple(v.strip() for v in value)


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {_kind(value)}")
    return {str(k): str(v) for k, v in value.items()}


def _schedule(value: Any) -> str:
    if not is_valid_schedule(value):
        raise ValueError(
            f'expected an NCRONTAB schedule of six fields, seconds first, like "0 0 6 * * 1", '
            f"got {value!r}"
        )
    return str(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"expected a lower-case name of letters, digits, '.', '_' or '-', got {value!r}"
        )
    return value


def _nql_id(value: Any) -> str:
    if not isinstance(value, str) or not _NQL_ID.match(value):
        raise ValueError(
            f"expected a Nexthink NQL id like #license_reclamation_usage, got {value!r}"
        )
    return value

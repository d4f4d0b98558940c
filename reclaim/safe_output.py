"""Text from directories and exports, made safe for where it is shown: spreadsheets and terminals.

One place for both rules, used by every writer (reclaim/cli.py, reclaim/reporting.py):

- CSV (OWASP "CSV Injection"): a text cell that starts with `=`, `+`, `-`, `@`, a tab or a
  carriage return gets a leading single quote, so a spreadsheet shows it as text instead of
  evaluating it. Numbers the code itself produced (int and float values) are written as they
  are, so a negative amount stays a number; any text that merely looks like a number (a user
  named `-2+3`) is text and is neutralised.
- Terminal: C0 controls other than newline, DEL, C1 controls (which include the 8-bit CSI and
  OSC), and the Unicode bidirectional controls (U+202E and its kin) are written as visible
  escapes (`\\x1b`, `\\u202e`), so a name cannot recolour the terminal, set its title, or
  reorder what an operator reads. Escaping (not stripping) keeps the hostile name visible.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# C0 except \n, DEL, C1, the bidi embeddings/overrides/isolates and marks, line/paragraph
# separators (a terminal may start a new line at them).
_CONTROLS = "\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROLS}]")
# Inside one cell or field a newline would forge a new row: escaped there too.
_CONTROL_OR_NEWLINE = re.compile(f"[{_CONTROLS}\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str) -> str:
    """Text for a terminal: control characters escaped, newlines kept."""
    return _CONTROL.sub(_escape, text)


def one_line(text: str) -> str:
    """One table cell or log field: like terminal_text, and newlines escaped too."""
    return _CONTROL_OR_NEWLINE.sub(_escape, text)


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: text that a spreadsheet would evaluate is quoted with `'`; int and
    float values (numbers the code computed) pass unchanged; None is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        return "'" + text if text.startswith(FORMULA_TRIGGERS) else text
    return value


class SafeCsvWriter:
    """csv.writer with every cell through csv_cell, text cells quoted."""

    def __init__(self, out: TextIO) -> None:
        # Text quoted, numbers bare: a carriage return inside a name cannot end a row, and a
        # spreadsheet still reads the numbers as numbers.
        self._writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])


class TerminalStream(io.TextIOBase):
    """A text stream for stdout/stderr that escapes control characters in everything written."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str, /) -> int:
        self._stream.write(terminal_text(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

"""CSV exports: usage rows in the policy's unit, campaign responses, and fail-closed parsing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from reclaim.adapters.files import CsvDirectory, CsvUsage, usage_rows
from reclaim.domain.model import CampaignResponse
from reclaim.errors import ConfigurationError, SourceError
from tests.conftest import NOW, make_policy

POLICY = make_policy(
    usage={
        "user_column": "user",
        "usage_column": "focus",
        "unit": "seconds",
        "answer_column": "response",
        "answered_at_column": "at",
    }
)


def rows(text: str):
    return list(usage_rows(text.splitlines(keepends=True), POLICY, "usage.csv"))


def test_units_blank_cells_and_responses() -> None:
    parsed = rows(
        "user,focus,response,at\nA@C.com,90,yes,2026-10-01T00:00:00Z\nb@c.com,,pending,\n,5,,\n"
    )
    assert [(r.user_key, r.amount) for r in parsed] == [("a@c.com", 1.5), ("b@c.com", None)]
    assert parsed[0].answer == CampaignResponse(
        "yes", NOW.replace(year=2026, month=10, day=1, hour=0)
    )
    assert parsed[1].answer == CampaignResponse("pending", None)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_bad_number_fails_the_whole_export_with_its_line(value: str) -> None:
    with pytest.raises(
        SourceError, match=f"usage.csv line 3: focus is '{value}', not a number of 0 or more"
    ):
        rows(f"user,focus,response,at\na@c.com,1,,\nb@c.com,{value},,\n")


def test_a_missing_column_lists_the_columns_there() -> None:
    with pytest.raises(SourceError, match="no column 'focus'; the columns are 'user', 'minutes'"):
        rows("user,minutes\na@c.com,1\n")


def test_an_unknown_response_is_refused() -> None:
    with pytest.raises(SourceError, match="campaign response 'maybe' is not yes, no or pending"):
        rows("user,focus,response,at\na@c.com,1,maybe,\n")


def test_gzip_exports_are_read_and_their_age_is_the_file_time(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("user,focus,response,at\na@c.com,60,,\n")
    export = CsvUsage(path).usage(POLICY, NOW)
    assert [r.amount for r in export.rows] == [1.0]
    assert abs(export.observed_at.timestamp() - path.stat().st_mtime) < 1


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        CsvUsage(tmp_path / "none.csv").usage(POLICY, NOW)


def test_the_members_export_is_read_only_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text("group,upn,added_at\nSF,a@c.com,2026-11-01\nSF,b@c.com,\nVIP,a@c.com,\n")
    directory = CsvDirectory(path)
    assert directory.check_group("SF").member_count == 2
    members = list(directory.members("SF"))
    assert [m.user.upn for m in members] == ["a@c.com", "b@c.com"]
    assert members[0].added_at is not None and members[0].added_at.tzinfo is not None
    with pytest.raises(ConfigurationError, match="read-only"):
        directory.remove("SF", members[0].user)
    with pytest.raises(ConfigurationError, match="no member of group 'Nope'"):
        directory.check_group("Nope")
    path.write_text("grp,upn\nSF,a@c.com\n")
    with pytest.raises(ConfigurationError, match="expected the columns"):
        list(CsvDirectory(path).members("SF"))

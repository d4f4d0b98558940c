"""The usage tally read beside the member listing: whenever the group becomes known, members'
usage is what reading with the group known from the start gives, and outsiders stop being held."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim.domain.model import UsageRow
from reclaim.domain.selection import index_usage, members_usage, tally_usage
from tests.conftest import NOW

KEYS = [f"u{i}@c.com" for i in range(12)]


@st.composite
def exports(draw: st.DrawFn) -> tuple[list[UsageRow], frozenset[str], int, int]:
    rows = draw(
        st.lists(
            st.builds(
                UsageRow,
                st.sampled_from(KEYS),
                st.one_of(st.none(), st.floats(min_value=0, max_value=100, allow_nan=False)),
                st.one_of(st.none(), st.integers(0, 30).map(lambda d: NOW - timedelta(days=d))),
            ),
            max_size=60,
        )
    )
    members = frozenset(draw(st.sets(st.sampled_from(KEYS))))
    known_after = draw(st.integers(0, 8))  # calls of members() before the group is known
    check_every = draw(st.integers(1, 7))
    return rows, members, known_after, check_every


@settings(max_examples=500, deadline=None)
@given(exports())
def test_the_group_known_late_gives_the_same_usage_as_known_from_the_start(export) -> None:
    rows, members, known_after, check_every = export
    calls = iter(range(10**6))

    def group() -> frozenset[str] | None:
        return members if next(calls) >= known_after else None

    tally = tally_usage(rows, group, check_every=check_every)
    late = members_usage(tally, members, None)
    early = index_usage(rows, members, None)
    assert late == early
    assert tally.rows_read == len(rows)


def test_outsiders_are_dropped_once_the_group_is_known() -> None:
    rows = [UsageRow(f"outsider{i}", 1.0) for i in range(10_000)] + [UsageRow("u1@c.com", 3.0)]
    known = {"ready": False}

    def group() -> frozenset[str] | None:
        return frozenset({"u1@c.com"}) if known["ready"] else None

    def streamed():  # the listing finishes after the first 100 rows
        for n, row in enumerate(rows):
            known["ready"] = n >= 100
            yield row

    tally = tally_usage(streamed(), group, check_every=64)
    assert set(tally.amounts) == {"u1@c.com"}
    assert tally.rows_read == 10_001

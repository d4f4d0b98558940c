"""simulate over a scripted history whose true answer is worked out by hand: removals per
period, the caps that halt, asks and their answers, and the regret rate."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reclaim.domain.history import MemberInputs, RunHistory
from reclaim.domain.policy import MatchOn, Policy
from reclaim.domain.selection import DecisionKind
from reclaim.domain.simulation import CameBack, Event, Period, simulate
from tests.conftest import NOW, asking_policy, make_policy

WEEK = timedelta(days=7)
START = NOW - 8 * WEEK  # 2026-10-03: five runs in October, four in November


def week(n: int, use: dict[str, float], **changes: object) -> RunHistory:
    """The n-th weekly run (0 = START); every member recorded as ACTIVE under the old 5m."""
    at = START + n * WEEK
    members = tuple(MemberInputs(key, DecisionKind.ACTIVE, used=used) for key, used in use.items())
    history = RunHistory(
        run_id=f"run-{n}",
        policy="salesforce",
        started_at=at,
        match_on=MatchOn.UPN,
        lookback=timedelta(days=90),
        threshold=5.0,
        new_member_grace=timedelta(days=90),
        observed_at=at - timedelta(hours=1),
        rows_read=len(members),
        matched=len(members),
        dated_by_rows=False,
        kill_switch=False,
        members=members,
    )
    return replace(history, **changes)  # type: ignore[arg-type]


# Under a proposed 30m: ada (10m) and bob (12m) would be removed in week 0; ada's use reaches
# 45m in week 3 (she came back, active again); bob never comes back. cy uses 20m until week 5,
# when dan and eve drop to 3m too: three removals at once exceed max_removals_per_run 2, so
# week 5 halts; week 6 the group is the same, halts again; in week 7 eve is back at 60m and
# cy and dan are removed (cy restored a week later). Five active members never change.
STEADY = {f"steady{n}@contoso.test": 600.0 for n in range(5)}


def scripted() -> list[RunHistory]:
    runs = []
    for n in range(9):
        use = {
            "ada@contoso.test": 45.0 if n >= 3 else 10.0,
            "bob@contoso.test": 12.0,
            "cy@contoso.test": 20.0 if n >= 5 else 300.0,
            "dan@contoso.test": 3.0 if n >= 5 else 300.0,
            "eve@contoso.test": 3.0 if n in (5, 6) else 60.0,
            **STEADY,
        }
        runs.append(week(n, use))
    return runs


RESTORED_CY = Event("cy@contoso.test", START + 8 * WEEK - timedelta(days=1), CameBack.RESTORED)


def proposal(threshold: str = "30m", **overrides: object) -> Policy:
    return make_policy(
        usage={"threshold": threshold},
        limits={"max_removals_per_run": 2, "max_percent_of_group": 100},
        **overrides,
    )


def test_removals_per_month_halts_and_the_regret_rate_of_a_scripted_history() -> None:
    result = simulate(scripted(), proposal(), START, Period.MONTH, [RESTORED_CY])
    october, november = result.periods
    assert (october.label, october.runs, october.removals, october.came_back) == (
        "2026-10",
        5,
        2,
        1,
    )
    assert october.regret_rate == 0.5  # ada came back, bob did not
    assert october.back_by == {CameBack.ACTIVE_AGAIN: 1}
    assert october.halts == {}
    # Nov 7 (week 5) and Nov 14 (week 6) halt on the cap; Nov 21 (week 7) removes cy and dan.
    assert (november.label, november.runs, november.removals) == ("2026-11", 4, 2)
    assert november.halts == {"max_removals_per_run": 2}
    assert november.came_back == 1 and november.back_by == {CameBack.RESTORED: 1}
    assert [(r.key, r.came_back) for r in result.removals] == [
        ("ada@contoso.test", CameBack.ACTIVE_AGAIN),
        ("bob@contoso.test", None),
        ("cy@contoso.test", CameBack.RESTORED),
        ("dan@contoso.test", None),
    ]
    assert result.total_removals == 4 and result.regret_rate == 0.5


def test_at_the_old_threshold_only_the_3m_weeks_remove_and_weeks_are_periods() -> None:
    result = simulate(scripted(), proposal("5m"), START, Period.WEEK)
    # week 5: dan and eve at 3m, two removals fit the cap of 2; eve is at 60m again in week 7
    assert [(r.key, r.came_back) for r in result.removals] == [
        ("dan@contoso.test", None),
        ("eve@contoso.test", CameBack.ACTIVE_AGAIN),
    ]
    assert [p.label for p in result.periods] == [f"2026-W{n}" for n in range(40, 49)]
    assert result.periods[5].removals == 2 and result.periods[5].regret_rate == 0.5


def test_since_leaves_earlier_runs_out_but_they_still_tell_who_came_back() -> None:
    late = simulate(scripted(), proposal(), START + 4 * WEEK, Period.MONTH, [RESTORED_CY])
    # ada at 45m and bob at 12m are first judged in week 4 here: ada is ACTIVE, only bob goes.
    assert [r.key for r in late.removals] == [
        "bob@contoso.test",
        "cy@contoso.test",
        "dan@contoso.test",
    ]
    assert late.periods[0].label == "2026-10" and late.periods[0].runs == 1


def test_an_ask_is_settled_by_the_recorded_yes_or_the_deadline() -> None:
    runs = scripted()
    # bob answered yes three days after week 0's ask: every later run records it
    yes = START + timedelta(days=3)
    runs = [runs[0]] + [
        replace(r, members=tuple(
            replace(m, yes_at=yes) if m.key == "bob@contoso.test" else m for m in r.members
        ))
        for r in runs[1:]
    ]  # fmt: skip
    asking = replace(asking_policy(usage={"threshold": "30m"}), limits=proposal().limits)
    result = simulate(runs, asking, START, Period.MONTH, [RESTORED_CY])
    october = result.periods[0]
    assert october.asked == 2  # ada and bob in week 0
    # bob kept by his yes; ada removed at the deadline (week 1), back as ACTIVE in week 3
    assert [(r.key, r.asked, r.removed_at) for r in result.removals][:1] == [
        ("ada@contoso.test", True, START + WEEK)
    ]
    assert "bob@contoso.test" not in {r.key for r in result.removals}


def test_an_appeal_counts_as_the_appeal_though_it_also_restores() -> None:
    took_back = START + 8 * WEEK - timedelta(days=2)
    events = [
        RESTORED_CY,
        Event("dan@contoso.test", took_back, CameBack.RESTORED),  # the appeal restores ...
        Event("dan@contoso.test", took_back, CameBack.APPEALED),  # ... and says so
    ]
    result = simulate(scripted(), proposal(), START, Period.MONTH, events)
    november = result.periods[1]
    assert november.came_back == 2 and november.regret_rate == 1.0
    assert november.back_by == {CameBack.RESTORED: 1, CameBack.APPEALED: 1}
    assert result.regret_rate == 0.75

"""Policy files: defaults, and one clear error listing every problem with its path."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from reclaim.domain.durations import format_duration, parse_duration
from reclaim.domain.policy import (
    Channel,
    DirectoryKind,
    MatchOn,
    Mode,
    PolicyError,
    UnknownUsers,
    UsageUnit,
    is_valid_schedule,
    policies_from_data,
)
from reclaim.policy_file import load_policies

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {
    "name": "visio",
    "application": "Visio",
    "directory": {"kind": "entra", "group": "0b6f5c2e-0000-4000-8000-000000000001"},
    "usage": {"source": "nexthink"},
}


def problems_of(data: object) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policies_from_data(data, "policies.yaml")
    return caught.value.problems


def with_policy(**changes: object) -> dict:
    entry = {**MINIMAL, **changes}
    return {"policies": [entry]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("90d", timedelta(days=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2w", timedelta(days=14)),
    ],
)
def test_durations_are_read_as_administrators_write_them(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["five", "5", "5 minutes", "", "-5m", "m5"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like 5m"):
        parse_duration(text)


def test_defaults_are_safe() -> None:
    (policy,) = policies_from_data({"policies": [MINIMAL]})
    assert policy.mode is Mode.DRY_RUN
    assert policy.ask_permission is False
    assert policy.usage.unknown_users is UnknownUsers.SKIP
    assert policy.usage.lookback == timedelta(days=90)
    assert policy.usage.threshold == 5.0
    assert policy.usage.max_age == timedelta(days=2)
    assert policy.limits.max_removals_per_run == 50
    assert policy.limits.max_percent_of_group == 10.0
    assert policy.keep_after_yes == timedelta(days=90)
    assert policy.new_member_grace == timedelta(days=90)
    assert policy.directory.kind is DirectoryKind.ENTRA
    assert is_valid_schedule(policy.schedule)


def test_every_field_of_the_design_is_read() -> None:
    (policy,) = policies_from_data(
        with_policy(
            mode="enforce",
            schedule="0 0 6 * * 1",
            usage={
                "source": "nexthink",
                "query_id": "#license_reclamation_usage",
                "lookback": "30d",
                "threshold": "10m",
                "unknown_users": "reclaim",
                "max_age": "1d",
                "match_on": "sid",
                "query_parameters": ["application", "app"],
                "parameters": {"app": "Visio"},
                "unit": "seconds",
            },
            ask_permission=True,
            campaign={
                "channel": "nexthink",
                "id": "#license_reclamation_request",
                "respond_within": "7d",
                "on_no_response": "keep",
            },
            keep_after_yes="60d",
            new_member_grace="14d",
            exclude={"users": ["CEO@Contoso.com"], "groups": ["VIP"]},
            limits={"max_removals_per_run": 5, "max_percent_of_group": 2.5},
            licence={"monthly_cost": 12.5, "currency": "eur", "sku_id": "c5928f49"},
        )
    )
    assert policy.mode is Mode.ENFORCE
    assert policy.usage.threshold == 10.0 and policy.usage.unit is UsageUnit.SECONDS
    assert policy.usage.match_on is MatchOn.SID
    assert policy.usage.query_parameters == ("application", "app")
    assert policy.usage.parameters == {"app": "Visio"}
    assert policy.campaign.channel is Channel.NEXTHINK
    assert policy.campaign.respond_within == timedelta(days=7)
    assert policy.exclude.users == frozenset({"ceo@contoso.com"})
    assert policy.exclude.groups == ("VIP",)
    assert policy.limits.max_percent_of_group == 2.5
    assert policy.licence.currency == "EUR"


def test_the_example_policies_are_valid() -> None:
    policies = load_policies(ROOT / "examples" / "policies.yaml")
    assert [p.name for p in policies] == ["salesforce-lightning", "visio-plan2"]


def test_a_bad_duration_names_its_path_and_value() -> None:
    assert problems_of(with_policy(usage={"source": "nexthink", "threshold": "five"})) == [
        "policies[0].usage.threshold: expected a duration like 5m, got 'five'"
    ]


def test_unknown_keys_are_errors_at_every_level() -> None:
    problems = problems_of(
        {
            "policies": [
                {**MINIMAL, "colour": "red", "usage": {"source": "nexthink", "treshold": "5m"}}
            ],
            "version": 2,
        }
    )
    assert "policies[0].colour: unknown key" in problems
    assert "policies[0].usage.treshold: unknown key" in problems
    assert "version: unknown key" in problems


def test_wrong_types_are_errors() -> None:
    problems = problems_of(
        with_policy(
            ask_permission="yes",
            limits={"max_removals_per_run": "ten", "max_percent_of_group": 150},
            exclude={"users": "bob@contoso.com"},
            licence={"monthly_cost": -1},
        )
    )
    assert "policies[0].ask_permission: expected true or false, got 'yes'" in problems
    assert (
        "policies[0].limits.max_removals_per_run: expected a whole number of 0 or more, got 'ten'"
        in problems
    )
    assert (
        "policies[0].limits.max_percent_of_group: expected a percentage from 0 to 100, got 150"
        in problems
    )
    assert "policies[0].exclude.users: expected a list, got text" in problems
    assert "policies[0].licence.monthly_cost: expected an amount of 0 or more, got -1" in problems


@pytest.mark.parametrize("schedule", ["0 6 * * 1", "* * * * * * *", "0 0 25 * * 1", "every monday"])
def test_bad_schedules_are_errors(schedule: str) -> None:
    (problem,) = problems_of(with_policy(schedule=schedule))
    assert problem.startswith("policies[0].schedule: expected an NCRONTAB schedule of six fields")


def test_duplicate_policy_names_are_errors() -> None:
    problems = problems_of({"policies": [MINIMAL, MINIMAL]})
    assert problems == ["policies[1].name: 'visio' is already used by policies[0]"]


def test_missing_fields_are_errors() -> None:
    problems = problems_of({"policies": [{"name": "x1"}]})
    assert "policies[0].application: is required" in problems
    assert "policies[0].directory.kind: is required" in problems
    assert "policies[0].directory.group: is required" in problems
    assert "policies[0].usage.source: is required" in problems


def test_choices_and_their_dependencies_are_checked() -> None:
    problems = problems_of(
        with_policy(
            mode="on",
            directory={"kind": "ldap", "group": "g"},
            ask_permission=True,
            usage={"source": "csv"},
        )
    )
    assert "policies[0].mode: expected one of dry-run | enforce, got 'on'" in problems
    assert (
        "policies[0].directory.kind: expected one of entra | entra-licence | ad | nexthink-remote-action | "
        "csv, "
        "got 'ldap'"
    ) in problems
    assert "policies[0].usage.file: is required" in problems
    assert "policies[0].campaign.channel: is required" in problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {"policies": [with_policy(mode="x")["policies"][0], {"name": "Bad Name!"}]}
    )
    assert len(problems) >= 5
    assert any(p.startswith("policies[0].mode") for p in problems)
    assert any(p.startswith("policies[1].name") for p in problems)


@pytest.mark.parametrize("data", [None, [], "policies", {"policies": []}, {"policies": {"a": 1}}])
def test_a_file_without_a_list_of_policies_is_an_error(data: object) -> None:
    assert problems_of(data)


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file: No such file or directory"):
        load_policies(tmp_path / "missing.yaml")


def test_a_file_that_is_not_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("policies:\n  - name: [unclosed\n")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    (problem,) = caught.value.problems
    assert problem.startswith("not valid YAML: line 3")


def test_the_cli_reports_a_broken_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("policies:\n  - name: x\n    usage: {threshold: five}\n")
    result = subprocess.run(
        [sys.executable, "-m", "reclaim", "validate", "--policies", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "policies[0].usage.threshold: expected a duration like 5m, got 'five'" in result.stderr
    assert "policies[0].application: is required" in result.stderr


# ---- combinations a run would only discover by failing ---------------------------------------

UNWORKABLE = {
    "policies": [
        {
            "name": "csv-enforce",
            "application": "Visio",
            "mode": "enforce",
            "directory": {"kind": "csv", "group": "g", "file": "members.csv"},
            "usage": {"source": "csv", "file": "usage.csv"},
        },
        {
            "name": "signins",
            "application": "Salesforce",
            "directory": {"kind": "ad", "group": "SF", "devices": ["mgmt-01"]},
            "usage": {
                "source": "entra-signins",
                "app_id": "not-a-guid",
                "lookback": "90d",
                "match_on": "sid",
                "timestamp_column": "when",
            },
            "licence": {"sku_id": "c7df2760-2c81-4ef7-b578-5b5392b571df"},
        },
    ]
}


def test_validation_refuses_what_cannot_work_all_at_once_with_paths() -> None:
    assert problems_of(UNWORKABLE) == [
        "policies[0].mode: enforce needs a directory that can remove members; directory.kind csv "
        "is a read-only export (use entra, ad or nexthink-remote-action, or mode: dry-run)",
        "policies[0].ask_permission: mode enforce needs it stated: true asks each candidate "
        "first, false removes without asking",
        "policies[1].usage.lookback: 90d is longer than the entra-signins log keeps (30d, "
        "usage.log_retention): the older days would read as no use. Shorten it, or export the "
        "log to a file and use source csv",
        "policies[1].usage.match_on: the sign-in log names users by upn or object_id (mail "
        "matches the UPN), not sid",
        "policies[1].usage.app_id: expected the application's appId (a GUID), got 'not-a-guid'",
        "policies[1].usage.timestamp_column: source entra-signins does not read it (remove it)",
        "policies[1].directory.devices: kind ad does not read it (remove it)",
        "policies[1].licence.sku_id: is the SKU of an Entra group; directory.kind ad does not "
        "read it (for users synced to Entra ID, use licence.entra_sku_id)",
    ]


def test_enforce_with_ask_permission_stated_either_way_is_valid() -> None:
    for ask in (False, True):
        campaign = {"channel": "webhook", "url": "https://survey.example/ask"} if ask else {}
        (policy,) = policies_from_data(
            with_policy(mode="enforce", ask_permission=ask, campaign=campaign)
        )
        assert policy.ask_permission is ask


def test_validate_exits_2_listing_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(UNWORKABLE))
    done = subprocess.run(
        [sys.executable, "-m", "reclaim", "validate", "--policies", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "8 problem(s)" in done.stderr and "Traceback" not in done.stderr
    assert "policies[0].ask_permission" in done.stderr


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        ({"timezone": "Mars/Olympus"}, "policies[0].usage.timezone: expected an IANA time zone"),
        ({"min_coverage": 1.5}, "policies[0].usage.min_coverage: expected a share from 0 to 1"),
    ],
)
def test_clock_and_coverage_settings_are_checked(usage: dict, problem: str) -> None:
    (found,) = problems_of(with_policy(usage={"source": "nexthink", **usage}))
    assert found.startswith(problem)


def test_first_run_is_baseline_unless_new() -> None:
    (policy,) = policies_from_data(with_policy())
    assert policy.first_run.value == "baseline"
    assert policy.usage.timestamp_column == "last_event" and policy.usage.min_coverage == 0.5
    (cautious,) = policies_from_data(with_policy(first_run="new"))
    assert cautious.first_run.value == "new"

"""NexthinkRemoteActionDirectory against the HTTPS fake: removals as a remote action, settled later
from remote_action.executions; membership from an inner directory (here a CSV members export)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reclaim.adapters.files import CsvDirectory
from reclaim.adapters.nexthink.remote_action import NexthinkRemoteActionDirectory
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import User
from reclaim.domain.policy import Policy, policies_from_data
from reclaim.errors import ConfigurationError, PermanentError
from reclaim.ports import GroupInfo, RemovalOutcome, RemovalResult
from tests.fakes.nexthink import (
    EXECUTIONS_QUERY,
    FakeNexthink,
    RemoteAction,
    secrets_for,
    settings_for,
)

ACT = "POST /api/v1/act/execute"
DETAILS = "GET /api/v1/act/remote-action/details"
T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
ADA = User(upn="ada@example.com", sam_account_name="ada", sid="S-1-5-21-1")


def policy(**directory: Any) -> Policy:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "directory": {
            "kind": "nexthink-remote-action",
            "group": "SF-Licensed",
            "devices": ["collector-dc1", "collector-dc2"],
            **directory,
        },
        "usage": {"source": "nexthink"},
    }
    return policies_from_data({"policies": [data]})[0]


def requested(request_id: str, nexthink_request: str) -> Request:
    return Request(
        id=request_id,
        policy="visio",
        group="SF-Licensed",
        user=ADA,
        state_key="ada@example.com",
        run_id="run-1",
        state=RequestState.REQUESTED,
        created_at=T0,
        updated_at=T0,
        detail=nexthink_request,
    )


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        yield fake


def directory(fake: FakeNexthink, inner: Any = None, **spec: Any) -> NexthinkRemoteActionDirectory:
    return NexthinkRemoteActionDirectory.from_settings(
        settings_for(fake), secrets_for(fake), policy(**spec), inner
    )


def test_remove_triggers_the_remote_action_on_the_policys_devices(nx: FakeNexthink) -> None:
    result = directory(nx).remove("SF-Licensed", ADA, request_id="req-7", run_id="run-3")
    assert result.outcome is RemovalOutcome.REQUESTED
    assert [e.request_id for e in nx.executions] == [result.detail, result.detail]
    body = nx.bodies[ACT][0]
    assert body["remoteActionId"] == "#invoke_remove_user_from_ad_group"
    assert body["devices"] == ["collector-dc1", "collector-dc2"]
    assert body["params"] == {"SamAccountName": "ada", "GroupName": "SF-Licensed"}
    assert body["triggerInfo"]["externalSource"] == "reclaim"
    assert body["triggerInfo"]["externalReference"] == "run-3/req-7"
    assert "ada" in body["triggerInfo"]["reason"] and "req-7" in body["triggerInfo"]["reason"]


def test_a_long_group_name_keeps_the_reason_within_500_characters(nx: FakeNexthink) -> None:
    group = "G" * 600
    directory(nx).remove(group, ADA, request_id="req-7")
    reason = nx.bodies[ACT][0]["triggerInfo"]["reason"]
    assert len(reason) == 500 and "req-7" in reason


def test_a_user_without_sam_account_name_cannot_be_removed(nx: FakeNexthink) -> None:
    with pytest.raises(PermanentError, match="sAMAccountName"):
        directory(nx).remove("SF-Licensed", User(upn="bob@example.com"))
    assert nx.count(ACT) == 0


def test_input_names_follow_the_settings(nx: FakeNexthink) -> None:
    nx.remote_actions["#remove_from_group"] = RemoteAction(["User", "Group"])
    settings = settings_for(
        nx, RECLAIM_NEXTHINK_SAM_INPUT="User", RECLAIM_NEXTHINK_GROUP_INPUT="Group"
    )
    ra = NexthinkRemoteActionDirectory.from_settings(
        settings, secrets_for(nx), policy(remote_action_id="#remove_from_group")
    )
    ra.remove("SF-Licensed", ADA)
    assert nx.bodies[ACT][0]["params"] == {"User": "ada", "Group": "SF-Licensed"}


def test_inputs_are_checked_once_against_the_remote_actions_details(nx: FakeNexthink) -> None:
    ra = directory(nx)
    ra.remove("SF-Licensed", ADA)
    ra.remove("SF-Licensed", User(upn="bob@example.com", sam_account_name="bob"))
    assert nx.count(DETAILS) == 1
    assert nx.count(ACT) == 2


def test_inputs_the_remote_action_does_not_declare_halt_before_anything_runs(
    nx: FakeNexthink,
) -> None:
    nx.remote_actions["#invoke_remove_user_from_ad_group"] = RemoteAction(["Username", "Group"])
    with pytest.raises(ConfigurationError) as caught:
        directory(nx).remove("SF-Licensed", ADA)
    message = str(caught.value)
    assert "declares the inputs Group, Username" in message
    assert "expects GroupName, SamAccountName" in message
    assert "RECLAIM_NEXTHINK_SAM_INPUT" in message
    assert nx.count(ACT) == 0


def test_the_pre_flight_check_reads_the_remote_actions_details(nx: FakeNexthink) -> None:
    class Inner:
        def check_group(self, group: str) -> GroupInfo:
            return GroupInfo(id=group, display_name=group)

    nx.remote_actions["#invoke_remove_user_from_ad_group"] = RemoteAction(["Username", "Group"])
    with pytest.raises(ConfigurationError, match="declares the inputs Group, Username"):
        directory(nx, inner=Inner()).check_group("SF-Licensed")


def test_a_remote_action_without_the_api_box_halts_naming_it(nx: FakeNexthink) -> None:
    nx.remote_actions["#invoke_remove_user_from_ad_group"].api_enabled = False
    with pytest.raises(ConfigurationError, match="tick API on its General tab"):
        directory(nx).remove("SF-Licensed", ADA)
    assert nx.count(ACT) == 0


def test_an_unknown_remote_action_halts_naming_it(nx: FakeNexthink) -> None:
    with pytest.raises(ConfigurationError, match="no remote action #no_such_action"):
        directory(nx, remote_action_id="#no_such_action").remove("SF-Licensed", ADA)
    assert nx.count(ACT) == 0


def test_a_remote_action_not_enabled_for_the_api_is_a_configuration_error(
    nx: FakeNexthink,
) -> None:
    nx.forbid("/api/v1/act/")
    with pytest.raises(ConfigurationError, match="403"):
        directory(nx).remove("SF-Licensed", ADA)


def test_finished_reports_success_and_failure_and_leaves_pending_out(nx: FakeNexthink) -> None:
    ra = directory(nx, devices=["collector-dc1"])
    done = ra.remove("SF-Licensed", ADA).detail
    failed = ra.remove("SF-Licensed", ADA).detail
    pending = ra.remove("SF-Licensed", ADA).detail
    nx.finish_execution(done, "success", "removed from SF-Licensed")
    nx.finish_execution(failed, "failure", "Access is denied")
    results = ra.finished(
        [requested("a", done), requested("b", failed), requested("c", pending), requested("d", "")]
    )
    assert results == {
        "a": RemovalResult(RemovalOutcome.REMOVED, detail="removed from SF-Licensed"),
        "b": RemovalResult(RemovalOutcome.FAILED, detail="failure: Access is denied"),
    }
    assert nx.bodies["POST /api/v2/nql/execute"][-1] == {
        "queryId": EXECUTIONS_QUERY,
        "parameters": {"remote_action_id": "#invoke_remove_user_from_ad_group"},
    }


def test_one_device_that_succeeds_is_enough(nx: FakeNexthink) -> None:
    ra = directory(nx)
    one = ra.remove("SF-Licensed", ADA).detail
    nx.finish_execution(one, "failure", "cannot reach DC", device="collector-dc1")
    assert ra.finished([requested("a", one)]) == {}  # dc2 is still pending
    nx.finish_execution(one, "success", "", device="collector-dc2")
    assert ra.finished([requested("a", one)]) == {
        "a": RemovalResult(RemovalOutcome.REMOVED, detail="success")
    }


def test_failed_on_every_device_is_a_failure(nx: FakeNexthink) -> None:
    ra = directory(nx)
    one = ra.remove("SF-Licensed", ADA).detail
    nx.finish_execution(one, "failure", "cannot reach DC", device="collector-dc1")
    nx.finish_execution(one, "expired", device="collector-dc2")
    assert ra.finished([requested("a", one)]) == {
        "a": RemovalResult(RemovalOutcome.FAILED, detail="failure: cannot reach DC; expired")
    }


def test_nothing_to_settle_asks_nothing(nx: FakeNexthink) -> None:
    assert directory(nx).finished([requested("a", "")]) == {}
    assert nx.count("POST /api/v2/nql/execute") == 0


# ---- membership through the inner directory -----------------------------------------------------


@pytest.fixture
def members_csv(tmp_path: Path) -> Path:
    path = tmp_path / "members.csv"
    path.write_text(
        "group,upn,sam_account_name,sid\n"
        "SF-Licensed,ada@example.com,ada,S-1-5-21-1\n"
        "SF-Licensed,bob@example.com,bob,S-1-5-21-2\n"
        "Other,eve@example.com,eve,S-1-5-21-3\n"
    )
    return path


def test_members_and_the_group_check_come_from_the_inner_directory(
    nx: FakeNexthink, members_csv: Path
) -> None:
    ra = directory(nx, CsvDirectory(members_csv))
    assert ra.check_group("SF-Licensed").member_count == 2
    assert [m.user.sam_account_name for m in ra.members("SF-Licensed")] == ["ada", "bob"]


def test_without_an_inner_directory_members_cannot_be_listed(nx: FakeNexthink) -> None:
    with pytest.raises(ConfigurationError, match="group membership"):
        list(directory(nx).members("SF-Licensed"))
    with pytest.raises(ConfigurationError, match="group membership"):
        directory(nx).check_group("SF-Licensed")


def test_restore_goes_through_the_ad_path(nx: FakeNexthink, members_csv: Path) -> None:
    with pytest.raises(ConfigurationError, match="re-add through the AD path"):
        directory(nx).add("SF-Licensed", ADA)
    with pytest.raises(ConfigurationError, match="read-only"):  # the inner directory decides
        directory(nx, CsvDirectory(members_csv)).add("SF-Licensed", ADA)

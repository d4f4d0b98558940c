"""Data stored by the earlier Table layout (one entity per request, PartitionKey request id;
decisions in one partition per policy) still reads, and is moved into the new layout once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from reclaim.adapters.rows import user_json
from reclaim.adapters.storage import storage_from_env
from reclaim.adapters.tables import TableStore, key
from reclaim.adapters.tables.members import BASELINE_ROW
from reclaim.adapters.tables.requests import RequestTable
from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.model import User
from tests.adapters.test_store_contract import a_run
from tests.conftest import NOW

pytestmark = pytest.mark.azurite

ADA = User(object_id="ada-id", upn="ada@contoso.test", mail="ada.l@contoso.test")


def old_request(request_id: str, state: RequestState) -> Request:
    return Request(
        request_id, "salesforce", "SF", ADA, ADA.upn, "run-0", state, NOW - timedelta(days=2),
        NOW - timedelta(days=2), deadline=NOW + timedelta(days=5), reason="idle",
    )  # fmt: skip


@pytest.fixture
def stored_before(storage_env: dict[str, str]):
    """Tables as the earlier layout wrote them: two requests, a run with its decision."""
    account = storage_from_env(storage_env)
    prefix = storage_env["RECLAIM_TABLE_PREFIX"]
    TableStore.from_account(account, prefix)  # creates the tables
    service = account.table_service()
    requests = service.get_table_client(f"{prefix}Requests")
    for r in (
        old_request("r-open", RequestState.PENDING),
        old_request("r-done", RequestState.KEPT),
    ):
        requests.create_entity(RequestTable._entity(r, key(r.id), "request"))  # the old entity
    service.get_table_client(f"{prefix}Runs").create_entity(
        {"PartitionKey": "salesforce", "RowKey": "run-0", "id": "run-0", "policy": "salesforce",
         "mode": "dry-run", "started_at": NOW - timedelta(days=2), "status": "planned",
         "members": 1, "counts": json.dumps({"CANDIDATE": 1}), "asked": 0, "enqueued": 0,
         "halt_check": "", "halt_reason": ""}
    )  # fmt: skip
    service.get_table_client(f"{prefix}Decisions").create_entity(
        {"PartitionKey": "salesforce", "RowKey": f"{key(ADA.upn)}|run-0", "run_id": "run-0",
         "policy": "salesforce", "state_key": ADA.upn, "user": user_json(ADA),
         "decision": "CANDIDATE", "reason": "idle", "evidence": "{}",
         "run_started_at": NOW - timedelta(days=2)}
    )  # fmt: skip
    members = service.get_table_client(f"{prefix}Members")
    for row, entity in (
        (BASELINE_ROW, {"taken_at": NOW - timedelta(days=9)}),
        (key(ADA.upn), {"state_key": ADA.upn, "first_seen": NOW - timedelta(days=9)}),
    ):
        members.create_entity({"PartitionKey": "salesforce", "RowKey": row, **entity})
    return lambda: TableStore.from_account(account, prefix)


def test_a_request_of_the_old_layout_reads_before_and_after_the_move(stored_before) -> None:
    store = stored_before()
    before = store.get_request("r-open")  # no move yet: a point read of the old entity
    assert before is not None and before.state is RequestState.PENDING
    assert [r.id for r in store.requests("salesforce", [RequestState.PENDING])] == ["r-open"]
    by_user = store.user_requests("salesforce", "ADA.L@contoso.test")
    assert [r.id for r in by_user] == ["r-done", "r-open"]  # same time: by id
    other = stored_before()  # another process: the marker says it is done, no second move
    kept = transition(before, RequestState.KEPT, NOW, detail="answered yes")
    assert other.update_request(kept) is True
    assert store.requests("salesforce", [RequestState.PENDING]) == []
    assert {r.id for r in store.requests("salesforce", [RequestState.KEPT])} == {"r-open", "r-done"}
    assert store.get_request("r-open") == kept
    assert store.add_request(old_request("r-done", RequestState.PENDING)) is False  # ids stay taken


def test_a_policy_whose_members_were_stored_in_one_partition_keeps_it(stored_before) -> None:
    store = stored_before()
    state = store.policy_state("salesforce", NOW)
    assert (state.baseline_at, dict(state.first_seen)) == (
        NOW - timedelta(days=9),
        {ADA.upn: NOW - timedelta(days=9)},
    )
    store.record_run(a_run("run-1"), [], [ADA.upn, "bob@contoso.test"])
    later = stored_before().policy_state("salesforce", NOW)
    assert dict(later.first_seen) == {ADA.upn: NOW - timedelta(days=9), "bob@contoso.test": NOW}


def test_decisions_of_the_old_layout_are_still_explained(stored_before) -> None:
    store = stored_before()
    (decision,) = store.user_decisions("salesforce", ADA.upn)
    assert (decision.run_id, decision.decision) == ("run-0", "CANDIDATE")

"""TableStore details beyond the shared contract (test_store_contract.py), against real Azurite."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from azure.data.tables import TableServiceClient

from reclaim.adapters.storage import StorageAccount, storage_from_env
from reclaim.adapters.tables import TableStore, key
from reclaim.adapters.tables.access import TableAccess
from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.model import User
from reclaim.domain.records import LedgerEntry, LedgerOutcome
from reclaim.settings import Settings, table_names
from tests.conftest import NOW

pytestmark = pytest.mark.azurite


def queued(request_id: str = "r1") -> Request:
    return Request(
        request_id, "salesforce", "SF", User(upn="ada@contoso.test"), "ada@contoso.test",
        "run-1", RequestState.QUEUED, NOW, NOW,
    )  # fmt: skip


@pytest.mark.parametrize("value", ["a/b", "a\\b", "a#b", "a?b", "a|b", "tab\there", "é%", "~!"])
def test_keys_never_hold_what_table_keys_forbid_or_the_separator(value: str) -> None:
    encoded = key(value)
    assert not set(encoded) & set("/\\#?|!\t")
    assert all(0x20 < ord(c) < 0x7F for c in encoded)
    assert key("ada@contoso.test") == "ada@contoso.test"  # readable where it can be


def test_from_settings_creates_the_prefixed_tables(storage_env: dict[str, str]) -> None:
    settings = Settings.from_env(storage_env)
    TableStore.from_settings(settings, env=storage_env)
    TableStore.from_settings(settings, env=storage_env)  # again: the tables exist, no error
    service = TableServiceClient.from_connection_string(storage_env["AzureWebJobsStorage"])
    existing = {t.name for t in service.list_tables()}
    assert set(table_names(storage_env["RECLAIM_TABLE_PREFIX"])) <= existing


def test_entities_are_partitioned_for_the_lookups(storage_env: dict[str, str]) -> None:
    account = storage_from_env(storage_env)
    prefix = storage_env["RECLAIM_TABLE_PREFIX"]
    store = TableStore.from_account(account, prefix)
    store.add_request(queued("id/with#odd?chars"))
    store.append_ledger(
        LedgerEntry("e1", NOW, "salesforce", "SF", "r1", "run-1", User(upn="a@c"),
                    LedgerOutcome.QUEUED)
    )  # fmt: skip

    service = account.table_service()
    requests = service.get_table_client(f"{prefix}Requests")
    assert {(e["PartitionKey"], e["RowKey"]) for e in requests.list_entities()} == {
        ("id%2Fwith%23odd%3Fchars", "request"),  # the locator: which policy's partition
        ("!salesforce", "r|id%2Fwith%23odd%3Fchars"),  # the request: one point read
        ("!salesforce", "s|QUEUED|id%2Fwith%23odd%3Fchars"),  # by policy and state
        ("!salesforce", "u|ada@contoso.test|id%2Fwith%23odd%3Fchars"),  # by policy and user
    }
    (ledger_entity,) = service.get_table_client(f"{prefix}Ledger").list_entities()
    assert ledger_entity["PartitionKey"] == "salesforce"
    assert ledger_entity["at"].tzinfo is not None


def test_times_in_any_zone_come_back_as_the_same_instant_in_utc(
    storage_env: dict[str, str],
) -> None:
    store = TableStore.from_account(
        storage_from_env(storage_env), storage_env["RECLAIM_TABLE_PREFIX"]
    )
    tokyo = timezone(timedelta(hours=9))
    request = queued()
    store.add_request(Request(**{**request.__dict__, "created_at": NOW.astimezone(tokyo)}))
    stored = store.get_request("r1")
    assert stored is not None
    assert stored.created_at == NOW and stored.created_at.utcoffset() == timedelta(0)


def test_a_claim_after_a_read_costs_one_request(storage_env: dict[str, str]) -> None:
    """The removal hot path: read the request, claim it, record the outcome: 3 requests."""
    sent: list[str] = []
    account = storage_from_env(storage_env)
    prefix = storage_env["RECLAIM_TABLE_PREFIX"]
    TableStore.from_account(account, prefix).add_request(queued())
    store = TableStore.from_account(
        account, prefix, raw_request_hook=lambda r: sent.append(r.http_request.method)
    )
    store.requests("another")  # once per process: the store checks its layout marker
    sent.clear()  # table creation at start is not part of the path

    request = store.get_request("r1", "salesforce")  # the removal message names the policy
    assert request is not None
    claim = transition(request, RequestState.REMOVING, NOW)
    assert store.update_request(claim) is True
    assert store.update_request(transition(claim, RequestState.REMOVED, NOW)) is True
    assert sent == ["GET", "POST", "POST"]  # each write: one transaction with its index entries
    other = TableStore.from_account(
        account, prefix, raw_request_hook=lambda r: sent.append(r.http_request.method)
    )
    sent.clear()
    assert other.get_request("r1") is not None
    assert sent == ["GET", "GET"]  # the locator, then the request


def test_a_failed_transaction_is_replayed_one_operation_at_a_time(
    storage_env: dict[str, str],
) -> None:
    """A snapshot whose departed member another writer already removed still completes."""
    store = TableStore.from_account(
        storage_from_env(storage_env), storage_env["RECLAIM_TABLE_PREFIX"]
    )
    members = store._service.get_table_client(store.table_names[5])  # what snapshots write
    members.upsert_entity({"PartitionKey": "p", "RowKey": "kept", "state_key": "kept"})
    operations = [
        ("delete", {"PartitionKey": "p", "RowKey": "already-gone"}),
        ("create", {"PartitionKey": "p", "RowKey": "kept", "state_key": "not overwritten"}),
        ("upsert", {"PartitionKey": "p", "RowKey": "new", "state_key": "new"}),
    ]
    TableAccess.transact(members, operations)
    assert sorted(
        (e["RowKey"], e["state_key"]) for e in members.query_entities("PartitionKey eq 'p'")
    ) == [("kept", "kept"), ("new", "new")]


def test_identity_based_storage_builds_clients_for_the_service_uris() -> None:
    account = storage_from_env(
        {"AzureWebJobsStorage__accountName": "reclaimprod", "AzureWebJobsStorage__clientId": "c1"}
    )
    assert account == StorageAccount(
        queue_service_uri="https://reclaimprod.queue.core.windows.net",
        table_service_uri="https://reclaimprod.table.core.windows.net",
        client_id="c1",
    )
    store = TableStore.from_account(account, "reclaim", create=False)
    assert store._requests._table.url.startswith("https://reclaimprod.table.core.windows.net")

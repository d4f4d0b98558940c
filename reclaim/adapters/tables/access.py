"""How the Table storage store reads and writes: point reads, queries that skip (and quarantine)
entities that do not read back, compare-and-set, and entity-group transactions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from reclaim.adapters.quarantine import TableQuarantine
from reclaim.adapters.tables.keys import TRANSACTION_LIMIT

T = TypeVar("T")

# Transactions (and other writes) in flight at once from one store. Table storage takes 2,000
# entities per second per partition and 20,000 per account: 8 x 100 operations stays well inside.
WRITE_WORKERS = 8
# Operation kinds of transact(): "create" never overwrites (an entity that exists is left as it
# is), "upsert" replaces, "delete" removes (one that is gone already is fine).
Operation = tuple[str, Mapping[str, Any]]
RESET_RETRIES = 2  # a transaction whose connection was reset is sent again this many times


class TableAccess:
    """Shared by the store's parts; thread-safe (the SDK's clients are)."""

    def __init__(self, quarantine: TableQuarantine) -> None:
        self.quarantine = quarantine

    def get(self, table: TableClient, partition: str, row: str) -> Any | None:
        try:
            return table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        except (ValueError, OverflowError) as error:  # stored in a form the SDK cannot decode
            self.quarantine.move(table, partition, row, f"the storage SDK cannot read it: {error}")
            return None

    def query(
        self, table: TableClient, query_filter: str, parameters: dict[str, Any] | None = None
    ) -> Iterator[Any]:
        return iter(self.quarantine.entities(table, query_filter, parameters or {}))

    def parsed(
        self, table: TableClient, entities: Iterable[Any], parse: Callable[[Any], T]
    ) -> list[T]:
        return self.quarantine.parsed(table, entities, parse)

    @staticmethod
    def create(table: TableClient, entity: Mapping[str, Any]) -> dict[str, Any] | None:
        """Insert; None when an entity with these keys exists already (409)."""
        try:
            return table.create_entity(entity)
        except ResourceExistsError:
            return None

    @staticmethod
    def replace_if(
        table: TableClient, entity: Mapping[str, Any], etag: str
    ) -> dict[str, Any] | None:
        """Replace only when the stored entity still has `etag`; None when it changed or left."""
        try:
            return table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        except HttpResponseError as error:
            if error.status_code in (404, 412):
                return None
            raise

    @staticmethod
    def transact(table: TableClient, operations: Sequence[Operation]) -> None:
        """Run idempotent operations on one partition in transactions of at most 100."""
        TableAccess.transact_many(table, [operations])

    @staticmethod
    def transact_many(table: TableClient, groups: Sequence[Sequence[Operation]]) -> None:
        """Run idempotent operations, each group on one partition, in transactions of at most
        100, WRITE_WORKERS at once (a 100,000-member snapshot is 1,000 transactions). A
        transaction that fails because another writer got there first (an entity to create
        exists, one to delete is gone) is replayed one operation at a time, ignoring such
        conflicts (after RESET_RETRIES, also one whose connection kept being reset)."""

        def submit(chunk: Sequence[Operation]) -> None:
            batch = [operation(kind, entity) for kind, entity in chunk]
            for attempt in range(RESET_RETRIES + 1):
                try:
                    table.submit_transaction(batch)
                    return
                except ServiceResponseError:
                    # The connection was reset with the outcome unknown (the SDK does not retry
                    # a POST): the operations are idempotent, so the transaction is sent again.
                    if attempt == RESET_RETRIES:
                        break
                except TableTransactionError:
                    break
            for kind, entity in chunk:
                if kind == "delete":
                    with contextlib.suppress(ResourceNotFoundError):
                        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                elif kind == "create":
                    with contextlib.suppress(ResourceExistsError):
                        table.create_entity(entity)
                else:
                    table.upsert_entity(entity, mode=UpdateMode.REPLACE)

        chunks = [
            operations[start : start + TRANSACTION_LIMIT]
            for operations in groups
            for start in range(0, len(operations), TRANSACTION_LIMIT)
        ]
        if len(chunks) <= 1:
            for chunk in chunks:
                submit(chunk)
            return
        with ThreadPoolExecutor(min(WRITE_WORKERS, len(chunks))) as pool:
            list(pool.map(submit, chunks))  # list(): re-raise the first failure


def operation(kind: str, entity: Mapping[str, Any]) -> tuple[Any, ...]:
    """An operation of transact() as submit_transaction takes it."""
    if kind == "upsert":
        return (kind, entity, {"mode": UpdateMode.REPLACE})
    return (kind, entity)


def conflict(error: TableTransactionError) -> bool:
    """The transaction lost a race (409 exists, 404 gone, 412 changed): not a failure."""
    return error.status_code in (404, 409, 412)

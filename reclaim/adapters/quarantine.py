"""Stored rows that cannot be read back are set aside with a reason instead of stopping a policy.

Two kinds, handled differently:
- a row the storage SDK itself cannot decode (azure-data-tables parses a whole page at once, so
  one year-1 Edm.DateTime fails every query of its table): it is MOVED to the Quarantine table,
  raw JSON and reason kept, and deleted from its table; no version of reclaim could read it.
- a row reclaim's readers (reclaim.adapters.rows) cannot turn into a record (an unknown state, a
  missing field, broken JSON): it is SKIPPED and a record is upserted in the Quarantine table,
  the row itself left in place, since a newer reclaim may have written it during a deployment.
Either way the reason is logged at ERROR and the read goes on with the other rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, UpdateMode

from reclaim.adapters.rows import stored_rows

log = logging.getLogger("reclaim.adapters.quarantine")

T = TypeVar("T")

MAX_TEXT = 30_000  # a Table string property holds at most 32K UTF-16 characters


def _key(value: str) -> str:
    return quote(value, safe="@:._-")


class TableQuarantine:
    """The Quarantine table: PartitionKey = source table, RowKey = source keys."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def entities(
        self, source: TableClient, query_filter: str, parameters: Mapping[str, Any]
    ) -> list[Any]:
        """Every entity of the query; ones the SDK cannot decode are moved here first."""
        try:
            return list(self._query(source, query_filter, parameters))
        except (ValueError, OverflowError) as error:
            log.warning("a row of %s cannot be decoded (%s); reading it row by row",
                        source.table_name, error)  # fmt: skip
        found = []
        for keys in self._query(
            source, query_filter, parameters, select=["PartitionKey", "RowKey"]
        ):
            partition, row = keys["PartitionKey"], keys["RowKey"]
            try:
                found.append(source.get_entity(partition, row))
            except ResourceNotFoundError:
                continue
            except (ValueError, OverflowError) as error:
                self.move(source, partition, row, f"the storage SDK cannot read it back: {error}")
        return found

    def parsed(
        self, source: TableClient, entities: Iterable[Any], parse: Callable[[Any], T]
    ) -> list[T]:
        """`parse` of every entity; one that does not parse is skipped and recorded here."""
        return stored_rows(entities, parse, lambda entity, why: self.record(source, entity, why))

    def move(self, source: TableClient, partition: str, row: str, reason: str) -> None:
        self._write(source, partition, row, reason, self._raw(source, partition, row), moved=True)
        source.delete_entity(partition, row)

    def record(self, source: TableClient, entity: Mapping[str, Any], reason: str) -> None:
        raw = json.dumps(dict(entity), default=str, ensure_ascii=False)
        self._write(source, entity["PartitionKey"], entity["RowKey"], reason, raw, moved=False)

    def _write(
        self, source: TableClient, partition: str, row: str, reason: str, raw: str, *, moved: bool
    ) -> None:
        log.error(
            "stored row %s %r/%r %s: %s",
            source.table_name,
            partition,
            row,
            "moved to the quarantine table"
            if moved
            else "skipped (recorded in the quarantine table)",
            reason,
        )
        self.table.upsert_entity(
            {
                "PartitionKey": _key(source.table_name),
                "RowKey": f"{_key(partition)}|{_key(row)}",
                "table": source.table_name,
                "partition": partition,
                "row": row,
                "reason": reason[:MAX_TEXT],
                "raw": raw[:MAX_TEXT],
                "moved": moved,
                "at": datetime.now(UTC),
            },
            mode=UpdateMode.REPLACE,
        )

    @staticmethod
    def _raw(source: TableClient, partition: str, row: str) -> str:
        """The entity's JSON as the service holds it, undecoded (the SDK would fail on it)."""

        def literal(value: str) -> str:
            return quote("'" + value.replace("'", "''") + "'", safe="")

        account, _, sas = source.url.partition("?")
        url = (
            f"{account.rstrip('/')}/{source.table_name}"
            f"(PartitionKey={literal(partition)},RowKey={literal(row)})"
            + (f"?{sas}" if sas else "")
        )
        try:
            # The generated client's send_request runs the SDK's own pipeline (auth, retries):
            # the one way to read an entity without decoding it.
            reply = source._client.send_request(
                HttpRequest(
                    "GET", url, headers={"Accept": "application/json;odata=minimalmetadata"}
                )
            )
            if reply.status_code != 200:
                return f"(not readable: HTTP {reply.status_code})"
            return str(reply.text())
        except AzureError as error:
            return f"(not readable: {error})"

    @staticmethod
    def _query(
        table: TableClient,
        query_filter: str,
        parameters: Mapping[str, Any],
        select: list[str] | None = None,
    ) -> Iterable[Any]:
        if not query_filter:
            return table.list_entities(select=select)
        return table.query_entities(query_filter, parameters=dict(parameters), select=select)

"""The function app's state in Azure Table storage (azure-data-tables): reclaim.ports.StateStore.

The same contract as the SQLite store (tests/adapters/test_store_contract.py runs one suite over
both). Tables come from reclaim.settings.table_names(prefix); keys are chosen so that what a run
or an answer reads grows with the work, not with the history:

| table     | PartitionKey             | RowKey                     | module, read by              |
|-----------|--------------------------|----------------------------|------------------------------|
| Requests  | "!" policy               | "r|" id, "s|" state "|" id,| requests: point read by id,  |
|           |                          | "u|" identifier "|" id     | range query by state or user |
|           | request id               | "request" (the locator)    |                              |
| Runs      | policy                   | run id                     | runs: runs(), report         |
| Decisions | policy "|" run "|" n     | state key                  | runs: one point read per run |
| Answers   | policy                   | state key "|" request "|" v| ledger: latest_yes           |
| Ledger    | policy                   | entry id                   | ledger: ledger(), report     |
| Members   | policy                   | "!baseline" (n partitions) | members: each partition read |
|           | policy "|" b (b < n)     | state key                  | once per run                 |
| Cursors   | policy                   | "schedule", "lease",       | cursors: compare-and-set;    |
|           |                          | "breaker:" kind, "retention"| where compaction ended       |
| Quarantine| source table             | source keys                | rows that did not read back  |

Keys are percent-encoded (`key()`), so characters Table keys forbid ('/', '\\', '#', '?',
control characters) and the store's own markers ('|', '!') never appear raw. Compare-and-set
uses the entity's ETag (If-Match). Idempotent inserts are create-or-conflict (409 -> False).
Batches go in entity-group transactions of at most 100 operations per partition. Datetimes are
stored as Edm.DateTime (UTC) and read back timezone-aware.
"""

from reclaim.adapters.tables.keys import key
from reclaim.adapters.tables.store import TableStore

__all__ = ["TableStore", "key"]

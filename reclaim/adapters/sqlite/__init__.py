"""The CLI's state in one SQLite file: reclaim.ports.StateStore (SqliteStore) and the local removal
queue beside it (removal_queue.SqliteQueue).

The same contract as the Table storage store (tests/adapters/test_store_contract.py runs one suite
over both). A module a concern:

| module        | holds                                                                     |
|---------------|---------------------------------------------------------------------------|
| store         | SqliteStore, made of the parts below; retention (compact) across tables   |
| schema        | the tables, the columns added since, how times are written                |
| connection    | one connection per thread, transactions and savepoints, quarantine        |
| requests      | requests (compare-and-set on their version) and answers                   |
| runs          | policy state, runs, decisions, member snapshots, the ledger               |
| cursors       | schedule cursor, run lease, circuit breakers                              |
| histories     | run histories (one BLOB a run)                                            |
| removal_queue | the CLI's durable removal queue, in the same file                         |

The operators' switch log is reclaim.adapters.switch_log, shared with the Table storage store.
"""

from reclaim.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]

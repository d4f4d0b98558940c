"""TableStore: reclaim.ports.StateStore over the tables of reclaim.settings.table_names(prefix),
one part per table (see the package's docstring for the layout)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reclaim.adapters.quarantine import TableQuarantine
from reclaim.adapters.storage import StorageAccount, storage_from_env
from reclaim.adapters.switch_log import TableSwitchLog
from reclaim.adapters.tables.access import WRITE_WORKERS, TableAccess
from reclaim.adapters.tables.cursors import CursorTable
from reclaim.adapters.tables.history import HistoryTable
from reclaim.adapters.tables.ledger import LedgerTable
from reclaim.adapters.tables.members import MemberTable
from reclaim.adapters.tables.requests import RequestTable
from reclaim.adapters.tables.runs import RunTable
from reclaim.domain.breaker import Breaker
from reclaim.domain.history import RunHistory
from reclaim.domain.lifecycle import OPEN_STATES, Request, RequestState
from reclaim.domain.model import Answer, PolicyState
from reclaim.domain.records import DecisionRecord, Lease, LedgerEntry, RunRecord
from reclaim.domain.switches import SwitchChange
from reclaim.ports import Compaction
from reclaim.settings import table_names

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

    from reclaim.settings import Settings


COMPACTION_INTERVAL = timedelta(days=1)


class TableStore:
    """reclaim.ports.StateStore on Azure Table storage; thread-safe (clients are shared)."""

    # Use cases may write for this many candidates at once (reclaim.usecases.bookkeeping).
    write_concurrency = WRITE_WORKERS

    def __init__(self, service: TableServiceClient, prefix: str, *, create: bool = True) -> None:
        names = table_names(prefix)
        self.table_names = names
        self._service = service
        (runs, decisions, requests, answers, ledger, members, cursors, switches, quarantine) = (
            service.get_table_client(name) for name in names
        )
        self._switches = TableSwitchLog(switches)
        access = TableAccess(TableQuarantine(quarantine))
        self._requests = RequestTable(access, requests, cursors)
        self._runs = RunTable(access, runs, decisions)
        self._histories = HistoryTable(access, decisions)
        self._members = MemberTable(access, members)
        self._ledger = LedgerTable(access, ledger, answers)
        self._cursors = CursorTable(access, cursors)
        if create:
            self.create_tables()

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, **client_options: Any
    ) -> TableStore:
        return cls.from_account(storage_from_env(env), settings.table_prefix, **client_options)

    @classmethod
    def from_account(
        cls, account: StorageAccount, prefix: str, *, create: bool = True, **client_options: Any
    ) -> TableStore:
        return cls(account.table_service(**client_options), prefix, create=create)

    def create_tables(self) -> None:
        for name in self.table_names:
            self._service.create_table_if_not_exists(name)

    # ---- policy state and runs ---------------------------------------------------------------

    def atomic(self) -> AbstractContextManager[None]:
        """Table storage has no transaction across tables: the writes go one by one, in order
        (a request and its index entries are one transaction of their own)."""
        return nullcontext()

    def policy_state(self, policy: str, now: datetime) -> PolicyState:
        baseline_at, first_seen = self._members.first_seen(policy)
        open_requests = {r.state_key: r.id for r in self.requests(policy, OPEN_STATES)}
        return PolicyState(
            baseline_at=baseline_at,
            first_seen=first_seen,
            last_yes=self._ledger.yes_by_user(policy),
            open_requests=open_requests,
        )

    def record_run(
        self, run: RunRecord, decisions: Sequence[DecisionRecord], snapshot: Iterable[str] | None
    ) -> None:
        # The run is written last: a run that is listed has its decisions and snapshot stored.
        partitions = self._runs.write_decisions(run, decisions)
        if snapshot is not None:
            self._members.snapshot(run.policy, set(snapshot), run.started_at)
        self._runs.write_run(run, partitions)

    def compact(self, policy: str, before: datetime) -> Compaction:
        # At most once a day per policy (the expiry tick calls it every few minutes), and only
        # over the runs that crossed the line since the last time: a few requests per day.
        since = self._cursors.compacted_through(policy)
        if since is not None and before - since < COMPACTION_INTERVAL:
            return Compaction()
        runs, decisions = self._runs.compact(policy, before, since)
        requests = self._requests.forget_finished(policy, before)
        histories = self._histories.compact(policy, before)
        self._cursors.set_compacted_through(policy, before)
        return Compaction(runs, decisions, requests, histories)

    def record_history(self, history: RunHistory) -> None:
        self._histories.record(history)

    def histories(self, policy: str, since: datetime | None = None) -> list[RunHistory]:
        return self._histories.read(policy, since)

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]:
        return self._runs.runs(since, policy)

    def user_decisions(self, policy: str, state_key: str) -> list[DecisionRecord]:
        return self._runs.user_decisions(policy, state_key)

    def run_decisions(self, policy: str, run_id: str) -> list[DecisionRecord]:
        return self._runs.run_decisions(policy, run_id)

    # ---- requests ----------------------------------------------------------------------------

    def add_request(self, request: Request) -> bool:
        return self._requests.add(request)

    def update_request(self, request: Request) -> bool:
        return self._requests.update(request)

    def get_request(self, request_id: str, policy: str | None = None) -> Request | None:
        return self._requests.get(request_id, policy)

    def requests(
        self, policy: str | None = None, states: Iterable[RequestState] | None = None
    ) -> list[Request]:
        return self._requests.find(policy, states)

    def user_requests(self, policy: str, user: str) -> list[Request]:
        return self._requests.of_user(policy, user)

    # ---- answers and the ledger --------------------------------------------------------------

    def record_answer(self, policy: str, state_key: str, answer: Answer) -> bool:
        return self._ledger.record_answer(policy, state_key, answer)

    def answers(self, policy: str, state_key: str) -> list[Answer]:
        return self._ledger.answers(policy, state_key)

    def latest_yes(self, policy: str, state_key: str) -> datetime | None:
        return self._ledger.latest_yes(policy, state_key)

    def append_ledger(self, entry: LedgerEntry) -> bool:
        return self._ledger.append(entry)

    def ledger(self, since: datetime | None = None, policy: str | None = None) -> list[LedgerEntry]:
        return self._ledger.entries(since, policy)

    # ---- cursors: schedule, lease, breakers --------------------------------------------------

    def schedule_cursor(self, policy: str) -> datetime | None:
        return self._cursors.schedule_cursor(policy)

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        return self._cursors.advance_schedule(policy, expected, due)

    def take_lease(self, policy: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        return self._cursors.take_lease(policy, holder, now, ttl)

    def release_lease(self, policy: str, holder: str) -> None:
        self._cursors.release_lease(policy, holder)

    def get_breaker(self, policy: str, directory: str) -> Breaker | None:
        return self._cursors.get_breaker(policy, directory)

    def save_breaker(self, breaker: Breaker) -> bool:
        return self._cursors.save_breaker(breaker)

    def breakers(self) -> list[Breaker]:
        return self._cursors.breakers()

    # ---- operators' switches (reclaim.adapters.switch_log) -----------------------------------

    def record_switch(self, change: SwitchChange) -> None:
        self._switches.record(change)

    def latest_switch(self, name: str) -> SwitchChange | None:
        return next(iter(self._switches.history(name, 1)), None)

    def switch_history(self, name: str, limit: int = 20) -> list[SwitchChange]:
        return self._switches.history(name, limit)

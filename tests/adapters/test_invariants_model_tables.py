"""The invariant model of tests/unit/test_invariants_model.py over the Table storage store on
real Azurite: a shorter run (Azurite round trips cost milliseconds each), same rules and checks."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from reclaim.adapters.storage import storage_from_env
from reclaim.adapters.tables import TableStore
from tests.support.azurite import unique_name
from tests.support.model import ReclaimMachine

pytestmark = pytest.mark.azurite

EXAMPLES = int(os.environ.get("RECLAIM_MODEL_TABLE_EXAMPLES", "25"))


def test_invariants_hold_over_table_storage(storage_env: dict[str, str]) -> None:
    account = storage_from_env(storage_env)

    class TableMachine(ReclaimMachine):
        def make_store(self) -> TableStore:
            # One prefix per example; a second store of the same example shares it (a second
            # instance of the function app).
            if not hasattr(self, "prefix"):
                self.prefix = unique_name("m")
            return TableStore.from_account(account, self.prefix)

    run_state_machine_as_test(
        TableMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    assert TableMachine.steps >= EXAMPLES * 30 // 2, f"only {TableMachine.steps} steps ran"

"""DESIGN §8's invariants as properties: random interleavings of runs, answers, usage and
membership changes, nested exclusion changes, deadlines, kill-switch flips, halts, overlapping
runs and redeliveries, over the real use cases and the real SQLite store, judged after every step
by the model in tests/support/model.py.

CI runs 400 examples of up to 80 steps and checks that at least 20,000 steps ran. A long run is
`RECLAIM_MODEL_EXAMPLES=10000 python -m pytest tests/unit/test_invariants_model.py -q`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from reclaim.adapters.sqlite import SqliteStore
from tests.support.model import ReclaimMachine

EXAMPLES = int(os.environ.get("RECLAIM_MODEL_EXAMPLES", "400"))


class SqliteMachine(ReclaimMachine):
    def make_store(self) -> SqliteStore:
        if not hasattr(self, "folder"):
            self.folder = tempfile.TemporaryDirectory()
        return SqliteStore(Path(self.folder.name) / "state.sqlite3")

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if hasattr(self, "folder"):
                self.folder.cleanup()


def test_invariants_hold_over_sqlite() -> None:
    SqliteMachine.steps = 0
    run_state_machine_as_test(
        SqliteMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=80,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # A model that stopped early proves little: the step budget is part of the test.
    assert SqliteMachine.steps >= EXAMPLES * 50, f"only {SqliteMachine.steps} steps ran"
    print(f"\n{SqliteMachine.steps} steps over {EXAMPLES} examples")

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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.policy.escalation import EscalateOn
from tests.support.model import ESCALATIONS, LABELS, ReclaimMachine

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


@pytest.mark.parametrize("escalation", [e for e in ESCALATIONS if e is not None])
@pytest.mark.parametrize(
    "then", ["keep", "release", "stranger", "silence", "keep by link", "release by link"]
)
@pytest.mark.parametrize("yes", [True, False])
@pytest.mark.parametrize("notice", [False, True])
def test_the_approval_paths_hold_the_invariants(
    escalation: Any, then: str, yes: bool, notice: bool
) -> None:
    """The escalation rules in a row, which random runs reach only now and then (swarm testing
    turns rules off): asked, answered, the approver asked, then kept, released (by the approvals
    route or the answer page's link), tried by a stranger or left silent; the work and the ticks that follow, judged by the same model."""
    machine = SqliteMachine()
    machine.setup(
        ask=True,
        on_no_response="reclaim",
        joined_days_ago=[40] * 8,
        nested=set(),
        active=set(LABELS[:6]),
        disabled=set(),
        disabled_accounts="keep",
        escalation=escalation,
        notice=notice,
    )
    machine.escalate(pick=0, yes=yes, then=then)
    if then.endswith(" by link") and machine.world.approval_asked:
        assert machine.world.approver_decisions, "the approver's link was refused"
    for hours in (0, 24 * 4, 24 * 8):
        machine.world.now += timedelta(hours=hours)
        machine.expire()
        machine.work(redeliver=True)
        machine.approve(pick=0, keep=False, stranger=True, by_link=then.endswith(" by link"))
        machine.no_wrong_removal_and_caps_hold()
        machine.one_open_request_per_user()
        machine.ledger_is_the_directory_history()
    machine.teardown()  # every request ends, and the invariants still hold
    assert machine.world.approval_asked or not machine.policy.escalation.covers(
        EscalateOn.KEEP if yes else EscalateOn.NO
    ), "the approver was never asked"

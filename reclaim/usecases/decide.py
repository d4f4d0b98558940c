"""decide: read the directory and the usage once, select, check the guardrails.

Shared by run_policy (which then asks or enqueues) and the expiry tick (which re-decides the
requests it is about to release), so both act on the same reading of the same rules.

The usage export is downloaded and summed on a second thread while the members are listed: both
are round trips to different services (and Nexthink's export waits server-side), so a read
costs the longer of the two, not their sum.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from reclaim.domain import guardrails
from reclaim.domain.guardrails import Halt
from reclaim.domain.membership import through_nested, with_groups
from reclaim.domain.model import Member, PolicyState, UsageIndex
from reclaim.domain.policy import Policy
from reclaim.domain.selection import (
    Decision,
    UsageTally,
    members_usage,
    removes,
    select,
    tally_usage,
)
from reclaim.errors import ReclaimError
from reclaim.ports import Directory, UsageExport
from reclaim.usecases.context import Context


@dataclass(frozen=True)
class Assessment:
    """One decision per member, or why there are none; `halt` set means nothing may act."""

    decisions: list[Decision] = field(default_factory=list)
    halt: Halt | None = None
    read: bool = True  # the directory and the usage were read in full (a snapshot may be kept)
    # What the decisions were made from (set once both were read): what a what-if re-decides.
    members: list[Member] = field(default_factory=list)
    usage: UsageIndex | None = None
    state: PolicyState | None = None


def read_members(directory: Directory, policy: Policy) -> list[Member]:
    """Direct members, with the exclusion groups that hold them at any depth, then the users
    who hold the licence only through a nested group (decided NESTED: not evaluated)."""
    group = policy.directory.group
    directory.check_group(group)
    members = list(directory.members(group))
    nested = [
        (inner.display_name or inner.id, directory.transitive_users(inner.id))
        for inner in directory.member_groups(group)
    ]
    exclusions = [(name, directory.transitive_users(name)) for name in policy.exclude.groups]
    return with_groups(members, exclusions) + through_nested(members, nested)


class _UsageRead:
    """The usage export, read and summed on a daemon thread: a read halted by the directory does
    not wait for it, and an abandoned download does not keep the process alive."""

    def __init__(self, read: Callable[[], UsageExport]) -> None:
        self._read = read
        self._members: frozenset[str] | None = None  # set once the listing is done
        self._result: tuple[UsageExport, UsageTally] | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="usage-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            export = self._read()
            self._result = (export, tally_usage(export.rows, lambda: self._members))
        except BaseException as failure:  # handed to the caller's thread by result()
            self._failure = failure

    def result(self, members: frozenset[str]) -> tuple[UsageExport, UsageTally]:
        """Wait for the read; from now on it keeps only these members' rows."""
        self._members = members
        self._thread.join()
        if self._result is None:
            assert self._failure is not None
            raise self._failure
        return self._result


def assess(
    ctx: Context,
    policy: Policy,
    now: datetime,
    *,
    kill_switch: bool,
    releasing: Collection[str] | None = None,
    overruled: Mapping[str, datetime] | None = None,
) -> Assessment:
    """Read the directory and the usage (once each), select, and check the guardrails.

    `releasing` names the state keys of open requests about to be released: they are judged
    afresh (not as PENDING), and the caps count only those of them still to be removed. Without
    it (a run), the caps count every removal the decisions call for. `overruled`: state key ->
    the time up to which her "yes" answers no longer protect her (released by her approver)."""
    usage_read = _UsageRead(lambda: ctx.adapters.usage_source(policy).usage(policy, now))
    try:
        members = read_members(ctx.adapters.directory(policy), policy)
    except ReclaimError as error:
        return Assessment(halt=Halt("directory", f"directory: {error}"), read=False)

    state = ctx.store.policy_state(policy.name, now)
    if releasing is not None:
        wanted = set(releasing)
        state = replace(
            state,
            open_requests={k: v for k, v in state.open_requests.items() if k not in wanted},
        )
    if overruled:
        yes = state.last_yes
        state = replace(
            state,
            last_yes={k: at for k, at in yes.items() if k not in overruled or at > overruled[k]},
        )
    keys = frozenset(k for m in members if (k := m.user.key(policy.usage.match_on)))
    try:
        export, tally = usage_read.result(keys)
        usage = members_usage(
            tally,
            keys,
            export.observed_at,
            clock=export.clock,
            authoritative=policy.usage.authoritative,
        )
    except ReclaimError as error:
        return Assessment(halt=Halt("usage_source", f"usage source: {error}"), read=False)

    decisions = select(members, usage, state, policy, now)
    removals = None
    if releasing is not None:
        removals = sum(1 for d in decisions if removes(d) and d.state_key in wanted)
    halt = guardrails.check(
        decisions, usage, policy, now, kill_switch=kill_switch, removals=removals
    )
    return Assessment(decisions, halt, members=members, usage=usage, state=state)

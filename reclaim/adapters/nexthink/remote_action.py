"""Directory kind `nexthink-remote-action`: group removals as a remote action on devices that
reach Active Directory, their outcome read later through NQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.adapters.nexthink.rows import json_object, require_columns, text
from reclaim.domain.lifecycle import Request
from reclaim.domain.model import Member, User
from reclaim.domain.policy import DirectorySpec, Policy
from reclaim.errors import ConfigurationError, PermanentError, SourceError
from reclaim.ports import (
    AddOutcome,
    Directory,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    Secrets,
    Sending,
    unmarked,
)
from reclaim.settings import Settings

# Input ids of the "Invoke remove user from AD group" remote action. Nexthink does not publish
# them: settings RECLAIM_NEXTHINK_SAM_INPUT / _GROUP_INPUT, checked by check_remote_action().
SAM_ACCOUNT_NAME_INPUT = "SamAccountName"
GROUP_NAME_INPUT = "GroupName"
TRIGGER_SOURCE = "reclaim"
MAX_TRIGGER_REASON = 500


@dataclass(frozen=True)
class ExecutionColumns:
    """The columns the executions query returns (remote_action.executions)."""

    request_id: str = "request_id"
    status: str = "status"
    status_details: str = "status_details"


_SUCCEEDED = frozenset({"success"})
_FAILED = frozenset({"failure", "expired", "cancelled", "canceled"})


class NexthinkRemoteActionDirectory:
    """Directory kind `nexthink-remote-action`: removals run as a remote action on devices that
    reach Active Directory; they finish later (RemovalTracker). Nexthink cannot read group
    membership, so listing members, the pre-flight check and re-adding go to an inner directory
    (LDAP, or a CSV export of the group)."""

    def __init__(
        self,
        client: NexthinkClient,
        spec: DirectorySpec,
        executions_query_id: str,
        inner: Directory | None = None,
        *,
        sam_account_name_input: str = SAM_ACCOUNT_NAME_INPUT,
        group_name_input: str = GROUP_NAME_INPUT,
        columns: ExecutionColumns | None = None,
    ) -> None:
        if not spec.devices:
            raise ConfigurationError(
                "nexthink-remote-action needs directory.devices: the collector ids of devices "
                "that can reach Active Directory"
            )
        self.client = client
        self.spec = spec
        self.executions_query_id = executions_query_id
        self.inner = inner
        self.sam_account_name_input = sam_account_name_input
        self.group_name_input = group_name_input
        self.columns = columns or ExecutionColumns()
        self._checked_lock = threading.Lock()
        self._checked = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        secrets: Secrets,
        policy: Policy,
        inner: Directory | None = None,
    ) -> NexthinkRemoteActionDirectory:
        return cls(
            NexthinkClient.from_settings(settings, secrets),
            policy.directory,
            settings.nexthink_executions_query_id,
            inner,
            sam_account_name_input=settings.nexthink_sam_account_name_input,
            group_name_input=settings.nexthink_group_name_input,
        )

    def _inner(self, needed_for: str) -> Directory:
        if self.inner is None:
            raise ConfigurationError(
                f"nexthink-remote-action cannot {needed_for}: Nexthink does not expose group "
                "membership; configure an AD (LDAP) connection or a CSV export of the group"
            )
        return self.inner

    def check_group(self, group: str) -> GroupInfo:
        info = self._inner("check the group").check_group(group)
        self.check_remote_action()
        return info

    def check_remote_action(self) -> None:
        """Once per instance: the remote action exists, is enabled for the API, and declares
        exactly the inputs reclaim sends (GET /api/v1/act/remote-action/details); otherwise every
        removal would fail the same way, so this halts naming what the action declares."""
        with self._checked_lock:
            if self._checked:
                return
            action = self.spec.remote_action_id
            response = self.client.call(
                "GET",
                "/api/v1/act/remote-action/details?" + urlencode({"nql-id": action}),
                what=f"remote action {action}",
                not_found=f"Nexthink has no remote action {action} (directory.remote_action_id)",
            )
            details = json_object(response)
            targeting = details.get("targeting")
            if isinstance(targeting, dict) and targeting.get("apiEnabled") is False:
                raise ConfigurationError(
                    f"remote action {action} cannot be triggered through the API: tick API on "
                    "its General tab (Remote actions > Manage remote actions)"
                )
            script = details.get("scriptInfo")
            inputs = script.get("inputs") if isinstance(script, dict) else None
            if not isinstance(inputs, list):
                raise SourceError(f"remote action {action}: the details have no scriptInfo.inputs")
            declared = sorted(text(i.get("id")) for i in inputs if isinstance(i, dict))
            sent = sorted([self.sam_account_name_input, self.group_name_input])
            if declared != sent:
                raise ConfigurationError(
                    f"remote action {action} declares the inputs {', '.join(declared) or 'none'}; "
                    f"reclaim expects {', '.join(sent)}: set RECLAIM_NEXTHINK_SAM_INPUT and "
                    "RECLAIM_NEXTHINK_GROUP_INPUT to the ids of its SAM account name and group "
                    "inputs"
                )
            self._checked = True

    def members(self, group: str) -> Iterator[Member]:
        return self._inner("list members").members(group)

    def member_groups(self, group: str) -> list[GroupInfo]:
        return self._inner("list nested groups").member_groups(group)

    def transitive_users(self, group: str) -> Iterator[User]:
        return self._inner("list the users of nested groups").transitive_users(group)

    def add(self, group: str, user: User, **_: str) -> AddOutcome:
        if self.inner is None:
            raise ConfigurationError(
                "restore for nexthink-remote-action: re-add through the AD path"
            )
        return self.inner.add(group, user)

    def remove(
        self,
        group: str,
        user: User,
        *,
        request_id: str = "",
        run_id: str = "",
        sending: Sending = unmarked,
    ) -> RemovalResult:
        """Trigger the remote action; the outcome is known later through finished()."""
        self.check_remote_action()
        sam = user.sam_account_name.strip()
        if not sam:
            raise PermanentError(
                f"{user.label}: no sAMAccountName known; the remote action removes by it"
            )
        # The request id first: a long group name may be cut at the 500-character limit.
        reference = f" (request {request_id})" if request_id else ""
        reason = f"Licence reclamation{reference}: remove {sam} from {group}"
        sending()
        response = self.client.call(
            "POST",
            "/api/v1/act/execute",
            what=f"remote action {self.spec.remote_action_id} for {sam}",
            body={
                "remoteActionId": self.spec.remote_action_id,
                "devices": list(self.spec.devices),
                "params": {self.sam_account_name_input: sam, self.group_name_input: group},
                "triggerInfo": {
                    "externalSource": TRIGGER_SOURCE,
                    "reason": reason[:MAX_TRIGGER_REASON],
                    "externalReference": f"{run_id}/{request_id}",
                },
            },
            idempotent=False,
            not_found=f"no remote action {self.spec.remote_action_id}",
        )
        nexthink_request = text(json_object(response).get("requestId"))
        if not nexthink_request:
            raise SourceError(
                f"remote action {self.spec.remote_action_id}: the answer has no requestId"
            )
        return RemovalResult(RemovalOutcome.REQUESTED, detail=nexthink_request)

    def finished(self, requests: Sequence[Request]) -> dict[str, RemovalResult]:
        """Requests whose remote action has finished: REMOVED when an execution succeeded, FAILED
        when every execution failed; still-running ones are left out.

        request.detail holds Nexthink's requestId (from remove()).
        """
        ours = {r.detail: r.id for r in requests if r.detail}
        if not ours:
            return {}
        what = f"executions query {self.executions_query_id}"
        rows = self.client.query_rows(
            self.executions_query_id, {"remote_action_id": self.spec.remote_action_id}
        ).rows
        columns = self.columns
        statuses: dict[str, list[tuple[str, str]]] = {}
        for number, row in enumerate(rows, start=1):
            if number == 1:
                require_columns(row, [columns.request_id, columns.status], what)
            nexthink_request = text(row.get(columns.request_id))
            if nexthink_request in ours:
                statuses.setdefault(nexthink_request, []).append(
                    (text(row.get(columns.status)).lower(), text(row.get(columns.status_details)))
                )
        results: dict[str, RemovalResult] = {}
        for nexthink_request, executions in statuses.items():
            result = _execution_result(executions)
            if result is not None:
                results[ours[nexthink_request]] = result
        return results


def _execution_result(executions: Sequence[tuple[str, str]]) -> RemovalResult | None:
    """One device that succeeded is enough; all must have failed for a failure."""
    for status, details in executions:
        if status in _SUCCEEDED:
            return RemovalResult(RemovalOutcome.REMOVED, detail=details or status)
    if all(status in _FAILED for status, _ in executions):
        details = "; ".join(f"{status}: {d}" if d else status for status, d in executions)
        return RemovalResult(RemovalOutcome.FAILED, detail=details)
    return None

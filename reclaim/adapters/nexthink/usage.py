"""UsageSource `nexthink`: the policy's saved usage query, exported and streamed."""

from __future__ import annotations

from datetime import datetime

from reclaim.adapters.files import usage_rows
from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.domain.durations import format_duration
from reclaim.domain.policy import Policy
from reclaim.ports import UsageExport


def usage_parameters(policy: Policy) -> dict[str, str]:
    """Exactly the parameters the saved query declares (usage.query_parameters): application
    and lookback from the policy unless usage.parameters gives them, the others from it
    (policy validation refuses a declared name without a value)."""
    spec = policy.usage
    supplied = {"application": policy.application, "lookback": format_duration(spec.lookback)}
    return {
        name: spec.parameters.get(name, supplied.get(name, "")) for name in spec.query_parameters
    }


class NexthinkUsage:
    """UsageSource `nexthink`: the policy's saved usage query, exported and streamed.

    The export is parsed like a CSV usage export (reclaim.adapters.files.usage_rows): columns
    usage.user_column and usage.usage_column (and the optional answer columns), the unit converted
    to minutes, an empty value meaning "observed, no use", a value that is not a number failing
    the whole source with its line and column.
    """

    def __init__(self, client: NexthinkClient) -> None:
        self.client = client

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        query_id = policy.usage.query_id
        result = self.client.export(query_id, usage_parameters(policy))
        source = f"Nexthink export of {query_id} (policy {policy.name})"
        # The age is the data's own: the newest usage.timestamp_column, never when the export
        # ran (an export of collectors that stopped weeks ago completes today all the same).
        return UsageExport(
            observed_at=None,
            rows=usage_rows(result.lines(), policy, source),
            clock=f"newest {policy.usage.timestamp_column} in the export of {query_id}",
        )

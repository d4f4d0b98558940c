"""Whether a removal really released a licence seat, read from Entra ID some minutes later.

Removing a user from a licensing group releases the group's licence asynchronously (group-based
licensing processes the change, minutes, sometimes hours later), and frees nothing when the same
SKU still comes from a direct assignment or another group. So the check runs after the removal,
from the expiry tick, and is read from the user's own licence data:

- `licenseAssignmentStates` (Graph type licenseAssignmentState: skuId, assignedByGroup -- null for
  a direct assignment --, state Active | ActiveWithError | Disabled | Error);
- `assignedLicenses` (assignedLicense: skuId, disabledPlans), the SKUs the user holds now.

One GET /users/{id}?$select=assignedLicenses,licenseAssignmentStates per user, 20 to a $batch:
steady-state removal costs the DELETE plus 1/20 of a batch, and nothing on the removal path.
Needs User.Read.All (the Graph path already asks for it to resolve users).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reclaim.adapters.graph.client import BatchItem, GraphClient, GraphReply
from reclaim.adapters.graph.errors import READ_USERS, denied
from reclaim.adapters.graph.paths import query, segment  # the Graph path's one wording for 401/403
from reclaim.errors import TransientError
from reclaim.ports import SeatQuery, SeatResult, SeatState

FIELDS = "assignedLicenses,licenseAssignmentStates"
# States that hold a seat; an assignment in Error or Disabled consumes none.
HOLDING = frozenset({"Active", "ActiveWithError"})


class GraphLicences:
    """reclaim.ports.Licences over Microsoft Graph."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    def seats(self, queries: Sequence[SeatQuery]) -> dict[str, SeatResult]:
        """The seat state of each query by key; a user whose read failed transiently (429, 5xx
        after retries) is absent, to be checked again on the next tick."""
        replies = self._client.batch(
            [
                BatchItem("GET", f"/users/{segment(q.user_id)}?{query(select=FIELDS)}")
                for q in queries
            ],
            permission=READ_USERS,
            what="read the licences of removed users",
        )
        results: dict[str, SeatResult] = {}
        for seat_query, reply in zip(queries, replies, strict=True):
            result = _result(seat_query, reply)
            if result is not None:
                results[seat_query.key] = result
        return results


def _result(seat: SeatQuery, reply: GraphReply) -> SeatResult | None:
    if reply.status == 404:
        return SeatResult(SeatState.UNKNOWN, f"Entra ID has no user {seat.user_id}")
    if reply.status in (401, 403):  # the app lacks User.Read.All: no other user will do better
        raise denied(reply, READ_USERS, f"read the licences of {seat.user_id}")
    if reply.status != 200 or not isinstance(reply.body, dict):
        return None  # throttled or failing: the next tick asks again
    return seat_state(seat, reply.body)


def seat_state(seat: SeatQuery, user: Mapping[str, Any]) -> SeatResult:
    """What a user's licence data says about `seat.sku_id` after leaving `seat.group`.

    Another source that holds the SKU settles it at once (the removal frees nothing, however
    long processing takes); this group's assignment still present means processing is pending.
    From AD the synced group's Entra id is unknown, so any group's assignment may be it."""
    sku = seat.sku_id.lower()
    group = seat.group.lower()
    states = [s for s in _items(user.get("licenseAssignmentStates")) if _sku(s) == sku]
    holding = [s for s in states if s.get("state") in HOLDING]
    direct = [s for s in holding if not _by(s)]
    if direct:
        again = "assigned directly again" if seat.direct else "also assigned directly"
        return SeatResult(SeatState.STILL_LICENSED, f"{seat.sku_id} is {again}")
    if seat.direct and holding:
        return SeatResult(
            SeatState.STILL_LICENSED,
            f"{seat.sku_id} is still assigned by group {holding[0].get('assignedByGroup')}",
        )
    others = [s for s in holding if group and _by(s) != group]
    if others:
        return SeatResult(
            SeatState.STILL_LICENSED,
            f"{seat.sku_id} is also assigned by group {others[0].get('assignedByGroup')}",
        )
    waiting = [s for s in states if _by(s) == group] if group else [s for s in holding if _by(s)]
    if waiting:
        return SeatResult(
            SeatState.PENDING,
            f"still assigned by group {waiting[0].get('assignedByGroup')} "
            f"(state {waiting[0].get('state')}): licence processing has not caught up",
        )
    assigned = {_sku(a) for a in _items(user.get("assignedLicenses"))}
    if sku in assigned:
        return SeatResult(SeatState.STILL_LICENSED, f"{seat.sku_id} is still assigned")
    return SeatResult(SeatState.FREED, f"{seat.sku_id} is no longer assigned")


def _items(value: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(value, list):
        if value is None:
            return []
        raise TransientError("Graph answered licence data that is not a list")
    return [item for item in value if isinstance(item, dict)]


def _sku(item: Mapping[str, Any]) -> str:
    return str(item.get("skuId") or "").lower()


def _by(item: Mapping[str, Any]) -> str:
    return str(item.get("assignedByGroup") or "").lower()

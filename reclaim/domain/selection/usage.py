"""Usage rows summed per user, then cut down to the group's members."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime

from reclaim.domain.model import CampaignResponse, UsageIndex, UsageRow


@dataclass(frozen=True)
class UsageTally:
    """An export summed per user, before the group is known: what lets the usage download run
    while the members are listed. Holds one amount per user in the export (not per row)."""

    amounts: dict[str, float]
    responses: dict[str, CampaignResponse]
    newest: datetime | None
    rows_read: int
    last_seen: dict[str, datetime] = field(default_factory=dict)  # user -> newest row time
    last_seen_from: dict[str, str] = field(default_factory=dict)  # user -> that row's at_from
    narrowed_to: AbstractSet[str] | None = None  # the group it was cut down to, once known


def tally_usage(
    rows: Iterable[UsageRow],
    members: Callable[[], AbstractSet[str] | None] = lambda: None,
    *,
    check_every: int = 4096,
) -> UsageTally:
    """Sum the streamed rows per user. A user may appear on several rows (one per device or day):
    their amounts add up. A row with no amount means the source observed the user and recorded no
    use: zero, not unknown.

    `members()` names the group's keys once they are known (the listing may finish while the
    export still streams): from then on users outside the group are dropped, so what is held
    follows the group, not the export. Every row still counts towards the data's age."""
    amounts: dict[str, float] = {}
    responses: dict[str, CampaignResponse] = {}
    last_seen: dict[str, datetime] = {}
    last_seen_from: dict[str, str] = {}
    newest: datetime | None = None
    wanted: AbstractSet[str] | None = None
    count = 0
    for row in rows:
        count += 1
        if row.at is not None and (newest is None or row.at > newest):
            newest = row.at
        if wanted is None and (count - 1) % check_every == 0:
            wanted = members()
            if wanted is not None:
                amounts = {k: v for k, v in amounts.items() if k in wanted}
                responses = {k: v for k, v in responses.items() if k in wanted}
                last_seen = {k: v for k, v in last_seen.items() if k in wanted}
                last_seen_from = {k: v for k, v in last_seen_from.items() if k in wanted}
        key = row.user_key
        if wanted is not None and key not in wanted:
            continue
        amounts[key] = amounts.get(key, 0.0) + (row.amount or 0.0)
        if row.answer is not None:
            responses[key] = row.answer
        if row.at is not None and (key not in last_seen or row.at > last_seen[key]):
            last_seen[key] = row.at
            last_seen_from[key] = row.at_from
    return UsageTally(amounts, responses, newest, count, last_seen, last_seen_from, wanted)


def members_usage(
    tally: UsageTally,
    member_keys: AbstractSet[str],
    observed_at: datetime | None,
    *,
    clock: str = "",
    authoritative: bool = False,
) -> UsageIndex:
    """Keep only members' usage. The data's age is `observed_at` when given, else the newest time
    on any row (None when no row has one). An authoritative source records every user, so a
    member it does not list used nothing."""
    if tally.narrowed_to is member_keys:  # cut down to these members already: no second copy
        amounts, responses = tally.amounts, tally.responses
        last_seen, last_seen_from = tally.last_seen, tally.last_seen_from
    else:
        amounts = {key: tally.amounts[key] for key in member_keys if key in tally.amounts}
        responses = {key: tally.responses[key] for key in member_keys if key in tally.responses}
        last_seen = {key: tally.last_seen[key] for key in member_keys if key in tally.last_seen}
        last_seen_from = {key: tally.last_seen_from.get(key, "") for key in last_seen}
    matched = len(amounts)
    if authoritative:
        amounts = {key: amounts.get(key, 0.0) for key in member_keys}
    return UsageIndex(
        observed_at=observed_at or tally.newest,
        amounts=amounts,
        rows_read=tally.rows_read,
        responses=responses,
        clock=clock,
        matched=matched,
        authoritative=authoritative,
        dated_by_rows=observed_at is None,
        last_seen=last_seen,
        last_seen_from=last_seen_from,
    )


def index_usage(
    rows: Iterable[UsageRow],
    member_keys: AbstractSet[str],
    observed_at: datetime | None,
    *,
    clock: str = "",
    authoritative: bool = False,
) -> UsageIndex:
    """Members' usage from streamed rows, when the members are already known."""
    return members_usage(
        tally_usage(rows, lambda: member_keys, check_every=1),
        member_keys,
        observed_at,
        clock=clock,
        authoritative=authoritative,
    )

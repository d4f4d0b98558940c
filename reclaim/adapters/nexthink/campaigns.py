"""Campaign channel `nexthink`: triggers the policy's campaign; reads the answers through NQL."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from reclaim.adapters.nexthink.client import NexthinkClient
from reclaim.adapters.nexthink.rows import json_object, parse_time, require_columns, text
from reclaim.domain.lifecycle import Request
from reclaim.domain.model import AnswerValue
from reclaim.domain.policy import Policy
from reclaim.domain.reminders import DueReminder
from reclaim.errors import ConfigurationError, SourceError, TransientError
from reclaim.ports import AskResult, ChannelAnswer, Secrets
from reclaim.settings import Settings

log = logging.getLogger(__name__)

CAMPAIGN_USERS_PER_TRIGGER = 10_000
MAX_CAMPAIGN_EXPIRY_MINUTES = 525_600

# The campaign parameter that carries the application's name. The pack's campaign declares
# `application_name` (its NQL filters on parameters.application_name); a campaign with other
# parameter ids needs this constant changed: Nexthink rejects a trigger whose keys differ.
CAMPAIGN_APPLICATION_PARAMETER = "application_name"


@dataclass(frozen=True)
class AnswerColumns:
    """The columns the answers query returns (README has the NQL that produces them)."""

    user_sid: str = "user.sid"
    answer: str = "answers.question1.label"  # "yes" (still needed) or "no"
    answered_at: str = "response_time"


def expiry_minutes(policy: Policy) -> int:
    minutes = math.ceil(policy.campaign.respond_within.total_seconds() / 60)
    return max(1, min(MAX_CAMPAIGN_EXPIRY_MINUTES, minutes))


class NexthinkCampaign:
    """Campaign channel `nexthink`: triggers the policy's campaign; reads answers through NQL."""

    def __init__(
        self,
        client: NexthinkClient,
        answers_query_id: str,
        columns: AnswerColumns | None = None,
    ) -> None:
        self.client = client
        self.answers_query_id = answers_query_id
        self.columns = columns or AnswerColumns()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> NexthinkCampaign:
        return cls(
            NexthinkClient.from_settings(settings, secrets), settings.nexthink_answers_query_id
        )

    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult:
        """Trigger the campaign for each request's user, by SID, 10,000 at a time.

        Per-user results inside a 200 are honoured. If a later batch fails, the requests already
        asked are still reported and the rest are not_asked with the reason; a failure of the
        first batch is raised, as nothing was asked.
        """
        return self._trigger_all(policy, requests, expiry_minutes(policy))

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        """Trigger the campaign again for each user: Nexthink creates a new campaign request
        (a new requestId) for the same SID, answered and read by SID like the first, so either
        answer counts. It expires at the deadline, which a reminder never moves."""
        by_expiry: dict[int, list[Request]] = {}
        for request, due in reminders:
            minutes = math.ceil((due.deadline - now).total_seconds() / 60)
            by_expiry.setdefault(max(1, min(MAX_CAMPAIGN_EXPIRY_MINUTES, minutes)), []).append(
                request
            )
        asked: dict[str, str] = {}
        not_asked: dict[str, str] = {}
        for minutes, requests in by_expiry.items():
            try:
                result = self._trigger_all(policy, requests, minutes)
            except (TransientError, ConfigurationError, SourceError) as error:
                if not asked:
                    raise
                not_asked.update((r.id, f"not triggered: {error}") for r in requests)
                continue
            asked.update(result.asked)
            not_asked.update(result.not_asked)
        return AskResult(asked=asked, not_asked=not_asked)

    def _trigger_all(self, policy: Policy, requests: Sequence[Request], minutes: int) -> AskResult:
        asked: dict[str, str] = {}
        not_asked: dict[str, str] = {}
        by_sid: dict[str, Request] = {}
        for request in requests:
            sid = request.user.sid.strip()
            if not sid:
                not_asked[request.id] = "no SID known"
            elif sid.upper() in by_sid:
                not_asked[request.id] = f"same SID as request {by_sid[sid.upper()].id}"
            else:
                by_sid[sid.upper()] = request
        pending = list(by_sid.values())
        for start in range(0, len(pending), CAMPAIGN_USERS_PER_TRIGGER):
            batch = pending[start : start + CAMPAIGN_USERS_PER_TRIGGER]
            try:
                results = self._trigger(policy, batch, minutes)
            except (TransientError, ConfigurationError, SourceError) as error:
                if start == 0:
                    raise
                not_asked.update((r.id, f"not triggered: {error}") for r in pending[start:])
                break
            for request in batch:
                outcome = results.get(request.user.sid.strip().upper())
                if outcome is None:
                    not_asked[request.id] = "Nexthink returned no result for this SID"
                elif outcome[0]:
                    asked[request.id] = outcome[0]
                else:
                    not_asked[request.id] = outcome[1] or "Nexthink created no request"
        return AskResult(asked=asked, not_asked=not_asked)

    def _trigger(
        self, policy: Policy, batch: Sequence[Request], minutes: int
    ) -> dict[str, tuple[str, str]]:
        """SID (upper case) -> (Nexthink requestId or "", message)."""
        response = self.client.call(
            "POST",
            "/api/v1/euf/campaign/trigger",
            what=f"campaign {policy.campaign.id} of policy {policy.name}",
            body={
                "campaignNqlId": policy.campaign.id,
                "userSid": [r.user.sid.strip() for r in batch],
                "expiresInMinutes": minutes,
                "parameters": {CAMPAIGN_APPLICATION_PARAMETER: policy.application},
            },
            idempotent=False,
            # Nexthink answers an unknown or unusable campaign with 400 (its OpenAPI lists no 404)
            not_found=_campaign_hint(policy),
            rejected=_campaign_hint(policy),
        )
        entries = json_object(response).get("requests")
        if not isinstance(entries, list):
            raise SourceError(
                f"campaign {policy.campaign.id}: the trigger answer has no 'requests' list"
            )
        results: dict[str, tuple[str, str]] = {}
        for entry in entries:
            if isinstance(entry, dict) and entry.get("userSid"):
                results[str(entry["userSid"]).upper()] = (
                    text(entry.get("requestId")),
                    text(entry.get("message")),
                )
        return results

    def answers(self, policy: Policy, since: datetime) -> Iterable[ChannelAnswer]:
        """Yes/no answers given at or after `since`, from the answers query, by user SID.

        The answers query runs per policy (parameters campaign_id and application), so a SID
        names the request: the service matches it to the user's request under this policy.
        Rows without an answer yet are skipped, and so are labels other than yes/no (logged):
        neither may count as consent.
        """
        what = f"answers query {self.answers_query_id} of policy {policy.name}"
        parameters = {"campaign_id": policy.campaign.id, "application": policy.application}
        result = self.client.query_rows(self.answers_query_id, parameters)
        return _answers(result.rows, result.zone, since, what, self.columns)


def _campaign_hint(policy: Policy) -> str:
    return (
        f"check that campaign {policy.campaign.id} exists, is published, has API ticked on its "
        f"General tab, and declares exactly the parameter {CAMPAIGN_APPLICATION_PARAMETER}"
    )


def _answers(
    rows: Iterator[dict[str, Any]],
    zone: tzinfo,
    since: datetime,
    what: str,
    columns: AnswerColumns,
) -> Iterator[ChannelAnswer]:
    for number, row in enumerate(rows, start=1):
        if number == 1:
            require_columns(row, [columns.user_sid, columns.answer, columns.answered_at], what)
        label = text(row.get(columns.answer)).lower()
        sid = text(row.get(columns.user_sid))
        if not label or not sid:
            continue
        try:
            value = AnswerValue(label)
        except ValueError:
            log.warning("%s: row %d: answer %r is neither yes nor no; skipped", what, number, label)
            continue
        answered_at = parse_time(text(row.get(columns.answered_at)), f"{what}, row {number}", zone)
        if answered_at >= since:
            yield ChannelAnswer(value, answered_at, user=sid)

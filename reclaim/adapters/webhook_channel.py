"""Campaign channel `webhook`: for organisations without Nexthink campaigns, each ask is POSTed to
policy.campaign.url (a Teams/Slack flow, ServiceNow, a mail relay...), signed like the webhook that
receives the answers (reclaim.signing). The receiver answers later by POSTing to reclaim's
campaign webhook, so answers() returns nothing: this channel pushes.

Body (JSON): request_id, policy, application, user {upn, mail, sam_account_name, sid,
display_name}, respond_by (ISO 8601, UTC), answer_url (where to POST the answer), answers
["yes", "no"], and event "ask". A reminder (campaign.reminders) is the same body, signed the same
way, with event "reminder" and reminder {number, of, before}; respond_by is unchanged. A delivery
may be repeated after a timeout or a 5xx: receivers drop repeats by request_id and event (and
reminder number); the request id is also in the X-Reclaim-Request-Id header.

An approval ask (policy key escalation) is signed the same way, with event "approval", the user
as above, approvers [{upn, mail, display_name}] (who may decide), trigger (keep | no |
no_response: what sent it to them), answer {value, justification, answered_at} (the user's own,
null after silence), respond_by (the approver's deadline), on_no_response (what their silence
does), answers ["keep", "release"], and answer_url /api/campaign/approvals: the receiver POSTs
{request_id, policy, approver, decision, justification} there, signed, as the approver it
authenticated (reclaim/functions/approvals.py).
A notice (policy.notice) is the same body with event "notice", answers ["yes"] (only a yes
changes anything now), respond_by the removal date, and notice {remove_after (ISO 8601, UTC),
period, text}: her licence goes on or after remove_after unless she answers yes before then.
Receivers drop repeats by request_id, event and remove_after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import requests

from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.domain.approval import ApproverDecision
from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import Request
from reclaim.domain.notice import Notice
from reclaim.domain.policy import Policy
from reclaim.domain.reminders import DueReminder
from reclaim.errors import ConfigurationError, TransientError
from reclaim.ports import ApprovalAsk, AskResult, ChannelAnswer, Secrets
from reclaim.settings import Settings
from reclaim.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

ANSWER_PATH = "/api/campaign/responses"  # reclaim's campaign webhook, on the function app's host
APPROVAL_PATH = "/api/campaign/approvals"  # where approvers' decisions are POSTed (approvals.py)
REQUEST_ID_HEADER = "X-Reclaim-Request-Id"


class WebhookCampaign:
    def __init__(
        self,
        secret: Callable[[], str],
        *,
        ca_bundle: str = "",
        answer_url: str = ANSWER_PATH,
        approval_url: str = APPROVAL_PATH,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 30.0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.answer_url = answer_url
        self.approval_url = approval_url
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets, **options: Any) -> WebhookCampaign:
        name = settings.outbound_webhook_secret_name
        if not name:
            raise ConfigurationError(
                "campaign channel webhook signs what it sends: set "
                "RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME (the secret shared with the receiver)"
            )
        return cls(lambda: secrets.get(name), ca_bundle=settings.ca_bundle, **options)

    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult:
        """POST one signed ask per request. 2xx: asked; 4xx: not asked, with the receiver's
        reason; 429/5xx: retried, then TransientError if nothing was delivered yet, or the rest
        not asked when some were (so those already asked stay recorded)."""
        return self._deliver(policy, [(r, self.payload(policy, r)) for r in requests])

    def remind(
        self, policy: Policy, reminders: Sequence[tuple[Request, DueReminder]], now: datetime
    ) -> AskResult:
        """POST one signed `reminder` event per request, answered like an ask."""
        return self._deliver(
            policy, [(r, self.reminder_payload(policy, r, due)) for r, due in reminders]
        )

    def ask_approval(self, policy: Policy, asks: Sequence[ApprovalAsk]) -> AskResult:
        """reclaim.ports.ApprovalChannel: POST one signed `approval` event per request."""
        return self._deliver(policy, [(a.request, self.approval_payload(policy, a)) for a in asks])

    def notify(
        self, policy: Policy, notices: Sequence[tuple[Request, Notice]], now: datetime
    ) -> AskResult:
        """POST one signed `notice` event per request (ports.NoticeChannel), answered like an ask."""
        return self._deliver(
            policy, [(r, self.notice_payload(policy, r, notice)) for r, notice in notices]
        )

    def _deliver(
        self, policy: Policy, bodies: Sequence[tuple[Request, dict[str, Any]]]
    ) -> AskResult:
        if not policy.campaign.url:
            raise ConfigurationError(f"policy {policy.name}: campaign.url is required")
        secret = self._secret()
        asked: dict[str, str] = {}
        not_asked: dict[str, str] = {}
        for index, (request, payload) in enumerate(bodies):
            try:
                response = self._post(policy, request, payload, secret)
            except TransientError as error:
                if not asked:
                    raise
                not_asked.update((r.id, f"not sent: {error}") for r, _ in bodies[index:])
                break
            if 200 <= response.status_code < 300:
                asked[request.id] = request.id  # the receiver knows the ask by our id
            else:
                said = response.text.strip()[:200]
                not_asked[request.id] = f"receiver answered HTTP {response.status_code}" + (
                    f": {said}" if said else ""
                )
        return AskResult(asked=asked, not_asked=not_asked)

    def answers(self, policy: Policy, since: datetime) -> list[ChannelAnswer]:
        return []  # the receiver pushes answers to reclaim's campaign webhook

    def _post(
        self, policy: Policy, request: Request, payload: dict[str, Any], secret: str
    ) -> requests.Response:
        body = json.dumps(payload, separators=(",", ":")).encode()

        def send() -> requests.Response:
            timestamp = int(self._clock())  # fresh on every attempt: receivers reject old ones
            return self.session.post(
                policy.campaign.url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(secret, timestamp, body),
                    REQUEST_ID_HEADER: request.id,
                },
                timeout=self.timeout,
            )

        return send_with_retries(
            send,
            what=f"campaign webhook of policy {policy.name}",
            policy=self.retry,
            sleep=self._sleep,
        )

    def payload(self, policy: Policy, request: Request) -> dict[str, Any]:
        respond_by = request.deadline or request.created_at + policy.campaign.respond_within
        user = request.user
        return {
            "request_id": request.id,
            "policy": policy.name,
            "application": policy.application,
            "user": {
                "upn": user.upn,
                "mail": user.mail,
                "sam_account_name": user.sam_account_name,
                "sid": user.sid,
                "display_name": user.display_name,
            },
            "respond_by": respond_by.isoformat(),
            "answer_url": self.answer_url,
            "answers": ["yes", "no"],
            "event": "ask",
        }

    def approval_payload(self, policy: Policy, ask: ApprovalAsk) -> dict[str, Any]:
        request, answer = ask.request, ask.answer
        approval = request.approval
        escalation = policy.escalation
        return {
            **self.payload(policy, request),
            "event": "approval",
            "answer_url": self.approval_url,
            "answers": [d.value for d in ApproverDecision],
            "approvers": [
                {"upn": a.upn, "mail": a.mail, "display_name": a.display_name}
                for a in (approval.approvers if approval else ())
            ],
            "trigger": approval.trigger.value if approval else "",
            "answer": None
            if answer is None
            else {
                "value": answer.value.value,
                "justification": answer.justification,
                "answered_at": answer.answered_at.isoformat(),
            },
            "on_no_response": escalation.on_no_response.value if escalation else "keep",
        }

    def reminder_payload(
        self, policy: Policy, request: Request, due: DueReminder
    ) -> dict[str, Any]:
        return {
            **self.payload(policy, request),
            "event": "reminder",
            "reminder": {
                "number": due.number,
                "of": due.of,
                "before": format_duration(due.before),
            },
        }

    def notice_payload(self, policy: Policy, request: Request, notice: Notice) -> dict[str, Any]:
        return {
            **self.payload(policy, request),
            "event": "notice",
            "respond_by": notice.remove_after.isoformat(),
            "answers": ["yes"],
            "notice": {
                "remove_after": notice.remove_after.isoformat(),
                "period": format_duration(notice.period),
                "text": notice.text(),
            },
        }

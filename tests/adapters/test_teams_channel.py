"""Campaign channel `teams` (TeamsWorkflowChannel) against the Teams Workflows fake: one Adaptive
Card per recipient with the UPN the flow posts to, its signed links, Markdown kept as text, the
28 KB limit, and what the webhook refuses; the webhook's URL comes from the secrets port."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.teams_channel import ADAPTIVE_CARD, TeamsWorkflowChannel, payload
from reclaim.domain import messages
from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.messages import MessageKind
from reclaim.errors import ConfigurationError
from reclaim.settings import Settings
from reclaim.wiring import Wiring
from tests.fakes.teams import FakeTeamsWorkflow
from tests.support.messages import T0, carries_no_link, link_env, policy, read, request

WEBHOOK_SECRET_NAME = "teams-workflow-url"


@pytest.fixture
def workflow() -> Iterator[FakeTeamsWorkflow]:
    with FakeTeamsWorkflow() as fake:
        yield fake


def channel(workflow: FakeTeamsWorkflow, url: str = "", **overrides: str) -> TeamsWorkflowChannel:
    env = {
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_CA_BUNDLE": str(workflow.ca_file),
        "RECLAIM_TEAMS_WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_NAME,
        variable_for(WEBHOOK_SECRET_NAME): url or workflow.webhook_url,
        **link_env(),
        **overrides,
    }
    return TeamsWorkflowChannel.from_settings(Settings.from_env(env), EnvironmentSecrets(env))


def test_each_ask_is_one_card_for_its_recipient_with_open_url_buttons(
    workflow: FakeTeamsWorkflow,
) -> None:
    asks = [request("r1", "ada@contoso.test", display_name="Ada"), request("r2", "bo@contoso.test")]
    result = channel(workflow).ask(policy("teams"), asks)
    assert result.asked == {r: "card accepted by the Teams workflow" for r in ("r1", "r2")}
    assert workflow.failed_runs == []
    assert [c.recipient for c in workflow.cards] == ["ada@contoso.test", "bo@contoso.test"]
    for posted, asked in zip(workflow.cards, asks, strict=True):
        card = posted.card
        assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
        assert card["body"][0]["text"] == "Do you still need Microsoft Visio?"
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert facts["What we found"] == r"2 minute(s) in 30 days, below 5m"
        actions = card["actions"]
        assert [(a["type"], a["title"]) for a in actions] == [
            ("Action.OpenUrl", "Keep my licence"),
            ("Action.OpenUrl", "Release it"),
        ]
        for action, choice in zip(actions, ("keep", "release"), strict=True):
            link, preselected = read(action["url"])
            assert preselected == choice
            assert (link.request_id, link.recipient, link.purpose) == (
                asked.id,
                asked.user.upn,
                LinkPurpose.ANSWER,
            )
            assert link.expires_at == asked.deadline


def test_markdown_from_the_directory_stays_text_on_the_card(workflow: FakeTeamsWorkflow) -> None:
    hostile = request(
        "r1", "ada@contoso.test", display_name="[Ada](https://evil.test) **{{DATE(x)}}**"
    )
    channel(workflow).ask(policy("teams"), [hostile])
    (posted,) = workflow.cards
    opening = posted.card["body"][1]["text"]
    assert r"\[Ada\](https://evil.test) \*\*\{\{DATE(x)\}\}\*\*" in opening
    assert "[Ada](" not in opening


def test_a_card_over_teams_limit_is_not_sent(workflow: FakeTeamsWorkflow) -> None:
    result = channel(workflow).ask(
        policy("teams"), [request("r1", "ada@contoso.test", reason="x" * 30_000)]
    )
    assert result.asked == {}
    assert "over Teams' 28672" in result.not_asked["r1"]
    assert workflow.requests == 0


def test_debug_logs_never_show_the_webhook_signature(
    workflow: FakeTeamsWorkflow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel(workflow).ask(policy("teams"), [request("r1", "ada@contoso.test")])
    assert "POST /workflows/" in caplog.text  # urllib3's request line, its signature hidden
    assert workflow.signature not in caplog.text and "sig=[hidden]" in caplog.text


def test_a_wrong_webhook_signature_is_not_asked_and_the_url_is_never_told(
    workflow: FakeTeamsWorkflow,
) -> None:
    forged = workflow.webhook_url.replace(workflow.signature, "forged")
    result = channel(workflow, url=forged).ask(policy("teams"), [request("r1", "ada@contoso.test")])
    assert result.not_asked == {
        "r1": "the Teams workflow answered HTTP 401 DirectApiInvalidAuthorizationSignature"
    }
    assert carries_no_link(result.not_asked["r1"]) and workflow.cards == []


def test_every_message_kind_is_a_card(workflow: FakeTeamsWorkflow) -> None:
    teams = channel(workflow)
    visio, asked = policy("teams"), request("r1", "ada@contoso.test")
    for kind in MessageKind:
        message = messages.compose(
            kind, visio, asked, recipient="ada@contoso.test", recipient_name="Ada", deadline=T0
        )
        assert teams.send([message]).asked == {"r1": "card accepted by the Teams workflow"}
    purposes = [
        {read(a["url"], T0.replace(year=2029))[0].purpose.value for a in c.card["actions"]}
        for c in workflow.cards
    ]
    assert purposes == [{"answer"}, {"answer"}, {"approve"}, {"answer"}, {"appeal"}]


def test_the_channel_needs_the_webhook_secret_and_an_https_url(
    workflow: FakeTeamsWorkflow,
) -> None:
    with pytest.raises(ConfigurationError, match="RECLAIM_TEAMS_WEBHOOK_SECRET_NAME"):
        channel(workflow, RECLAIM_TEAMS_WEBHOOK_SECRET_NAME="")
    plain_http = channel(workflow, url="http://127.0.0.1:9/hook")
    with pytest.raises(ConfigurationError, match="https://"):
        plain_http.ask(policy("teams"), [request("r1", "ada@contoso.test")])


# ---- the fake refuses what Workflows refuses --------------------------------------------------


def _post(workflow: FakeTeamsWorkflow, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        workflow.webhook_url,
        data=body,
        headers={"Content-Type": content_type},
        verify=str(workflow.ca_file),
        timeout=10,
    )


def _good() -> dict:
    message = messages.ask(policy("teams"), request("r1", "ada@contoso.test"), "ada@contoso.test")
    return payload(message, [])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"type=message", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b'{"type": "message"}', "text/plain"),
    ],
)
def test_the_webhook_takes_json_only(
    workflow: FakeTeamsWorkflow, body: bytes, content_type: str
) -> None:
    answer = _post(workflow, body, content_type)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidRequestContent"
    assert workflow.cards == [] and workflow.failed_runs == []


def _no_card_type(body: dict) -> None:
    body["attachments"][0]["contentType"] = "application/vnd.microsoft.card.hero"


def _oversized(body: dict) -> None:
    body["attachments"][0]["content"]["body"].append({"type": "TextBlock", "text": "x" * 29_000})


CHANGES = {
    "no attachments": lambda body: body.pop("attachments"),
    "not an Adaptive Card": _no_card_type,
    "no version": lambda body: body["attachments"][0]["content"].pop("version"),
    "recipient": lambda body: body.pop("recipient"),
    "over the limit": _oversized,
}


@pytest.mark.parametrize("failure", list(CHANGES))
def test_what_the_flow_cannot_post_is_accepted_then_fails_in_the_run(
    workflow: FakeTeamsWorkflow, failure: str
) -> None:
    body = _good()
    CHANGES[failure](body)
    answer = _post(workflow, json.dumps(body).encode(), "application/json")
    assert answer.status_code == 202 and answer.content == b""
    assert workflow.cards == []
    (run,) = workflow.failed_runs
    assert failure in run


def test_a_good_payload_is_posted(workflow: FakeTeamsWorkflow) -> None:
    body = _good()
    assert body["attachments"][0]["contentType"] == ADAPTIVE_CARD
    assert _post(workflow, json.dumps(body).encode(), "application/json").status_code == 202
    assert [c.recipient for c in workflow.cards] == ["ada@contoso.test"]


def test_the_policys_channel_names_the_adapter(workflow: FakeTeamsWorkflow, tmp_path: Path) -> None:
    env = {
        "RECLAIM_SECRETS_SOURCE": "env",
        "RECLAIM_TEAMS_WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_NAME,
        variable_for(WEBHOOK_SECRET_NAME): workflow.webhook_url,
        **link_env(),
    }
    wiring = Wiring(Settings.from_env(env), tmp_path, EnvironmentSecrets(env))
    assert isinstance(wiring.campaign(policy("teams")), TeamsWorkflowChannel)
    with pytest.raises(ConfigurationError, match="RECLAIM_MAIL_SENDER"):
        wiring.campaign(policy("email"))


def test_a_notice_is_a_card_naming_the_removal_date_with_one_keep_button(
    workflow: FakeTeamsWorkflow,
) -> None:
    from datetime import timedelta

    from reclaim.domain.notice import notice_from

    asked = request("r1", "ada@contoso.test", display_name="Ada")
    notice = notice_from("Microsoft Visio", timedelta(days=3), T0)
    result = channel(workflow).notify(policy("teams"), [(asked, notice)], T0)
    assert result.asked == {"r1": "card accepted by the Teams workflow"}
    (posted,) = workflow.cards
    assert posted.recipient == "ada@contoso.test"
    when = messages.when(T0 + timedelta(days=3))
    assert (
        posted.card["body"][0]["text"] == f"Your Microsoft Visio licence will be removed on {when}"
    )
    (action,) = posted.card["actions"]
    link, preselected = read(action["url"])
    assert (action["title"], preselected) == ("Keep my licence", "keep")
    assert (link.request_id, link.purpose, link.expires_at) == (
        "r1",
        LinkPurpose.ANSWER,
        T0 + timedelta(days=3),
    )

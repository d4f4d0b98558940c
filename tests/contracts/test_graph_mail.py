"""sendMail against Microsoft's published types (graph-v1.0-mail-types.json: the action
user.sendMail and graph.message): the body the email channel sends is a valid instance, and the
Graph fake refuses what Graph refuses, with Graph's status and error code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient
from reclaim.adapters.graph.mail import send_mail_body
from reclaim.adapters.links import LinkSigner
from reclaim.domain import messages
from reclaim.settings import Settings
from tests.contracts.graph_contract import action_parameters, problems
from tests.fakes import graph_mail
from tests.fakes.graph import FakeGraph
from tests.support.messages import LINK_SECRET, PUBLIC_URL, policy, request

SENDER = "licences@contoso.test"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        graph_mail.enable(fake, fake.add_user(SENDER))
        yield fake


def _body() -> dict[str, Any]:
    message = messages.ask(
        policy("email"), request("r1", "ada@contoso.test", display_name="Ada"), "ada@contoso.test"
    )
    signer = LinkSigner(lambda: LINK_SECRET.encode(), PUBLIC_URL)
    return send_mail_body(message, signer.links(message))


def test_the_channels_body_is_a_valid_send_mail_call() -> None:
    parameters = {name.lower(): edm for name, edm in action_parameters("user.sendMail").items()}
    body = _body()
    assert sorted(name.lower() for name in body) == sorted(parameters)  # Message, SaveToSentItems
    found = [
        p for name, value in body.items() for p in problems(value, parameters[name.lower()], name)
    ]
    assert found == []
    assert body["message"]["body"]["contentType"] == "html"  # a member of graph.bodyType


def _post(graph: FakeGraph, body: bytes, content_type: str, sender: str = SENDER) -> Any:
    env = {**graph.settings_env()}
    client = GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env))
    return client.session.post(
        f"{graph.url}/users/{sender}/sendMail",
        data=body,
        headers={"Authorization": f"Bearer {client._token.get()}", "Content-Type": content_type},
        timeout=10,
    )


def test_a_good_call_is_202_with_no_body_and_the_mail_is_kept(graph: FakeGraph) -> None:
    answer = _post(graph, json.dumps(_body()).encode(), "application/json")
    assert (answer.status_code, answer.content) == (202, b"")
    (mail,) = graph.mail.sent
    assert mail.to == ["ada@contoso.test"] and mail.save_to_sent_items is False


def test_parameter_names_and_enum_members_are_read_as_graph_reads_them(graph: FakeGraph) -> None:
    body = _body()
    body = {"Message": body["message"], "SaveToSentItems": True}
    body["Message"]["body"]["contentType"] = "HTML"  # Graph's own examples write "Text"
    assert _post(graph, json.dumps(body).encode(), "application/json").status_code == 202
    assert graph.mail.sent[0].save_to_sent_items is True


def _without(path: str) -> dict[str, Any]:
    body = _body()
    holder, _, key = path.rpartition(".")
    target = body
    for part in filter(None, holder.split(".")):
        target = target[part]
    target.pop(key)
    return body


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (_without("message"), "application/json", 400, "ErrorInvalidParameter"),
        (_without("message.toRecipients"), "application/json", 400, "ErrorInvalidRecipients"),
        ({**_body(), "sendNow": True}, "application/json", 400, "RequestBodyRead"),
        (
            {**_body(), "message": {**_body()["message"], "colour": "red"}},
            "application/json",
            400,
            "RequestBodyRead",
        ),
        (
            {**_body(), "message": {**_body()["message"], "toRecipients": "ada@contoso.test"}},
            "application/json",
            400,
            "RequestBodyRead",
        ),
        (_body(), "text/plain", 400, "ErrorMimeContentInvalidBase64String"),
        (_body(), "application/x-www-form-urlencoded", 415, "UnsupportedMediaType"),
    ],
)
def test_the_fake_refuses_what_graph_refuses(
    graph: FakeGraph, body: dict[str, Any], content_type: str, status: int, code: str
) -> None:
    answer = _post(graph, json.dumps(body).encode(), content_type)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert graph.mail.sent == []


def test_an_unknown_sender_or_one_without_a_mailbox_is_graphs_404(graph: FakeGraph) -> None:
    graph.granted.add("Mail.Send")
    graph.add_user("room@contoso.test")
    for sender, code in (("nobody@contoso.test", "ErrorInvalidUser"),
                         ("room@contoso.test", "MailboxNotEnabledForRESTAPI")):  # fmt: skip
        answer = _post(graph, json.dumps(_body()).encode(), "application/json", sender)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, code)


def test_without_mail_send_or_an_rbac_scope_holding_the_sender_it_is_denied(
    graph: FakeGraph,
) -> None:
    graph.mail.rbac_scope = set()
    answer = _post(graph, json.dumps(_body()).encode(), "application/json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "ErrorAccessDenied")

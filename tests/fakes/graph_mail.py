"""FakeGraph's `POST /users/{id | userPrincipalName}/sendMail`, routed from FakeGraph._route.

Accepted as Graph accepts it (learn.microsoft.com/graph/api/user-sendmail), else Graph's answer:

- who may send: the application permission Mail.Send (every mailbox), or an Exchange RBAC for
  Applications assignment of "Application Mail.Send" whose management scope holds the sender
  (`graph.mail.rbac_scope`); anything else 403 ErrorAccessDenied "Access is denied. Check
  credentials and try again.";
- the sender: a user that does not exist 404 ErrorInvalidUser "The requested user '<id>' is
  invalid."; a user without an Exchange Online mailbox (`graph.mail.enable(...)` gives one)
  404 MailboxNotEnabledForRESTAPI "The mailbox is either inactive, soft-deleted, or is hosted
  on-premise.";
- the body: `Content-Type: application/json` (text/plain is the MIME form: a body that is not
  base64 is 400 ErrorMimeContentInvalidBase64String; the fake takes no MIME mail); parameters
  of the action user.sendMail only (Message required, SaveToSentItems; names case-insensitive as
  in Graph), each a valid instance of its type in graph-v1.0-mail-types.json (400
  RequestBodyRead naming the property), a message with no recipient 400 ErrorInvalidRecipients;
- success: 202 Accepted, no body; the mail is kept in `graph.mail.sent`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.contracts.graph_contract import action_parameters, problems
from tests.fakes.identity import FakeReply

if TYPE_CHECKING:
    from tests.fakes.graph import FakeGraph

SEND_MAIL = "Mail.Send"


@dataclass(frozen=True)
class SentMail:
    sender: str  # the sender's UPN
    to: list[str]
    subject: str
    content_type: str  # itemBody.contentType as sent
    content: str
    save_to_sent_items: bool
    message: dict[str, Any]


@dataclass
class Mailboxes:
    enabled: set[str] = field(default_factory=set)  # user ids with an Exchange Online mailbox
    # Exchange RBAC for Applications: the mailboxes (user ids) the "Application Mail.Send" role
    # assignment's management scope holds; None when there is no such assignment.
    rbac_scope: set[str] | None = None
    sent: list[SentMail] = field(default_factory=list)


def enable(graph: FakeGraph, user_id: str, *, scoped: bool = True) -> None:
    """`user_id` gets a mailbox; with `scoped`, the app's RBAC scope holds it too."""
    with graph._lock:
        graph.mail.enabled.add(user_id)
        if scoped:
            graph.mail.rbac_scope = (graph.mail.rbac_scope or set()) | {user_id}


def route(
    graph: FakeGraph, method: str, parts: list[str], headers: dict[str, str], body: Any
) -> FakeReply | None:
    match parts:
        case ["users", key, "sendMail"] if method == "POST":
            return _send_mail(graph, key, headers, body)
    return None


def _send_mail(graph: FakeGraph, key: str, headers: dict[str, str], body: Any) -> FakeReply:
    from tests.fakes.graph import _error

    user = graph._find_user(key)
    scope = graph.mail.rbac_scope
    if SEND_MAIL not in graph.granted and (user is None or scope is None or user.id not in scope):
        return _error(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    if user is None:
        return _error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if user.id not in graph.mail.enabled:
        return _error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    kind = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    kind = kind.split(";")[0].strip().lower()
    if kind == "text/plain":
        raw = body if isinstance(body, bytes) else str(body or "").encode()
        try:
            base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        raise AssertionError("the Graph fake takes sendMail in JSON only, not MIME")
    if kind != "application/json":
        return _error(
            415,
            "UnsupportedMediaType",
            f"Content type '{kind or 'none'}' is not supported for this request.",
        )
    if not isinstance(body, dict):
        return _error(400, "RequestBodyRead", "The request body is not a JSON object.")
    parameters = {
        name.lower(): (name, edm) for name, edm in action_parameters("user.sendMail").items()
    }
    given: dict[str, Any] = {}
    for name, value in body.items():
        if name.lower() not in parameters:
            return _error(
                400,
                "RequestBodyRead",
                f"The parameter '{name}' in the request payload is not a valid parameter for "
                "the operation 'sendMail'.",
            )
        given[parameters[name.lower()][0]] = value
    message = given.get("Message")
    if not message:
        return _error(
            400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty."
        )
    found = [
        p
        for name, value in given.items()
        for p in problems(_enum_case(value), parameters[name.lower()][1], name)
    ]
    if found:
        return _error(400, "RequestBodyRead", f"Cannot read the request body: {found[0]}")
    to = [r["emailAddress"]["address"] for r in message.get("toRecipients") or []
          if (r.get("emailAddress") or {}).get("address")]  # fmt: skip
    copies = [*(message.get("ccRecipients") or []), *(message.get("bccRecipients") or [])]
    if not to and not copies:
        return _error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is required, but none were found.",
        )
    item_body = message.get("body") or {}
    with graph._lock:
        graph.mail.sent.append(
            SentMail(
                sender=user.upn,
                to=to,
                subject=str(message.get("subject") or ""),
                content_type=str(item_body.get("contentType") or "text").lower(),
                content=str(item_body.get("content") or ""),
                save_to_sent_items=given.get("SaveToSentItems", True) is not False,
                message=message,
            )
        )
    return FakeReply(202)


def _enum_case(value: Any) -> Any:
    """Graph reads enum members case-insensitively ("HTML", "Text" in its own examples)."""
    if isinstance(value, dict):
        return {
            k: v.lower()
            if k in ("contentType", "importance") and isinstance(v, str)
            else _enum_case(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_enum_case(v) for v in value]
    return value

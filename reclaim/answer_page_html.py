"""The answer page's HTML: the question with its evidence, the appeal, the result, the refusal.

One self-contained document per answer: inline CSS allowed by its hash in the
Content-Security-Policy, no script, no image, no external asset. Every value is escaped; the form
posts back to the page with the link's token in a hidden field (the token is the capability: no
other cookie or session exists, so a forged cross-site form has nothing to ride on).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from html import escape

from reclaim.domain.answer_links import ANSWER_PAGE_ROUTE, LinkPurpose
from reclaim.domain.durations import format_duration
from reclaim.domain.limits import MAX_JUSTIFICATION_LENGTH
from reclaim.domain.model import Answer
from reclaim.usecases.answer_link import Choice, LinkResult, LinkView
from reclaim.usecases.record_answer import AnswerStatus
from reclaim.usecases.record_approval import ApprovalStatus

# Contrast: text #1b1b1b on white and white on #0b5394 are above 7:1 (WCAG AAA).
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#fff;color:#1b1b1b;"
    "line-height:1.5}main{max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}"
    "dt{font-weight:600}dd{margin:0}textarea{width:100%;font:inherit;box-sizing:border-box}"
    "label{font-weight:600;display:block;margin:1rem 0 .25rem}"
    "button{font:inherit;padding:.5rem 1rem;margin:1rem .5rem 0 0;border:2px solid #0b5394;"
    "border-radius:4px;cursor:pointer}.primary{background:#0b5394;color:#fff}"
    ".secondary{background:#fff;color:#0b5394}.note{border-left:4px solid #0b5394;"
    "padding-left:.75rem}:focus-visible{outline:3px solid #b35c00;outline-offset:2px}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><main>{body}</main></body></html>\n"
    )


def view_page(view: LinkView, problem: str = "", preselect: str = "") -> str:
    """The question (or the appeal) with the choices the link still offers; `problem` says why
    the last submission was refused (it is shown above the form); `preselect` is the button the
    message's link stood for (`&choice=`): shown first, still to be confirmed."""
    if view.link.purpose is LinkPurpose.APPEAL:
        return _appeal_page(view, problem)
    if view.link.purpose is LinkPurpose.APPROVE:
        return _approval_page(view, problem, preselect)
    app = escape(view.policy.application)
    parts = [
        f"<h1>Do you still need {app}?</h1>",
        f"<p>Hello {escape(view.link.recipient)}. reclaim frees licences that are not used. "
        f"Your {app} licence looks unused, so we ask you before giving it back.</p>",
        '<h2 id="evidence">Why we ask</h2>',
        f'<p id="reason">{escape(view.reason)}</p>',
    ]
    if view.evidence:
        items = "".join(
            f"<dt>{escape(name.replace('_', ' '))}</dt><dd>{escape(value)}</dd>"
            for name, value in view.evidence.items()
        )
        parts.append(f'<dl aria-labelledby="evidence">{items}</dl>')
    if view.answers:
        said = "; ".join(
            f"{'keep' if a.value.value == 'yes' else 'release'} on {_when(a.answered_at)}"
            for a in view.answers
        )
        parts.append(f'<p id="answers">Your answers so far: {escape(said)}.</p>')
    if view.note:
        parts.append(f'<p class="note" id="note">{escape(_sentence(view.note))}.</p>')
    if view.choices:
        silence = (
            "the licence is given back"
            if view.policy.campaign.on_no_response.value == "reclaim"
            else "you keep the licence"
        )
        parts.append(
            f'<p id="deadline">Answer by <strong>{_when(view.closes_at)}</strong>. '
            f"Without an answer by then, {silence}.</p>"
        )
        parts.append(_form(view, problem, preselect))
    return _document(f"Your {view.policy.application} licence", "".join(parts))


def _problem(problem: str) -> str:
    return f'<p class="note" id="problem" role="alert">{escape(problem)}</p>' if problem else ""


_USER_LABELS = {Choice.KEEP: "Keep my licence", Choice.RELEASE: "Release it: I do not need it"}
_APPROVER_LABELS = {Choice.KEEP: "Keep the licence", Choice.RELEASE: "Release it"}


def _form(
    view: LinkView, problem: str, preselect: str, labels: dict[Choice, str] = _USER_LABELS
) -> str:
    need = (
        " (required to keep the licence)"
        if view.justification_required and Choice.KEEP in view.choices
        else " (optional)"
    )
    offered = sorted(
        (c for c in view.choices if c in labels), key=lambda c: c.value != preselect
    )  # the preselected one first, then in the page's order
    chosen = (
        f'<p id="preselected">You chose "{labels[offered[0]]}" in the message: confirm it '
        "below, or choose the other.</p>"
        if offered and offered[0].value == preselect and len(offered) > 1
        else ""
    )
    buttons = "".join(
        f'<button class="{"primary" if i == 0 else "secondary"}" type="submit" name="choice" '
        f'value="{c.value}">{labels[c]}</button>'
        for i, c in enumerate(offered)
    )
    return (
        f'<form method="post" action="{ANSWER_PAGE_ROUTE}">{_problem(problem)}'
        f'<input type="hidden" name="t" value="{escape(view.token)}">'
        f'<label for="justification">Why{escape(need)}</label>'
        f'<textarea id="justification" name="justification" rows="3" '
        f'maxlength="{MAX_JUSTIFICATION_LENGTH}" aria-describedby="justification-help"></textarea>'
        f'<p id="justification-help">One line, at most {MAX_JUSTIFICATION_LENGTH} characters; '
        f"your administrator sees it.</p>{chosen}{buttons}</form>"
    )


def _said(answer: Answer) -> str:
    value = "keep" if answer.value.value == "yes" else "release"
    reason = f" (“{answer.justification}”)" if answer.justification else ""
    return f"{value} on {_when(answer.answered_at)}{reason}"


def _approval_page(view: LinkView, problem: str, preselect: str) -> str:
    """Her approver's page: her evidence, her own answer and reason, keep or release."""
    app, user = escape(view.policy.application), view.request.user
    person = escape(user.display_name or user.label)
    said = "; ".join(_said(a) for a in view.answers) or "no answer by her deadline"
    parts = [
        f"<h1>Does {person} still need {app}?</h1>",
        f"<p>Hello {escape(view.link.recipient)}. reclaim frees licences that are not used. "
        f"{person}'s {app} licence looks unused, and you are asked to decide whether it "
        "stays.</p>",
        '<h2 id="evidence">Why we ask</h2>',
        f'<p id="reason">{escape(view.reason)}</p>',
    ]
    if view.evidence:
        items = "".join(
            f"<dt>{escape(name.replace('_', ' '))}</dt><dd>{escape(value)}</dd>"
            for name, value in view.evidence.items()
        )
        parts.append(f'<dl aria-labelledby="evidence">{items}</dl>')
    parts.append(f'<p id="their-answer">{person} answered: {escape(said)}.</p>')
    if view.decisions:
        decided = "; ".join(_said(d) for d in view.decisions)
        parts.append(f'<p id="answers">Decisions so far: {escape(decided)}.</p>')
    if view.note:
        parts.append(f'<p class="note" id="note">{escape(_sentence(view.note))}.</p>')
    if view.choices:
        escalation = view.policy.escalation
        silence = (
            "the licence is given back"
            if escalation is not None and escalation.on_no_response.value == "reclaim"
            else "the licence stays"
        )
        parts.append(
            f'<p id="deadline">Decide by <strong>{_when(view.closes_at)}</strong>. '
            f"Without a decision by then, {silence}.</p>"
        )
        parts.append(_form(view, problem, preselect, _APPROVER_LABELS))
    return _document(f"{view.policy.application} licence of {person}", "".join(parts))


def _appeal_page(view: LinkView, problem: str) -> str:
    app, request = escape(view.policy.application), view.request
    window = format_duration(view.policy.appeal_within) if view.policy.appeal_within else ""
    body = (
        f"<h1>Get your {app} licence back</h1>"
        f"<p>Hello {escape(view.link.recipient)}. Your {app} licence was removed on "
        f'<span id="removed-at">{_when(request.updated_at)}</span>.</p>'
        f'<p id="what-happens">If you still need it, press the button: you are added back to '
        f"the licence group at once, without waiting for an administrator, and reclaim will not "
        f"ask you again for a while. Your administrator sees that you did.</p>"
        f'<p id="deadline">You can do this until <strong>{_when(view.closes_at)}</strong> '
        f"({escape(window)} after the removal).</p>"
        f'<form method="post" action="{ANSWER_PAGE_ROUTE}">{_problem(problem)}'
        f'<input type="hidden" name="t" value="{escape(view.token)}">'
        '<button class="primary" type="submit" name="choice" value="restore">'
        "Give me my licence back</button></form>"
    )
    return _document(f"Your {view.policy.application} licence", body)


_DONE = {
    AnswerStatus.KEPT: "You keep your licence. Thank you for answering.",
    AnswerStatus.QUEUED: "Thank you: your licence will be given back shortly.",
    AnswerStatus.CANCELLED: "You keep your licence: the removal will not happen.",
    AnswerStatus.DUPLICATE: "Your answer was already recorded: nothing changed.",
    AnswerStatus.RECORDED: "Your answer was recorded.",
    AnswerStatus.ESCALATED: (
        "Thank you: your answer was recorded. Your approver decides now whether you keep the "
        "licence."
    ),
}


_DECIDED = {
    ApprovalStatus.KEPT: "The licence stays. Thank you for deciding.",
    ApprovalStatus.RELEASED: "Thank you: the licence will be given back.",
    ApprovalStatus.CANCELLED: "The licence stays: the removal will not happen.",
    ApprovalStatus.DUPLICATE: "Your decision was already recorded: nothing changed.",
    ApprovalStatus.RECORDED: "Your decision was recorded.",
}


def result_page(result: LinkResult) -> str:
    """What the person sees after pressing a button."""
    app = escape(result.view.policy.application)
    if result.approval is not None:
        title, text = "Your decision", escape(_DECIDED[result.approval])
    elif result.restored:
        title, text = (
            f"Your {app} licence is back",
            (
                "You are back in the licence group. It can take a few minutes before the "
                "application sees it."
            ),
        )
    else:
        title = "Your answer"
        text = escape(
            _DONE.get(result.status or AnswerStatus.RECORDED, _DONE[AnswerStatus.RECORDED])
        )
    return _document(
        f"Your {result.view.policy.application} licence",
        f'<h1>{title}</h1><p id="result" role="status">{text}</p>',
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def refusal_page(message: str) -> str:
    """A link that cannot be used: why, and what to do."""
    text = _sentence(message)
    return _document(
        "This link cannot be used",
        f'<h1>This link cannot be used</h1><p id="problem" role="alert">{escape(text)}.</p>'
        "<p>Nothing was changed. If you need help, ask your administrator.</p>",
    )

"""A Message as the HTML body of a mail: inline styles and tables (what mail clients render), every
value escaped (names, the application and the evidence come from directories and policies, so
they are text, never markup), and each button's address also written out below the buttons.

Graph's JSON message takes one body (itemBody: text or html, no multipart/alternative). reclaim
sends HTML; a client set to read mail as plain text shows Exchange's text rendering of it, which
keeps every sentence, fact and address: the page works without images, scripts or CSS support.
"""

from __future__ import annotations

from html import escape

from reclaim.domain.messages import Action, Message

_BUTTON = (
    "display:inline-block;padding:10px 18px;margin:0 8px 8px 0;border-radius:4px;"
    "font-weight:600;text-decoration:none;color:#ffffff;background:{colour}"
)
_COLOURS = {"keep": "#0f6cbd", "release": "#5c5c5c", "restore": "#0f6cbd"}


def _text(value: str) -> str:
    return escape(value, quote=True)


def html_body(message: Message, links: list[tuple[Action, str]]) -> str:
    facts = "".join(
        f'<tr><th align="left" style="padding:4px 16px 4px 0;color:#444">{_text(label)}</th>'
        f'<td style="padding:4px 0">{_text(value)}</td></tr>'
        for label, value in message.facts
    )
    buttons = "".join(
        f'<a href="{_text(url)}" style="{_BUTTON.format(colour=_COLOURS[action.choice.value])}">'
        f"{_text(action.label)}</a>"
        for action, url in links
    )
    addresses = "".join(
        f'<li>{_text(action.label)}: <a href="{_text(url)}">{_text(url)}</a></li>'
        for action, url in links
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_text(message.subject)}</title></head>"
        '<body style="margin:0;padding:24px;font-family:Segoe UI,Helvetica,Arial,sans-serif;'
        'font-size:15px;line-height:1.5;color:#1b1b1b;background:#ffffff">'
        f'<h1 style="font-size:20px;margin:0 0 12px">{_text(message.subject)}</h1>'
        f'<p style="margin:0 0 16px">{_text(message.opening)}</p>'
        f'<table role="presentation" style="border-collapse:collapse;margin:0 0 20px">{facts}'
        "</table>"
        f'<p style="margin:0 0 16px">{buttons}</p>'
        '<p style="margin:0 0 8px;color:#444">The buttons open a page where you confirm your '
        "choice; opening it changes nothing. The links are personal: do not forward this mail. "
        "If the buttons do not work, open:</p>"
        f'<ul style="margin:0 0 16px;padding-left:20px;color:#444;word-break:break-all">'
        f"{addresses}</ul>"
        '<p style="margin:0;color:#666;font-size:13px">Sent by reclaim for your IT department. '
        "Answer with the buttons: replies to this mail are not read.</p>"
        "</body></html>"
    )

"""A Message as an Adaptive Card (1.4, what Teams renders) with one Action.OpenUrl per choice.

TextBlock and FactSet text is Markdown in Teams, and `{{DATE(...)}}` is a formatting function:
every value that comes from a directory or a policy is escaped, so a display name such as
"[click](https://evil)" shows as written and never becomes a link.
"""

from __future__ import annotations

import re
from typing import Any

from reclaim.domain.messages import Action, Message

CARD_VERSION = "1.4"
# What makes emphasis, links, code or a template function inline; and what starts a block.
_INLINE = re.compile(r"([\\`*_\[\]{}<>~])")
_BLOCK_START = re.compile(r"^([#+-])")
_NUMBERED = re.compile(r"^(\d+)\.")


def plain(value: str) -> str:
    """`value` shown as written: one line, Markdown's inline punctuation backslash-escaped, and
    a leading heading, quote or list marker too."""
    text = _INLINE.sub(r"\\\1", " ".join(value.split()))
    return _NUMBERED.sub(r"\1\\.", _BLOCK_START.sub(r"\\\1", text))


def card(message: Message, links: list[tuple[Action, str]]) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": plain(message.subject),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "TextBlock", "text": plain(message.opening), "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": plain(label), "value": plain(value)} for label, value in message.facts
                ],
            },
            {
                "type": "TextBlock",
                "text": "The buttons open a page where you confirm your choice. These links "
                "are yours alone: do not share them.",
                "wrap": True,
                "isSubtle": True,
                "size": "Small",
            },
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": action.label, "url": url} for action, url in links
        ],
    }

"""A PREVIEW of an Adaptive Card as HTML, for screenshots and DOM checks in Chromium: not Teams'
renderer. It draws the elements reclaim's cards use (TextBlock with weight/size/isSubtle, FactSet,
Action.OpenUrl) the way Teams lays them out, and refuses any other element so a card that grows
is not previewed wrongly. Text is shown as Teams shows it: Markdown backslash escapes removed,
everything else literal (escaped for HTML)."""

from __future__ import annotations

import re
from html import escape
from typing import Any

_ESCAPED = re.compile(r"\\([\\`*_\[\]{}<>~#+\-.])")


def _shown(text: str) -> str:
    return escape(_ESCAPED.sub(r"\1", text))


def _element(element: dict[str, Any]) -> str:
    match element["type"]:
        case "TextBlock":
            weight = "600" if element.get("weight") == "Bolder" else "400"
            size = {"Medium": "17px", "Small": "12px"}.get(element.get("size", ""), "14px")
            colour = "#616161" if element.get("isSubtle") else "#242424"
            return (
                f'<p class="text" style="font-weight:{weight};font-size:{size};color:{colour}">'
                f"{_shown(element['text'])}</p>"
            )
        case "FactSet":
            rows = "".join(
                f"<tr><th>{_shown(f['title'])}</th><td>{_shown(f['value'])}</td></tr>"
                for f in element["facts"]
            )
            return f'<table class="facts">{rows}</table>'
    raise ValueError(f"the preview does not draw {element['type']}")


def preview_html(card: dict[str, Any]) -> str:
    assert card["type"] == "AdaptiveCard"
    body = "".join(_element(e) for e in card["body"])
    actions = "".join(
        f'<a class="action" href="{escape(a["url"])}">{escape(a["title"])}</a>'
        for a in card.get("actions", [])
        if a["type"] == "Action.OpenUrl"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Card preview</title>'
        "<style>body{margin:0;padding:24px;background:#f5f5f5;font-family:Segoe UI,Helvetica,"
        "Arial,sans-serif}.chat{max-width:520px}.who{font-size:12px;color:#616161;margin:0 0 "
        "6px}.card{background:#fff;border-radius:6px;padding:16px;box-shadow:0 1px 2px "
        "rgba(0,0,0,.15)}.text{margin:0 0 10px;line-height:1.4}.facts{border-collapse:collapse;"
        "margin:0 0 10px;font-size:14px}.facts th{text-align:left;padding:2px 12px 2px 0;"
        "font-weight:600}.facts td{padding:2px 0}.actions{display:flex;gap:8px;margin-top:"
        "12px}.action{flex:1;text-align:center;padding:7px 0;border:1px solid #d1d1d1;"
        "border-radius:4px;color:#242424;text-decoration:none;font-size:14px;font-weight:600}"
        ".note{font-size:11px;color:#888;margin-top:10px}</style></head><body>"
        '<div class="chat"><p class="who">Workflows (Flow bot), 1:1 chat</p>'
        f'<div class="card">{body}<div class="actions">{actions}</div></div>'
        '<p class="note">Preview of the Adaptive Card drawn by the tests, not by Teams.</p>'
        "</div></body></html>"
    )

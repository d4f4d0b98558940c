"""The console's page frame: one HTML document per page, everything inline, nothing fetched.

No script, no external stylesheet, font or image: the Content-Security-Policy sent with every
page (`default-src 'none'`, the one inline stylesheet by its hash) makes the browser refuse
anything else, so a name that slipped through escaping still could not run. Every text that comes
from the store, a directory or the request goes through `text()` (html.escape, quotes too).

Accessibility: lang="en", a skip link, one <main>, a labelled navigation, table headers with
scope, a label for every form control, a visible focus ring, and colours with a contrast of at
least 4.5:1 on their background (WCAG 2.2 AA; on white #1b1f24 16.6:1, #57606a 6.4:1, #0550ae 7.6:1,
#a40e26 7.9:1; tests/e2e/test_console.py measures every text on every page).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from reclaim.savings_output import STYLE as SAVINGS_STYLE

BASE = "/api/console"  # host.json routePrefix "api" + the console's routes

STYLE = (
    """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;
background:#fff;line-height:1.45}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.4rem}
header{background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:.8rem 2rem}
header nav a{margin-right:1.2rem}main{padding:1rem 2rem 3rem;max-width:80rem}
a{color:#0550ae}a:hover{text-decoration-thickness:2px}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible
{outline:3px solid #0550ae;outline-offset:2px}
h1{font-size:1.5rem;margin:.6rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
p.sub,.muted{color:#57606a}.halt,.error{color:#a40e26}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0 1.2rem}caption{text-align:left;
font-weight:600;padding:.3rem 0}th,td{border-bottom:1px solid #d0d7de;padding:.35rem .6rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n,th.n{text-align:right}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dl.facts dt{
font-weight:600}dl.facts dd{margin:0}
form.filters{display:flex;flex-wrap:wrap;gap:1rem;align-items:end;margin:.6rem 0}
form.filters div{display:flex;flex-direction:column}
form.filters label{font-weight:600;font-size:.9rem}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid #57606a;border-radius:4px}
button{background:#0550ae;color:#fff;border-color:#0550ae;cursor:pointer}
code{font-size:.85rem}ul.evidence{margin:0;padding-left:1rem;font-size:.85rem}
svg text{font-size:12px;fill:#424a53}.axis{stroke:#6e7781}.seats{fill:#54aeff}
.savings{fill:none;stroke:#1a7f37;stroke-width:2.5}
.candidates{fill:none;stroke:#0969da;stroke-width:2.5}.removals{fill:none;stroke:#8250df;
stroke-width:2;stroke-dasharray:6 4}.point{fill:#0969da}.capped{fill:#cf222e}
.cap{stroke:#cf222e;stroke-dasharray:4 3}.today{stroke:#1a7f37;stroke-width:2}
tr.today{font-weight:bold}
"""
    + SAVINGS_STYLE
)  # the savings-by-month charts (reclaim.savings_output)

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# Nothing but the one stylesheet; forms only back to the console; never inside a frame.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def text(value: object) -> str:
    """Any value as HTML text or attribute content."""
    return html.escape(str(value), quote=True)


def when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "never"


# ---- where the pages are ---------------------------------------------------------------------


def home_url() -> str:
    return BASE


def policy_url(policy: str) -> str:
    return f"{BASE}/policies/{quote(policy, safe='')}"


def run_url(policy: str, run_id: str, **query: str) -> str:
    url = f"{policy_url(policy)}/runs/{quote(run_id, safe='')}"
    wanted = {k: v for k, v in query.items() if v}
    return f"{url}?{urlencode(wanted)}" if wanted else url


def user_url(policy: str, user: str) -> str:
    return f"{policy_url(policy)}/user?{urlencode({'user': user})}"


def what_if_url(policy: str) -> str:
    return f"{policy_url(policy)}/what-if"


def savings_url() -> str:
    return f"{BASE}/savings"


def link(url: str, label: object, **attributes: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{text(v)}"' for k, v in attributes.items())
    return f'<a href="{text(url)}"{extra}>{text(label)}</a>'


# ---- building blocks ------------------------------------------------------------------------


def table(
    caption: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: frozenset[int] = frozenset(),
    table_id: str = "",
    empty: str = "nothing to show",
) -> str:
    """Cells are HTML already (escaped by the caller); row headers are the first column."""
    body = []
    for row in rows:
        cells = [
            f'<th scope="row"{" class=n" if 0 in numeric else ""}>{row[0]}</th>',
            *(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row) if i),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return (
            f'<p class="muted"{f" id={text(table_id)}-empty" if table_id else ""}>{text(empty)}</p>'
        )
    head = "".join(
        f'<th scope="col"{" class=n" if i in numeric else ""}>{text(h)}</th>'
        for i, h in enumerate(headers)
    )
    ident = f' id="{text(table_id)}"' if table_id else ""
    return (
        f"<table{ident}><caption>{text(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def evidence(values: Mapping[str, Any]) -> str:
    """A decision's evidence as a short list of the facts that are known."""
    items = "".join(
        f"<li><b>{text(k)}</b>: {text(v)}</li>" for k, v in values.items() if v not in ("", None)
    )
    return f'<ul class="evidence">{items}</ul>' if items else '<span class="muted">none</span>'


def facts(pairs: Iterable[tuple[str, str]], facts_id: str = "") -> str:
    """A definition list: (label, HTML value)."""
    ident = f' id="{text(facts_id)}"' if facts_id else ""
    items = "".join(f"<dt>{text(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="facts"{ident}>{items}</dl>'


def page(title: str, body: str, now: datetime) -> str:
    nav = (
        f'<nav aria-label="Console">{link(home_url(), "Policies")}'
        f"{link(savings_url(), 'Savings')}</nav>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text(title)} · reclaim console</title><style>{STYLE}</style></head><body>
<a class="skip" href="#main">Skip to content</a>
<header>{nav}</header>
<main id="main" tabindex="-1">
<h1>{text(title)}</h1>
{body}
<p class="sub">Read-only; as of {text(when(now))}.</p>
</main></body></html>
"""


def error_page(status: int, title: str, message: str, hint: str = "") -> str:
    """A refusal as a page: what happened, in words (no stack trace, nothing the caller sent
    unescaped)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} {text(title)} · reclaim console</title>
<style>{STYLE}</style></head><body>
<a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Console">{link(home_url(), "Policies")}</nav></header>
<main id="main" tabindex="-1">
<h1>{text(title)}</h1>
<p class="error" id="error-message">{text(message)}</p>
{f'<p id="error-hint">{hint}</p>' if hint else ""}
<p class="sub">HTTP {status}</p>
</main></body></html>
"""

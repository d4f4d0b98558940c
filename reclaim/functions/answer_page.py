"""GET/POST /api/answer?t=TOKEN: the one-click answer page behind the signed links.

The only route without a function key or an admin token (auth level ANONYMOUS): the token, a
link reclaim signed for one request and one person (reclaim.domain.answer_links), is the
capability. GET shows the question, its evidence and the choices, the appeal, or (an approver's
link) the user's evidence and her answer with keep / release, and never
writes (mail scanners prefetch links). A message's button adds &choice=keep|release|restore: the page shows that
choice first, to be confirmed. POST (a form from that page: t, choice, justification)
acts through the use cases every other path uses (reclaim.usecases.answer_link). A refused link
is a page saying why, with 4xx (400 malformed, 403 altered, signed with another key or not an
approver's, 409 a choice no longer open, 410 expired or closed, 413, 415, 422 a bad reason),
never a 5xx; 503 only while the app is not configured or a store or directory is down.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import azure.functions as func

from reclaim import answer_page_html as html
from reclaim.domain.answer_links import ANSWER_PAGE_ROUTE, MAX_TOKEN_LENGTH
from reclaim.domain.limits import MAX_JUSTIFICATION_LENGTH
from reclaim.errors import ConfigurationError
from reclaim.functions import app_context
from reclaim.usecases.answer_link import LinkProblem, follow_link, open_link

log = logging.getLogger("reclaim.functions.answer_page")

bp = func.Blueprint()

# A token and a reason of 500 characters of up to 4 UTF-8 bytes, each byte sent as %XX.
MAX_FORM_BYTES = MAX_TOKEN_LENGTH + 3 * 4 * MAX_JUSTIFICATION_LENGTH + 256
FORM_TYPE = "application/x-www-form-urlencoded"


def _page(status: int, text: str) -> func.HttpResponse:
    return func.HttpResponse(
        text, status_code=status, mimetype="text/html", charset="utf-8", headers=dict(html.HEADERS)
    )


@bp.function_name("answer_page")
@bp.route(route=ANSWER_PAGE_ROUTE, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def answer_page(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = app_context.current()
        if req.method == "GET":
            view = open_link(app.ctx, _token(req), app.link_key(), app.now())
            # A message's button preselects its choice (&choice=); the form still confirms it.
            return _page(200, html.view_page(view, preselect=req.params.get("choice") or ""))
        if req.method != "POST":
            raise LinkProblem(405, "this page is opened from its link and answered from its form")
        token, choice, justification = _form(req)
        key = app.link_key()
        try:
            result = follow_link(app.ctx, token, key, choice, justification, app.now())
        except LinkProblem as problem:
            if problem.status not in (409, 422):
                raise
            # The form again with the reason it was refused (it re-checks the link, writes nothing).
            view = open_link(app.ctx, token, key, app.now())
            return _page(problem.status, html.view_page(view, problem.message))
        return _page(200, html.result_page(result))
    except LinkProblem as problem:
        log.info("answer page refused (%d): %s", problem.status, problem.message)
        return _page(problem.status, html.refusal_page(problem.message))
    except ConfigurationError as error:
        log.error("answer page not available, the app is not configured: %s", error)
        return _unavailable()
    except Exception:  # storage or the directory down: nothing was written, the link still works
        log.exception("answer page failed")
        return _unavailable()


def _unavailable() -> func.HttpResponse:
    response = _page(
        503, html.refusal_page("this page is not available right now; try again later")
    )
    response.headers["Retry-After"] = "60"
    return response


def _token(req: func.HttpRequest) -> str:
    return (req.params.get("t") or "").strip()


def _form(req: func.HttpRequest) -> tuple[str, str, str]:
    media_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise LinkProblem(415, "send the answer from the page's form")
    body = req.get_body() or b""
    if len(body) > MAX_FORM_BYTES:
        raise LinkProblem(413, "the answer is too long: write one line")
    try:
        fields = parse_qs(
            body.decode("ascii"), strict_parsing=bool(body), max_num_fields=8, errors="strict"
        )
    except (ValueError, UnicodeDecodeError):  # lone surrogates, bad escapes, too many fields
        raise LinkProblem(400, "the form could not be read: send it from the page again") from None
    values = {}
    for name in ("t", "choice", "justification"):
        given = fields.get(name, [""])
        if len(given) != 1:
            raise LinkProblem(400, "the form could not be read: send it from the page again")
        values[name] = given[0]
    return values["t"].strip(), values["choice"], values["justification"]

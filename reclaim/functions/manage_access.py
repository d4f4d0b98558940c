"""The door of every manage route: an Entra ID identity with an app role, and no 500s.

`guarded(req, handler)` finds the app context, identifies the caller (reclaim.ports.
AdminIdentities: a verified bearer token, or the platform's forwarded principal when trusted),
checks the role the route needs (reclaim.domain.access: reading needs Reclaim.Reader, acting
Reclaim.Admin), and only then calls the handler. Nothing is read or written for a caller who is
refused. Every ordinary fault becomes a JSON error (the console passes `refuse` to get a page):
401 no or no acceptable token, 403 the token lacks the role (both with WWW-Authenticate),
422 a request naming something unknown or that cannot succeed, 503 (with Retry-After) while the
app is not configured or storage, the directory or the identity platform cannot be reached.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import azure.functions as func

from reclaim import usecases
from reclaim.domain.access import Caller, Role, grants, required_role
from reclaim.errors import (
    ConfigurationError,
    PermanentError,
    ReclaimError,
    TransientError,
    Unauthenticated,
)
from reclaim.functions import app_context
from reclaim.functions.responses import error_response

log = logging.getLogger("reclaim.functions.manage")

PRINCIPAL_HEADER = "x-ms-client-principal"  # App Service Authentication's forwarded identity
REALM = "reclaim"
RETRY_AFTER = "30"

Handler = Callable[[func.HttpRequest, app_context.AppContext, Caller], func.HttpResponse]
# How a refusal is written: (status, code, message, headers). JSON for the API routes, a page for
# the console (reclaim.functions.console); the decision is the same.
Refusal = Callable[[int, str, str, dict[str, str] | None], func.HttpResponse]


def _quoted(text: str) -> str:
    """A value for a WWW-Authenticate parameter (RFC 6750: no quotes or backslashes inside)."""
    return re.sub(r'["\\\x00-\x1f\x7f]', "'", text)


def _unauthenticated(error: Unauthenticated, refuse: Refusal) -> func.HttpResponse:
    challenge = f'Bearer realm="{REALM}"'
    if not error.missing:
        challenge += f', error="invalid_token", error_description="{_quoted(str(error))}"'
    return refuse(401, "unauthenticated", str(error), {"WWW-Authenticate": challenge})


def _forbidden(caller: Caller, needed: Role, refuse: Refusal) -> func.HttpResponse:
    message = f"this route needs the {needed.value} app role; {caller.label} does not hold it"
    challenge = (
        f'Bearer realm="{REALM}", error="insufficient_scope", '
        f'error_description="{_quoted(f"the {needed.value} app role is required")}"'
    )
    return refuse(403, "forbidden", message, {"WWW-Authenticate": challenge})


def _path(req: func.HttpRequest) -> str:
    """The route for the logs, without the query (a ?code= function key must not be logged)."""
    return req.url.split("?", 1)[0]


def guarded(
    req: func.HttpRequest, handler: Handler, refuse: Refusal = error_response
) -> func.HttpResponse:
    def _unavailable(code: str, message: str) -> func.HttpResponse:
        return refuse(503, code, message, {"Retry-After": RETRY_AFTER})

    try:
        app = app_context.current()
    except ConfigurationError as error:
        log.error("the app is not configured: %s", error)
        return _unavailable("not_configured", "the app is not configured; see its logs")
    except Exception:  # storage unreachable while the context is built
        log.exception("the app context cannot be built")
        return _unavailable("unavailable", "the app cannot start now; retry later")
    needed = required_role(req.method)
    try:
        caller = app.admin_identities().identify(
            req.headers.get("authorization") or "", req.headers.get(PRINCIPAL_HEADER) or ""
        )
    except Unauthenticated as error:
        log.warning("manage route %s refused: %s", _path(req), error)
        return _unauthenticated(error, refuse)
    except ConfigurationError as error:
        log.error("manage routes are closed: %s", error)
        return _unavailable("not_configured", str(error))
    except TransientError as error:
        log.warning("manage route %s: tokens cannot be checked now: %s", _path(req), error)
        return _unavailable("identity_unavailable", "tokens cannot be checked now; retry later")
    if not grants(caller.roles, needed):
        log.warning("manage route %s refused to %s: lacks %s", _path(req), caller.label, needed)
        return _forbidden(caller, needed, refuse)
    try:
        return handler(req, app, caller)
    except usecases.InputError as error:
        return refuse(422, "unknown_reference", str(error), None)
    except PermanentError as error:
        return refuse(422, "cannot_succeed", str(error), None)
    except ConfigurationError as error:  # the caller is an administrator: say what to fix
        log.error("manage route %s: %s", _path(req), error)
        return _unavailable("not_configured", str(error))
    except ReclaimError as error:  # transient, or a source that failed part-way
        log.warning("manage route %s: %s", _path(req), error)
        return _unavailable("unavailable", f"{error}; retry later")
    except Exception as error:  # storage or a directory client failed below our error types
        log.exception("manage route %s failed", _path(req))
        return _unavailable("unavailable", f"{type(error).__name__}; retry later (see the logs)")

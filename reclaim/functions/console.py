"""The administrators' console: read-only HTML pages under /api/console/.

The same door as the manage routes (reclaim.functions.manage_access.guarded: an Entra ID token,
or the platform's principal when RECLAIM_PLATFORM_AUTH is set, with Reclaim.Reader or
Reclaim.Admin), but every refusal is a page saying why (401, 403 naming the role, 404 for an
unknown policy, run or user, 422 for a filter that cannot work, 503), never a 500.

- GET /api/console: every policy, its mode, schedule, last run, halts and pending asks
- GET /api/console/policies/{name}: its runs, asks and halts; links to the rest
- GET /api/console/policies/{name}/runs/{run_id}?decision=&user=: a run's decisions, evidence
- GET /api/console/policies/{name}/user?user=: one user's history (`explain`)
- GET /api/console/policies/{name}/what-if: the candidates-by-threshold curve (`plan --what-if`)
- GET /api/console/savings: verified, unverified and potential savings (`report`)
"""

from __future__ import annotations

import azure.functions as func

from reclaim import usecases
from reclaim.console import charts, layout, policies, runs, users
from reclaim.domain.access import Caller
from reclaim.functions.app_context import AppContext
from reclaim.functions.manage_access import guarded
from reclaim.usecases.console_policies import console_policies, console_policy
from reclaim.usecases.console_run import RunFilter, console_run
from reclaim.usecases.explain import explain_user

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS  # no function key: the identity is checked in code

_TITLES = {401: "Sign in first", 403: "Not allowed", 404: "Not found", 422: "Cannot show this"}
_HINTS = {
    401: "Send an Entra ID access token for the reclaim admin API (README, Console), or sign in "
    'through App Service Authentication: <a href="/.auth/login/aad?post_login_redirect_uri='
    '/api/console">sign in</a>.',
    403: "Ask an administrator to assign you the Reclaim.Reader app role (Enterprise "
    "applications, the reclaim admin API, Users and groups).",
}


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    response = func.HttpResponse(
        body, status_code=status, mimetype="text/html", charset="utf-8", headers=headers or {}
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = layout.CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _refusal(
    status: int, code: str, message: str, headers: dict[str, str] | None
) -> func.HttpResponse:
    title = _TITLES.get(status, "Not available now")
    return _html(layout.error_page(status, title, message, _HINTS.get(status, "")), status, headers)


def _not_found(message: str) -> func.HttpResponse:
    return _refusal(404, "not_found", message, None)


def _policy_name(req: func.HttpRequest) -> str:
    return req.route_params.get("name", "")


def _unknown_policy(name: str) -> func.HttpResponse:
    return _not_found(f"no policy named {name[:100]!r}")  # the others' names are not given away


@bp.function_name("console_policies")
@bp.route(route="console", methods=["GET"], auth_level=ANONYMOUS)
def console_home(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _home, _refusal)


def _home(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    return _html(policies.overview_page(console_policies(app.ctx, app.now()), app.now()))


@bp.function_name("console_policy")
@bp.route(route="console/policies/{name}", methods=["GET"], auth_level=ANONYMOUS)
def console_policy_page(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _policy, _refusal)


def _policy(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    detail = console_policy(app.ctx, _policy_name(req), app.now())
    if detail is None:
        return _unknown_policy(_policy_name(req))
    return _html(policies.policy_page(detail, app.now()))


@bp.function_name("console_run")
@bp.route(route="console/policies/{name}/runs/{run_id}", methods=["GET"], auth_level=ANONYMOUS)
def console_run_page(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _run, _refusal)


def _run(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    name, run_id = _policy_name(req), req.route_params.get("run_id", "")
    wanted = RunFilter(req.params.get("decision", ""), req.params.get("user", ""))
    view = console_run(app.ctx, name, run_id, wanted)  # InputError: 422 (guarded)
    if view is None:
        if name not in app.ctx.policies:
            return _unknown_policy(name)
        return _not_found(f"policy {name!r} has no run {run_id[:100]!r}")
    return _html(runs.run_page(view, app.now()))


@bp.function_name("console_user")
@bp.route(route="console/policies/{name}/user", methods=["GET"], auth_level=ANONYMOUS)
def console_user_page(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _user, _refusal)


def _user(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    policy = app.ctx.policies.get(_policy_name(req))
    if policy is None:
        return _unknown_policy(_policy_name(req))
    user = req.params.get("user", "").strip()
    if not user or len(user) > 256:
        raise usecases.InputError(
            "user: give one identifier (UPN, mail, SID...), at most 256 characters"
        )
    explanation = explain_user(app.ctx, policy, user)
    if not explanation.found:
        return _not_found(
            f"no history for {user!r} under {policy.name!r} (decisions are kept by "
            f"{policy.usage.match_on.value}: give the user's {policy.usage.match_on.value})"
        )
    return _html(users.user_page(explanation, app.now()))


@bp.function_name("console_what_if")
@bp.route(route="console/policies/{name}/what-if", methods=["GET"], auth_level=ANONYMOUS)
def console_what_if_page(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _what_if, _refusal)


def _what_if(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    policy = app.ctx.policies.get(_policy_name(req))
    if policy is None:
        return _unknown_policy(_policy_name(req))
    return _html(charts.what_if_page(usecases.what_if(app.ctx, policy, app.now()), app.now()))


@bp.function_name("console_savings")
@bp.route(route="console/savings", methods=["GET"], auth_level=ANONYMOUS)
def console_savings_page(req: func.HttpRequest) -> func.HttpResponse:
    return guarded(req, _savings, _refusal)


def _savings(req: func.HttpRequest, app: AppContext, caller: Caller) -> func.HttpResponse:
    now = app.now()
    return _html(charts.savings_page(usecases.report(app.ctx, None, now), now))

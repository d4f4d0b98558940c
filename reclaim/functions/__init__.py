"""The function set's blueprints (function_app.py registers them): thin triggers that build a
typed command, call one use case of reclaim.usecases (or reclaim.scheduling), and map the result."""

from __future__ import annotations

import azure.functions as func

from reclaim.functions import admin, answer_page, approvals, console, timers, webhook, worker

BLUEPRINTS: tuple[func.Blueprint, ...] = (
    timers.bp,
    webhook.bp,
    approvals.bp,
    worker.bp,
    admin.bp,
    console.bp,
    answer_page.bp,
)


def new_app() -> func.FunctionApp:
    """A FunctionApp with every blueprint registered. A FunctionApp lists its functions only
    once (get_functions() raises the second time), so each user of the list builds its own."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in BLUEPRINTS:
        app.register_functions(blueprint)
    return app

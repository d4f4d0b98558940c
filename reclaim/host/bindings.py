"""The registered functions as the host sees them: triggers, routes, and binding expressions.

Binding expressions follow "Azure Functions binding expression patterns", section "Binding
expressions - app settings" (learn.microsoft.com/azure/azure-functions/
functions-bindings-expressions-patterns): a `%NAME%` part of a binding property is replaced by the
app setting NAME, i.e. the environment variable (`Values` of local.settings.json under Core
Tools). The host does not fall back to a default: a setting that is not there makes the WebJobs
SDK fail to index that function ("Error indexing method 'Functions.x' ... '%NAME%' does not
resolve to a value", NameResolverExtensions.ResolveWholeStringCore), so the function never runs.
The local host refuses to start instead, naming every missing setting at once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reclaim.errors import ConfigurationError
from reclaim.functions import new_app

_BINDING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")
_ROUTE_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}")


class UnresolvedSettingError(ConfigurationError):
    """A binding expression names an app setting that is not set."""


def resolve(expression: str, env: Mapping[str, str] | None = None) -> str:
    """A binding property with its %NAME% parts replaced by the app settings (the environment).
    An unset or empty setting is an error, as in the host: there is no default."""
    environ = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise UnresolvedSettingError(name)
        return environ[name]

    return _BINDING_EXPRESSION.sub(value, expression)


def route_pattern(template: str) -> re.Pattern[str]:
    """A Functions route template as a regular expression over the path below /api/."""
    pattern, position = "", 0
    for match in _ROUTE_PARAMETER.finditer(template):
        pattern += re.escape(template[position : match.start()])
        catch_all, name, optional = match.groups()
        body = ".*" if catch_all else "[^/]+"
        pattern += f"(?P<{name}>{body}){'?' if optional else ''}"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class RegisteredFunction:
    name: str
    kind: str  # the trigger's type: httpTrigger, timerTrigger, queueTrigger
    trigger: dict[str, Any]  # the trigger binding with its %NAME% parts resolved
    call: Callable[[Any], Any]  # the user function, given the trigger's value


def registered_functions(env: Mapping[str, str] | None = None) -> list[RegisteredFunction]:
    """Every function of the app with its trigger resolved; every unset app setting a binding
    names is reported in one ConfigurationError (the host would not load those functions)."""
    functions: list[RegisteredFunction] = []
    missing: dict[str, list[str]] = {}
    for function in new_app().get_functions():
        name = function.get_function_name() or ""
        trigger = _trigger(name, json.loads(function.get_function_json())["bindings"])
        resolved: dict[str, Any] = {}
        for key, value in trigger.items():
            try:
                resolved[key] = resolve(value, env) if isinstance(value, str) else value
            except UnresolvedSettingError as unset:
                missing.setdefault(str(unset), []).append(f"{name}.{key}")
        user_function, argument = function.get_user_function(), trigger["name"]

        def call(value: Any, _f: Any = user_function, _arg: str = argument) -> Any:
            return _f(**{_arg: value})

        functions.append(RegisteredFunction(name, trigger["type"], resolved, call))
    if missing:
        listed = "; ".join(f"{s} (used by {', '.join(where)})" for s, where in missing.items())
        raise ConfigurationError(
            f"app setting(s) not set: {listed}. The Functions host does not load a function "
            "whose binding names an unset %SETTING% (there is no default): set them in the "
            "environment (local.settings.sample.json lists the values)"
        )
    return functions


def _trigger(name: str, bindings: list[dict[str, Any]]) -> dict[str, Any]:
    for binding in bindings:
        if binding["type"].endswith("Trigger"):
            return binding
    raise ConfigurationError(f"function {name} has no trigger")

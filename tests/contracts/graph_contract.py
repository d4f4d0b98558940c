"""Microsoft Graph's v1.0 types (graph-v1.0-types.json beside this file, from Microsoft's CSDL) and
the checks the contract tests make with them: which type a resource path returns, which properties
an OData `$filter` names, and whether a JSON value is a valid instance of a type."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

TYPES_FILE = Path(__file__).with_name("graph-v1.0-types.json")
# The sendMail action and graph.message with the types it holds, from the same metadata.
MAIL_TYPES_FILE = Path(__file__).with_name("graph-v1.0-mail-types.json")

# Resource path (below /v1.0, ids as any segment) -> the Graph type of what it returns: one object
# or the items of a collection. A path the adapter or the fake uses that is not here fails the
# contract tests until its type is named here.
_ID = r"[^/]+"
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(f"^{pattern}$"), type_name)
    for pattern, type_name in (
        (f"/groups/{_ID}", "group"),
        (f"/groups/{_ID}/(?:members|transitiveMembers)/(?:microsoft\\.)?graph\\.user", "user"),
        (f"/groups/{_ID}/(?:members|transitiveMembers)/(?:microsoft\\.)?graph\\.group", "group"),
        (f"/groups/{_ID}/(?:members|transitiveMembers)", "directoryObject"),
        (f"/users/{_ID}", "user"),
        (f"/users/{_ID}/assignLicense", "user"),  # answers the changed user
        # A directoryObject by the types file; reclaim selects a user's properties, which Graph
        # returns for a manager who is a user (@odata.type says so, and the answer is held to it).
        (f"/users/{_ID}/manager", "user"),
        ("/users", "user"),
        ("/auditLogs/signIns", "signIn"),
        ("/auditLogs/directoryAudits", "directoryAudit"),
        ("/subscribedSkus", "subscribedSku"),
    )
)
# Paths whose answers the published types do not describe, and why: not checked, not refused.
UNTYPED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/reports/"), "usage reports are CSV; no published schema covers their columns"),
    (
        re.compile(r"^/beta/"),
        "Graph beta (entra-signins' non_interactive_beta): not in the v1.0 types",
    ),
    (re.compile(r"^/users/[^/]+/sendMail$"), "an action: 202 Accepted with no body"),
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@cache
def _document() -> dict[str, Any]:
    """Both files as one: the mail file adds types and enums the main one does not hold."""
    main, mail = (json.loads(f.read_text()) for f in (TYPES_FILE, MAIL_TYPES_FILE))
    return {
        "types": {**mail["types"], **main["types"]},
        "enums": {**mail["enums"], **main["enums"]},
        "actions": mail["actions"],
    }


def action_parameters(name: str) -> dict[str, str]:
    """A bound action's parameters (e.g. `user.sendMail`): name -> EDM type."""
    return dict(_document()["actions"][name])


def type_names() -> set[str]:
    return set(_document()["types"])


def enum_values(name: str) -> list[str] | None:
    return _document()["enums"].get(name)


def properties(type_name: str) -> dict[str, str]:
    """Every structural property of a type, its base types' included: name -> EDM type."""
    types = _document()["types"]
    found: dict[str, str] = {}
    name: str | None = type_name
    while name:
        entry = types[name]
        found = {**entry["properties"], **found}
        base = entry.get("base")
        name = base.removeprefix("graph.") if base else None
    return found


def untyped(path: str) -> bool:
    return any(pattern.match(path) for pattern, _ in UNTYPED)


def graph_type(path: str) -> str | None:
    """The type `path` returns, or None when ROUTES does not know the path."""
    return next((name for pattern, name in ROUTES if pattern.match(path)), None)


def element_type(edm: str) -> str:
    """`Collection(graph.x) (not null)` -> `graph.x`."""
    edm = edm.removesuffix(" (not null)")
    return edm[len("Collection(") : -1] if edm.startswith("Collection(") else edm


def missing_in_filter(type_name: str, text: str) -> list[str]:
    """The property paths a `$filter` names that `type_name` does not have.

    Understood: `prop op literal`, `a/b op literal` (a complex property), `coll/any(x: x/p op ...)`
    and function calls such as `startswith(prop, ...)`; literals are quoted strings, numbers,
    dates and GUIDs."""
    missing: list[str] = []
    own = properties(type_name)

    def check(path: str, on: dict[str, str], where: str) -> None:
        head, _, rest = path.partition("/")
        if head not in on:
            missing.append(f"{where}{head}")
            return
        if rest:
            inner = element_type(on[head]).removeprefix("graph.")
            if inner in type_names():
                check(rest, properties(inner), f"{where}{head}/")
            else:
                missing.append(f"{where}{head}/{rest} (type {inner} not in the types file)")

    text = re.sub(r"'(?:[^']|'')*'", "''", text)  # literals out of the way
    for collection, variable, body in re.findall(r"([\w/]+)/(?:any|all)\((\w+):([^)]*)\)", text):
        check(collection, own, "")
        if collection.split("/")[0] in own:
            inner = element_type(own[collection.split("/")[0]]).removeprefix("graph.")
            inner_properties = properties(inner) if inner in type_names() else {}
            for member in re.findall(rf"\b{variable}/([\w/]+)", body):
                check(member, inner_properties, f"{collection}/")
    text = re.sub(r"[\w/]+/(?:any|all)\(\w+:[^)]*\)", " ", text)
    for function_argument in re.findall(r"\b\w+\(\s*([\w/]+)\s*,", text):
        check(function_argument, own, "")
    for compared in re.findall(r"([A-Za-z_][\w/]*)\s+(?:eq|ne|gt|ge|lt|le|in)\s", text + " "):
        check(compared, own, "")
    return missing


def problems(value: Any, edm: str, where: str) -> list[str]:
    """Why `value` is not a valid JSON instance of `edm` (e.g. `graph.user`, `Edm.Guid`,
    `Collection(graph.assignedLicense) (not null)`); [] when it is. Properties starting with
    `@odata.` are annotations, not properties. A type the types file does not hold is not
    looked into."""
    nullable = not edm.endswith(" (not null)")
    edm = edm.removesuffix(" (not null)")
    if value is None:
        return [] if nullable else [f"{where}: null, but {edm} is not nullable"]
    if edm.startswith("Collection("):
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, expected a list ({edm})"]
        return [
            p for i, item in enumerate(value) for p in problems(item, edm[11:-1], f"{where}[{i}]")
        ]
    scalar = _scalar_problem(value, edm)
    if scalar is not None:
        return [f"{where}: {scalar}"] if scalar else []
    name = edm.removeprefix("graph.")
    allowed = enum_values(name)
    if allowed is not None:
        return [] if value in allowed else [f"{where}: {value!r} is not a {name} ({allowed})"]
    if name not in type_names():
        return []
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, expected an object ({edm})"]
    own = properties(name)
    found: list[str] = []
    for key, item in value.items():
        if key.startswith("@odata."):
            continue
        if key not in own:
            found.append(f"{where}.{key}: no such property on {name}")
        else:
            found.extend(problems(item, own[key], f"{where}.{key}"))
    return found


def _scalar_problem(value: Any, edm: str) -> str | None:
    """None: not an Edm scalar; "": valid; else what is wrong."""
    checks = {
        "Edm.String": lambda v: isinstance(v, str),
        "Edm.Boolean": lambda v: isinstance(v, bool),
        "Edm.Int32": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Edm.Int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Edm.Guid": lambda v: isinstance(v, str) and bool(_GUID.match(v)),
        "Edm.DateTimeOffset": _is_datetime_offset,
        "Edm.Date": _is_date,
    }
    check = checks.get(edm)
    if check is None:
        return None if not edm.startswith("Edm.") else ""
    return "" if check(value) else f"{value!r} is not an {edm}"


def _is_datetime_offset(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None  # an offset is part of the type


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True

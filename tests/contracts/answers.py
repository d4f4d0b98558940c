"""Every answer the Graph fake sends, in every test, held to Graph's v1.0 types (a pytest plugin,
registered in tests/conftest.py).

FakeGraph.handle passes each answer to check_answer(). While a test runs, a 2xx JSON answer must
be an instance of the type its path returns (ROUTES in graph_contract.py; a path with no type
there is reported until it is named), `$batch` items included, and an error must have Graph's
error shape. What is wrong fails the test at teardown, naming the request. Outside pytest (the
benchmarks) nothing is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.contracts.graph_contract import graph_type, problems, untyped

ERROR_MEMBERS = frozenset({"code", "message", "innerError", "details", "target"})
_collected: list[str] | None = None  # None: no test is collecting


def check_answer(method: str, path: str, request_body: bytes, status: int, body: Any) -> None:
    """Record what is wrong with one answer of the fake (path below the host, e.g. /v1.0/...)."""
    collected = _collected  # read once: the test may end while a server thread is here
    if collected is None or not path.startswith("/v1.0/"):
        return
    found = _answer_problems(method, path[len("/v1.0") :], request_body, status, body)
    collected.extend(f"{method} {path}: {p}" for p in found)


def _answer_problems(
    method: str, path: str, request_body: Any, status: int, body: Any
) -> list[str]:
    if not isinstance(body, dict):
        return []  # no body, or bytes (a malformed-JSON fault) on purpose
    if status >= 400:
        error = body.get("error")
        if not isinstance(error, dict) or not set(error) <= ERROR_MEMBERS:
            return [f"an error body Graph would not send: {str(body)[:200]}"]
        return []
    if path == "/$batch" and method == "POST":
        return _batch_problems(request_body, body)
    if untyped(path):
        return []
    type_name = graph_type(path)
    if type_name is None:
        return [
            "no Graph type for this path: name it in ROUTES (tests/contracts/graph_contract.py)"
        ]
    if "value" in body:
        found = [
            f"{key}: not part of a collection answer"
            for key in body
            if key != "value" and not key.startswith("@odata.")
        ]
        items = body["value"] if isinstance(body["value"], list) else [body["value"]]
    else:
        found, items = [], [body]
    for item in items:
        kind = item.get("@odata.type", "") if isinstance(item, dict) else ""
        kind = str(kind).removeprefix("#microsoft.graph.")
        found.extend(problems(item, f"graph.{kind or type_name}", type_name))
    return found


def _batch_problems(request_body: Any, body: dict[str, Any]) -> list[str]:
    try:
        sent = json.loads(request_body) if isinstance(request_body, bytes) else request_body
        urls = {str(r["id"]): str(r["url"]) for r in sent["requests"]}
    except (ValueError, KeyError, TypeError):
        return []  # the fake refused the batch itself
    methods = {str(r["id"]): str(r.get("method", "GET")).upper() for r in sent["requests"]}
    found: list[str] = []
    for response in body.get("responses") or []:
        url = urls.get(str(response.get("id")), "")
        method = methods.get(str(response.get("id")), "GET")
        item_path = unquote(urlsplit(url if url.startswith("/") else "/" + url).path)
        found.extend(
            f"$batch item {url}: {p}"
            for p in _answer_problems(
                method, item_path, None, int(response.get("status") or 0), response.get("body")
            )
        )
    return found


@pytest.fixture(autouse=True)
def graph_fake_answers_are_graphs() -> Iterator[None]:
    global _collected
    _collected = []
    try:
        yield
        found = list(dict.fromkeys(_collected))
    finally:
        _collected = None
    assert not found, "the Graph fake answered what Graph would not:\n" + "\n".join(found[:20])

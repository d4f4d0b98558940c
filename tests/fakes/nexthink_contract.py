"""Nexthink's OpenAPI files as a contract for the Nexthink fake: requests it must refuse, answers
it must not send.

The files are tests/contracts/nexthink/*.json (copied verbatim, sources in the README there).
Schemas are checked with jsonschema (Draft 4, which OpenAPI 3.0's schema objects extend), after
two translations OpenAPI 3.0 needs: `nullable: true` allows null, and `$ref`s resolve inside the
file they are in.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts" / "nexthink"
SPEC_FILES = (
    "nql-api-openapi.json",
    "campaigns-api-openapi.json",
    "remote-actions-api-openapi.json",
)
# Where a file contradicts Nexthink's documentation, the correction applied, and why.
# NQL v1 execute: the generator rendered the cells of a row (Java `Object`) as `type: object`;
# docs.nexthink.com/api/nql/execute-an-nql shows rows of strings, numbers and nulls.
ERRATA: dict[tuple[str, str], Any] = {
    (
        "nql-api-openapi.json",
        "/components/schemas/NqlApiExecuteResponse/properties/data/items/items",
    ): {},
}
# The answer a refused request gets: not every operation lists a 400, but the service answers
# a malformed request with one (the Campaigns and Remote Actions files list it).
REFUSAL = 400


@dataclass(frozen=True)
class Operation:
    spec: str
    method: str
    template: str
    pattern: re.Pattern[str]
    definition: Mapping[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method} {self.template} ({self.spec})"


class NexthinkContract:
    """The operations of the three files; `request_problems` and `response_problems` say what a
    request or an answer does that its operation does not allow (empty: it complies)."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        resources: list[tuple[str, Resource[Any]]] = []
        for name in SPEC_FILES:
            text = (CONTRACTS / name).read_text(encoding="utf-8")
            document = _translated(json.loads(text), _uri(name))
            for (file, pointer), replacement in ERRATA.items():
                if file == name:
                    _replace(document, pointer, replacement)
            resources.append((_uri(name), Resource(contents=document, specification=DRAFT4)))
            for template, item in document["paths"].items():
                for method, definition in item.items():
                    regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                    self.operations.append(
                        Operation(
                            name, method.upper(), template, re.compile(f"^{regex}$"), definition
                        )
                    )
        self.registry: Registry[Any] = Registry().with_resources(resources)

    def operation(self, method: str, path: str) -> Operation | None:
        return next(
            (o for o in self.operations if o.method == method and o.pattern.match(path)), None
        )

    def request_problems(
        self,
        operation: Operation,
        query: Mapping[str, list[str]],
        content_type: str,
        body: Any,
        has_body: bool,
    ) -> list[str]:
        """What the request does that the operation does not allow (empty: it complies)."""
        problems: list[str] = []
        for parameter in operation.definition.get("parameters", []):
            if (
                parameter["in"] == "query"
                and parameter.get("required")
                and parameter["name"] not in query
            ):
                problems.append(f"query parameter {parameter['name']!r} is required")
        declared = operation.definition.get("requestBody")
        if declared is None:
            return problems
        if not has_body:
            if declared.get("required"):
                problems.append("a request body is required")
            return problems
        media = declared["content"].get(content_type.split(";")[0].strip())
        if media is None:
            return [
                *problems,
                f"Content-Type {content_type!r} is not one of {sorted(declared['content'])}",
            ]
        problems.extend(self._schema_problems(operation, media["schema"], body))
        return problems

    def response_problems(
        self, operation: Operation, status: int, content_type: str, payload: bytes, refused: bool
    ) -> list[str]:
        responses = operation.definition["responses"]
        declared = responses.get(str(status), responses.get("default"))
        if declared is None:
            if refused and status == REFUSAL:
                return []
            return [f"status {status} is not one of {sorted(responses)}"]
        content = declared.get("content")
        if not content:
            return []
        media = content.get(content_type.split(";")[0].strip())
        if media is None:
            return [
                f"status {status}: Content-Type {content_type!r} is not one of {sorted(content)}"
            ]
        if media.get("schema", {}).get("type") == "string":
            return []  # text/csv: no schema for its rows
        try:
            body = json.loads(payload)
        except ValueError:
            return [f"status {status}: the body is not JSON ({payload[:60]!r})"]
        return [
            f"status {status}: {p}" for p in self._schema_problems(operation, media["schema"], body)
        ]

    def _schema_problems(
        self, operation: Operation, schema: Mapping[str, Any], value: Any
    ) -> Iterator[str]:
        validator = Draft4Validator(schema, registry=self.registry)
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "the body"
            yield f"{where}: {error.message}"


def _uri(spec: str) -> str:
    return f"urn:nexthink-contract:{spec}"


def _translated(node: Any, uri: str) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable: true` becomes a null type, and a
    `$ref` inside the file names the file (so a schema taken out of it still resolves)."""
    if isinstance(node, list):
        return [_translated(item, uri) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _translated(value, uri) for key, value in node.items() if key != "nullable"}
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        result["$ref"] = uri + node["$ref"]
    if node.get("nullable") is True and "type" in node:
        result["type"] = [node["type"], "null"]
        if "enum" in node:
            result["enum"] = [*node["enum"], None]
    return result


def _replace(document: dict[str, Any], pointer: str, replacement: Any) -> None:
    *parents, last = pointer.strip("/").split("/")
    node = document
    for part in parents:
        node = node[part]
    if last not in node:
        raise KeyError(f"erratum for {pointer}: nothing there (was the file updated?)")
    node[last] = copy.deepcopy(replacement)

"""What the Graph adapter (reclaim/adapters/graph/*.py) asks Graph for, read from its source.

Every `query(select=..., filter=..., ...)` call, with the resource path it is appended to, and
every OData option written into a string by hand; every key the adapter reads from a JSON object
(`.get("key")`, `["key"]`) and every string of a `*FIELDS*` mapping. Names are resolved the way
Python would: module constants from the imported module, local variables from their assignment
in the enclosing function; any other interpolated value stands for a literal ('v').
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

PACKAGE = "reclaim.adapters.graph"
FOLDER = Path(__file__).resolve().parents[2] / "reclaim" / "adapters" / "graph"
LITERAL = "'v'"


@dataclass(frozen=True)
class Request:
    where: str  # module.py:line
    path: str | None  # below /v1.0, interpolated ids as 'v'; None when it cannot be told
    options: dict[str, str] = field(default_factory=dict)  # select/filter/... -> text


@dataclass(frozen=True)
class Read:
    where: str
    key: str


def modules() -> list[Path]:
    return sorted(p for p in FOLDER.glob("*.py") if p.name != "__init__.py")


class _Module:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.namespace = vars(importlib.import_module(f"{PACKAGE}.{path.stem}"))
        self.parents: dict[ast.AST, ast.AST] = {
            child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)
        }

    def where(self, node: ast.AST) -> str:
        return f"{self.path.name}:{getattr(node, 'lineno', 0)}"

    def function_of(self, node: ast.AST) -> ast.AST | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None

    def render(self, node: ast.AST, at: ast.AST, skip: ast.AST | None = None) -> str:
        """The text an expression builds; `skip` (a query() call) renders as nothing."""
        if node is skip:
            return ""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(self.render(part, at, skip) for part in node.values)
        if isinstance(node, ast.FormattedValue):
            return (
                self.render(node.value, at, skip)
                if node.value is skip
                else (self._name(node.value, at) if isinstance(node.value, ast.Name) else LITERAL)
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.render(node.left, at, skip) + self.render(node.right, at, skip)
        if isinstance(node, ast.Name):
            return self._name(node, at)
        return LITERAL

    def _name(self, node: ast.Name, at: ast.AST) -> str:
        function = self.function_of(at)
        if function is not None:
            for statement in ast.walk(function):
                if isinstance(statement, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in statement.targets
                ):
                    return self.render(statement.value, statement)
        value = self.namespace.get(node.id)
        return value if isinstance(value, str) else LITERAL


def requests() -> list[Request]:
    found: list[Request] = []
    for path in modules():
        module = _Module(path)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "query":
                options = {k.arg: module.render(k.value, node) for k in node.keywords if k.arg}
                found.append(Request(module.where(node), _path_of(module, node), options))
            elif (
                isinstance(node, ast.Constant | ast.JoinedStr)
                and not isinstance(module.parents.get(node), ast.Expr)  # a docstring
                and not _inside_query(module, node)
            ):
                text = module.render(node, node)
                base, _, query_text = text.partition("?")
                if base.startswith("/") and ("$select=" in text or "$filter=" in text):
                    options = {
                        k.removeprefix("$"): v
                        for k, v in parse_qsl(query_text, keep_blank_values=True)
                    }
                    found.append(Request(module.where(node), base or None, options))
    return found


def _inside_query(module: _Module, node: ast.AST) -> bool:
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "query":
            return True
    return False


def _path_of(module: _Module, call: ast.Call) -> str | None:
    """The resource path the query string is appended to (text before '?'), if it can be read."""
    node: ast.AST = call
    while node in module.parents:
        parent = module.parents[node]
        if isinstance(parent, ast.FormattedValue):
            node = parent
            continue
        if isinstance(parent, ast.JoinedStr | ast.BinOp):
            text = module.render(parent, parent, skip=call)
            return text.partition("?")[0] or None
        return None
    return None


def reads() -> list[Read]:
    """Keys read from JSON objects, and the strings of *FIELDS* mappings (keys read indirectly)."""
    found: list[Read] = []
    for path in modules():
        module = _Module(path)
        for node in ast.walk(module.tree):
            key: ast.AST | None = None
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
            ):
                key = node.args[0]
            elif isinstance(node, ast.Subscript):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.append(Read(module.where(node), key.value))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any("FIELDS" in name for name in names):
                    found.extend(
                        Read(module.where(value), value.value)
                        for value in node.value.values
                        if isinstance(value, ast.Constant) and isinstance(value.value, str)
                    )
    return found

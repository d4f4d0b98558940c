"""Read the deployment templates (infra/*.bicep, infra/terraform/*.tf) into plain Python values.

Bicep is parsed with pycep-parser and Terraform with python-hcl2, so a syntax error in either fails
the tests that use them. Values that only exist at deploy time (a vault URI, an identity's client
id) come back as `Runtime`; values built from parameters are resolved with the parameters'
defaults, which is what a deployment gets when nobody overrides them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN_BICEP = INFRA / "main.bicep"
TERRAFORM = INFRA / "terraform"
SAMPLE_SETTINGS = REPO / "local.settings.sample.json"

_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


class Runtime(str):
    """An expression whose value exists only at deploy time (the text is the expression)."""


@dataclass(frozen=True)
class Deployment:
    """What one source declares, resolved with its defaults."""

    app_settings: dict[str, Any]
    queue_names: list[str]
    table_names: list[str]


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def terraform_files() -> list[Path]:
    return sorted(TERRAFORM.glob("*.tf"))


@functools.cache
def parse_bicep(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


@functools.cache
def parse_terraform_file(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2 import SerializationOptions

    # python-hcl2 8 keeps quotes and block markers unless told otherwise
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=options)


def terraform_blocks(kind: str) -> list[dict[str, Any]]:
    """Every top-level block of one kind ("resource", "variable", "locals"...) over all .tf files."""
    return [
        block for path in terraform_files() for block in parse_terraform_file(path).get(kind, [])
    ]


def terraform_resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(resource type, name) -> body, over all .tf files."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in terraform_blocks("resource"):
        for resource_type, named in block.items():
            for name, body in named.items():
                found[(resource_type, name)] = body
    return found


def terraform_variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in terraform_blocks("variable") for name, body in block.items()}


def terraform_locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in terraform_blocks("locals"):
        merged.update(block)
    return merged


def bicep_module(name: str) -> dict[str, Any]:
    """A module's parsed file, by the module symbol used in main.bicep."""
    module = parse_bicep(MAIN_BICEP)["modules"][name]
    return parse_bicep(INFRA / module["detail"]["path"])


# ---- resolving values with the defaults ----


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_bicep(value: Any, parameters: dict[str, Any]) -> Any:
    """The value of a pycep expression when every parameter keeps its default."""
    if isinstance(value, str):
        if value in parameters:
            return parameters[value].get("default", Runtime(value))
        if "${" not in value:
            return value
        pieces = []
        for name in _INTERPOLATION.findall(value):
            if name not in parameters or "default" not in parameters[name]:
                return Runtime(value)
            pieces.append((name, _text(parameters[name]["default"])))
        for name, text in pieces:
            value = value.replace("${" + name + "}", text)
        return value
    if isinstance(value, dict) and "operator" in value:
        operator = value["operator"]
        if operator["type"] == "conditional":
            operands = operator["operands"]
            condition = resolve_bicep(operands["condition"], parameters)
            if isinstance(condition, bool):
                chosen = operands["true_value"] if condition else operands["false_value"]
                return resolve_bicep(chosen, parameters)
        return Runtime(json.dumps(value))
    if isinstance(value, dict) and "function" in value:
        function = value["function"]
        if function["type"] == "string":
            converted = resolve_bicep(function["parameters"]["value_to_convert"], parameters)
            # ARM's string(true) is "True": only whole numbers are converted predictably
            if isinstance(converted, int) and not isinstance(converted, bool):
                return str(converted)
        return Runtime(json.dumps(value))
    return value


_VARIABLE = re.compile(r"^\$\{var\.(\w+)\}$")
_TOSTRING = re.compile(r"^\$\{tostring\(var\.(\w+)\)\}$")
_BOOL_TEXT = re.compile(r'^\$\{var\.(\w+) \? "([^"]*)" : "([^"]*)"\}$')
_REFERENCE = re.compile(r"^var\.(\w+)$")


def resolve_terraform(value: Any, variables: dict[str, dict[str, Any]]) -> Any:
    """The value of a python-hcl2 expression when every variable keeps its default."""
    if not isinstance(value, str) or "${" not in value:
        return value

    def default(name: str) -> Any:
        if name not in variables or "default" not in variables[name]:
            raise KeyError(name)
        return variables[name]["default"]

    try:
        if match := _VARIABLE.match(value):
            return default(match[1])
        if match := _TOSTRING.match(value):
            return _text(default(match[1]))
        if match := _BOOL_TEXT.match(value):
            return match[2] if default(match[1]) else match[3]
        pieces = []
        for expression in _INTERPOLATION.findall(value):
            reference = _REFERENCE.match(expression)
            if not reference:
                return Runtime(value)
            pieces.append((expression, _text(default(reference[1]))))
    except KeyError:
        return Runtime(value)
    for expression, text in pieces:
        value = value.replace("${" + expression + "}", text)
    return value


# ---- the three sources ----


def bicep_deployment() -> Deployment:
    main = parse_bicep(MAIN_BICEP)
    parameters = main["parameters"]
    variables = main["variables"]
    settings = {
        name: resolve_bicep(value, parameters)
        for name, value in variables["appSettings"]["value"].items()
    }
    queues = [resolve_bicep(name, parameters) for name in variables["queueNames"]["value"]]
    prefix = parameters["tablePrefix"]["default"]
    tables = [f"{prefix}{suffix}" for suffix in variables["tableSuffixes"]["value"]]
    return Deployment(app_settings=settings, queue_names=queues, table_names=tables)


_TABLE_NAMES = re.compile(
    r'^\$\{\[for (\w+) in local\.table_suffixes : "\$\{var\.(\w+)\}\$\{\1\}"\]\}$'
)


def terraform_deployment() -> Deployment:
    variables = terraform_variables()
    local = terraform_locals()
    settings = {
        name: resolve_terraform(value, variables) for name, value in local["app_settings"].items()
    }
    queues = [resolve_terraform(name, variables) for name in local["queue_names"]]
    match = _TABLE_NAMES.match(local["table_names"])
    assert match, f"local.table_names is not <prefix variable><suffix>: {local['table_names']}"
    prefix = variables[match[2]]["default"]
    tables = [f"{prefix}{suffix}" for suffix in local["table_suffixes"]]
    return Deployment(app_settings=settings, queue_names=queues, table_names=tables)


def sample_settings() -> dict[str, Any]:
    return json.loads(SAMPLE_SETTINGS.read_text())

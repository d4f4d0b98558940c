"""What ships is what was tested: the hashed locks agree with their one set of inputs (the
dependency groups of pyproject.toml), the test lock holds the runtime lock's exact pins, and every
import of the app is declared. Offline: the locks are read, never re-resolved."""

from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.components import in_ci

REPO = Path(__file__).resolve().parents[2]
# lock file -> the dependency group it is generated from (tests/support/locks.sh)
LOCKS = {
    "requirements.txt": "runtime",
    "tests/requirements.txt": "test",
    "tests/support/checkov-requirements.txt": "checkov",
}
# The function app's platform (infra/modules/functionapp.bicep): markers are judged for it.
TARGET = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]
    via: tuple[str, ...]
    extras: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lock:
    header: str
    options: tuple[str, ...]
    pins: dict[str, Pin]


def parse_lock(text: str) -> Lock:
    """The pins of a `uv pip compile --generate-hashes` output, with their hashes and reasons."""
    header: list[str] = []
    options: list[str] = []
    entries: list[tuple[str, list[str], list[str]]] = []
    for raw in text.splitlines():
        line = raw.rstrip("\\").strip()
        if not line:
            continue
        if not raw[0].isspace():
            if line.startswith("#"):
                header.append(line)
            elif line.startswith("-"):
                options.append(line)
            else:
                entries.append((line, [], []))
        elif line.startswith("--hash="):
            entries[-1][1].append(line.removeprefix("--hash="))
        elif line.startswith("#"):
            reason = line.lstrip("#").strip().removeprefix("via").strip()
            if reason:
                entries[-1][2].append(reason)
        else:
            options.append(line)
    pins = {}
    for line, hashes, via in entries:
        requirement = Requirement(line)
        exact = [spec for spec in requirement.specifier if spec.operator == "=="]
        assert len(exact) == 1 == len(requirement.specifier), f"not an exact pin: {line}"
        key = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        pins[key] = Pin(key, exact[0].version, frozenset(hashes), tuple(via), extras)
    return Lock("\n".join(header), tuple(options), pins)


@cache
def lock(path: str) -> Lock:
    return parse_lock((REPO / path).read_text())


@cache
def groups() -> dict[str, list[str | dict[str, str]]]:
    with (REPO / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["dependency-groups"]


def inputs(group: str) -> list[Requirement]:
    """The group's requirements with its included groups expanded (PEP 735)."""
    found: list[Requirement] = []
    for item in groups()[group]:
        if isinstance(item, dict):
            found.extend(inputs(item["include-group"]))
        else:
            found.append(Requirement(item))
    return [r for r in found if r.marker is None or r.marker.evaluate(TARGET)]


def declared(group: str) -> set[str]:
    return {canonicalize_name(r.name) for r in inputs(group)}


def test_the_lock_parser_reads_pins_hashes_and_reasons() -> None:
    parsed = parse_lock(
        "# header\n"
        "idna==3.20 \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via\n"
        "    #   (pyproject.toml:runtime)\n"
        "    #   requests\n"
        "PyYAML==6.0.4 \\\n"
        "    --hash=sha256:cc\n"
        "    # via (pyproject.toml:runtime)\n"
        "httpx[http2]==0.28.1 \\\n"
        "    --hash=sha256:dd\n"
        "    # via msgraph-core\n"
    )
    assert parsed.header == "# header" and parsed.options == ()
    assert parsed.pins == {
        "idna": Pin(
            "idna",
            "3.20",
            frozenset({"sha256:aa", "sha256:bb"}),
            ("(pyproject.toml:runtime)", "requests"),
        ),
        "pyyaml": Pin("pyyaml", "6.0.4", frozenset({"sha256:cc"}), ("(pyproject.toml:runtime)",)),
        "httpx": Pin(
            "httpx", "0.28.1", frozenset({"sha256:dd"}), ("msgraph-core",), frozenset({"http2"})
        ),
    }
    with pytest.raises(AssertionError, match="not an exact pin"):
        parse_lock("requests>=2.32\n")


@pytest.mark.parametrize(("path", "group"), LOCKS.items())
def test_each_lock_is_generated_from_its_group_with_hashes(path: str, group: str) -> None:
    parsed = lock(path)
    command = parsed.header
    assert f"--group pyproject.toml:{group}" in command and f"-o {path}" in command, command
    assert "--generate-hashes" in command and "--python-version 3.11" in command, command
    # Extras kept: see test_every_extra_a_locked_package_asks_for_is_written_in_the_lock.
    assert "--no-strip-extras" in command, command
    # No index or find-links option: a lock must not carry this machine's mirror into a deploy.
    assert parsed.options == (), parsed.options
    unhashed = [pin.name for pin in parsed.pins.values() if not pin.hashes]
    assert not unhashed, f"{path}: pins without a hash: {unhashed}"
    assert all(h.startswith("sha256:") for pin in parsed.pins.values() for h in pin.hashes)


@pytest.mark.parametrize(("path", "group"), LOCKS.items())
def test_every_input_is_pinned_within_its_range(path: str, group: str) -> None:
    pins = lock(path).pins
    problems = []
    for requirement in inputs(group):
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in {path}")
        elif not requirement.specifier.contains(pin.version, prereleases=False):
            problems.append(f"{requirement} but {path} pins {pin.version}")
    assert not problems, "run `bash tests/support/locks.sh`:\n" + "\n".join(problems)


@pytest.mark.parametrize(("path", "group"), LOCKS.items())
def test_every_pin_has_a_reason_still_in_the_inputs_or_the_lock(path: str, group: str) -> None:
    pins = lock(path).pins
    own_group = f"(pyproject.toml:{group})"
    problems = []
    for pin in pins.values():
        reasons = [reason for reason in pin.via if not reason.startswith("-c ")]
        if not reasons:
            problems.append(f"{pin.name} is pinned for no reason")
        for reason in reasons:
            if reason == own_group:
                if pin.name not in declared(group):
                    problems.append(f"{pin.name} is no longer an input of group {group}")
            elif canonicalize_name(reason) not in pins:
                problems.append(f"{pin.name} is pinned for {reason}, which is not in the lock")
    assert not problems, "run `bash tests/support/locks.sh`:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", ["requirements.txt", "tests/requirements.txt"])
def test_every_extra_a_locked_package_asks_for_is_written_in_the_lock(path: str) -> None:
    """pip (23.2 on Debian 12 and in the Functions build) in hash mode takes a dependency on
    `httpx[http2]` as a new, unpinned requirement when the lock says only `httpx==0.28.1`, and
    fails as soon as a newer httpx is published: the lock must name the extra. Read from the
    metadata of this interpreter, installed from the test lock (checkov's lock, installed
    elsewhere, is held to --no-strip-extras by the header test above)."""
    pins = lock(path).pins
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    absent = sorted(set(pins) - set(installed))
    if absent and not in_ci():
        pytest.skip(f"this interpreter was not installed from tests/requirements.txt: {absent}")
    assert not absent, f"locked but not installed: {absent}"
    environment = {**TARGET, "extra": ""}
    missing = []
    for pin in pins.values():
        for raw in installed[pin.name].requires or []:
            wanted = Requirement(raw)
            if wanted.marker is not None and not wanted.marker.evaluate(environment):
                continue
            locked = pins.get(canonicalize_name(wanted.name))
            if locked is not None and not set(wanted.extras) <= locked.extras:
                missing.append(f"{pin.name} asks for {wanted.name}[{','.join(wanted.extras)}]")
    assert not missing, "run `bash tests/support/locks.sh`:\n" + "\n".join(missing)


def test_the_test_lock_holds_the_runtime_lock_exactly() -> None:
    runtime, test = lock("requirements.txt").pins, lock("tests/requirements.txt").pins
    assert "-c requirements.txt" in lock("tests/requirements.txt").header
    differ = []
    for name, pin in runtime.items():
        other = test.get(name)
        if other is None or (other.version, other.hashes) != (pin.version, pin.hashes):
            differ.append(f"{name}: runtime {pin.version}, test {other.version if other else None}")
    assert not differ, "\n".join(differ)


def imported_modules(*paths: Path) -> set[str]:
    """Absolute imports outside the standard library and reclaim itself."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return {
        name
        for name in found
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in ("reclaim", "__future__")
    }


@cache
def module_owners() -> dict[str, str]:
    """Importable module path (e.g. "azure.data.tables") -> the distribution that installs it."""
    owners: dict[str, str] = {}
    for distribution in metadata.distributions():
        for file in distribution.files or ():
            parts = file.parts
            if file.name == "__init__.py":
                owners[".".join(parts[:-1])] = canonicalize_name(distribution.metadata["Name"])
            elif file.suffix in (".py", ".so"):
                owners[".".join((*parts[:-1], file.name.split(".")[0]))] = canonicalize_name(
                    distribution.metadata["Name"]
                )
    return owners


def owner_of(module: str) -> str | None:
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        owner = module_owners().get(".".join(parts[:length]))
        if owner is not None:
            return owner
    return None


def test_every_import_of_the_app_is_a_declared_runtime_dependency() -> None:
    app = [REPO / "function_app.py", *sorted((REPO / "reclaim").rglob("*.py"))]
    modules = imported_modules(*app)
    assert {"azure.functions", "yaml", "ldap3"} <= modules  # the walk sees the app's imports
    undeclared = {
        module: owner_of(module)
        for module in sorted(modules)
        if owner_of(module) not in declared("runtime")
    }
    assert not undeclared, f"imported by reclaim but not in the runtime group: {undeclared}"


def test_the_tests_run_the_exact_versions_that_ship() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {
        name: (pin.version, installed.get(name))
        for name, pin in lock("tests/requirements.txt").pins.items()
        if installed.get(name) != pin.version
    }
    if differ and not in_ci():
        pytest.skip(f"this interpreter was not installed from tests/requirements.txt: {differ}")
    assert not differ, f"(locked, installed) versions differ: {differ}"

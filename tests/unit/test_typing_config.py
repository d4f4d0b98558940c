"""pyproject's [tool.mypy] checks reclaim/domain as `mypy --strict` would: the override for the
domain sets every flag that this mypy's --strict enables (read from `mypy --help`, so a mypy that
adds a strict flag fails here until the override has it too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# flags of --strict that mypy accepts only for the whole run, not per module
GLOBAL_ONLY = {"warn_unused_configs", "warn_redundant_casts"}


def strict_flags() -> dict[str, bool]:
    """--strict's flags as config keys: --disallow-any-generics -> disallow_any_generics = true."""
    help_text = subprocess.run(
        [sys.executable, "-m", "mypy", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "1000"},  # one line per option
    ).stdout
    described = re.search(r"--strict\s+Strict mode; enables the following flags: (.*)", help_text)
    assert described, "mypy --help no longer describes --strict"
    flags = {}
    for flag in re.findall(r"--([a-z-]+)", described.group(1)):
        enabled = not flag.startswith("no-")
        flags[flag.removeprefix("no-").replace("-", "_")] = enabled
    return flags


def test_the_domain_is_checked_with_every_strict_flag() -> None:
    with (REPO / "pyproject.toml").open("rb") as file:
        mypy = tomllib.load(file)["tool"]["mypy"]
    (domain,) = [o for o in mypy["overrides"] if "reclaim.domain.*" in o["module"]]
    flags = strict_flags()
    assert {"disallow_untyped_defs", "implicit_reexport", "warn_redundant_casts"} <= flags.keys()
    per_module = {key: value for key, value in flags.items() if key not in GLOBAL_ONLY}
    # an override inherits what the [tool.mypy] table sets for the whole run
    assert {key: domain.get(key, mypy.get(key)) for key in per_module} == per_module
    global_only = {key: value for key, value in flags.items() if key in GLOBAL_ONLY}
    assert {key: mypy.get(key) for key in global_only} == global_only
    assert "reclaim" in mypy["files"] and "reclaim.domain" in domain["module"]

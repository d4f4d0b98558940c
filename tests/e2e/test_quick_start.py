"""README's first quick-start command, as written, in a fresh clone of the committed tree: it must
create its own venv, install the runtime lock into it (hashes checked) and plan the examples.
Uncommitted changes are not in the clone: commit before trusting this test. pip's cache is shared
with the machine, so a warm run takes about 15 s."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.unit.test_locks import parse_lock

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.quick_start


def first_quick_start_command(readme: str) -> str:
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```\n(.*?)\n```$", section, re.M | re.S)
    assert block, "README's Quick start has no command block"
    return block.group(1)


def test_readme_first_command_plans_the_examples_from_a_fresh_clone(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    clone = tmp_path / "reclaim"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=clone, check=True)
    command = first_quick_start_command((clone / "README.md").read_text())
    # The shell of a fresh machine: no venv active, so `python3` is the system's.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO))
    )
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "== salesforce-lightning:" in result.stdout and "== visio-plan2:" in result.stdout
    assert re.search(r"^\d+ members: CANDIDATE \d+", result.stdout, re.M), result.stdout[-2000:]

    # What the command installed into its own venv is exactly the runtime lock.
    listed = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed)}
    installed.pop("pip"), installed.pop("setuptools", None)
    pins = parse_lock((clone / "requirements.txt").read_text()).pins
    assert installed == {name: pin.version for name, pin in pins.items()}

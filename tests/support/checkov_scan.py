"""Run checkov (installed in its own venv by checkov.sh) over infra/ and read its inline skips.

Skips are compared by what checkov reports for a finding: the file (relative to the scanned
directory, with a leading slash), the resource ("<type>.<symbol>" in Bicep, "<type>.<name>" in
Terraform) and the check id.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.components import missing
from tests.support.infra_templates import INFRA, REPO, bicep_files, terraform_files

CHECKOV_SETUP = REPO / "tests" / "support" / "checkov.sh"
SKIP = re.compile(r"checkov:skip=(CKV2?_AZURE_\d+):(.*)$")
_BICEP_RESOURCE = re.compile(r"^resource (\w+) '([^'@]+)@")
_TERRAFORM_RESOURCE = re.compile(r'^resource "(\w+)" "(\w+)"')

Finding = tuple[str, str, str]  # (file, resource, check id) as checkov names them


def checkov_binary() -> str:
    """Path of the checkov binary (installing it the first time)."""
    setup = subprocess.run(
        ["sh", str(CHECKOV_SETUP)], capture_output=True, text=True, timeout=280, check=False
    )
    lines = setup.stdout.strip().splitlines()
    if setup.returncode != 0 or not lines:
        missing(f"checkov could not be installed:\n{setup.stderr[-3000:]}")
    return lines[-1]


def run_checkov(checkov: str, directory: Path) -> dict[str, dict[str, Any]]:
    """checkov's JSON report per framework ("bicep", "terraform") for one directory."""
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(directory),
            "--framework",
            "bicep",
            "terraform",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )
    # exit code 1 means failed checks: the report lists them and the tests name them
    assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return {entry["check_type"]: entry for entry in reports}


def copy_without_skips(destination: Path) -> Path:
    """A copy of infra/ with every checkov:skip line removed."""
    shutil.copytree(INFRA, destination, ignore=shutil.ignore_patterns(".terraform*"))
    for path in [*destination.rglob("*.bicep"), *destination.rglob("*.tf")]:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "checkov:skip=" not in line))
    return destination


def findings(report: dict[str, dict[str, Any]], outcome: str) -> set[Finding]:
    """The findings of one outcome ("failed_checks", "skipped_checks", ...) over both frameworks."""
    return {
        (check["file_path"], check["resource"], check["check_id"])
        for entry in report.values()
        for check in entry["results"].get(outcome, [])
    }


def declared_skips() -> set[Finding]:
    """Every inline skip in infra/, named as checkov names the finding it hides."""
    declared = set()
    for path in [*bicep_files(), *terraform_files()]:
        resource = None
        for line in path.read_text().splitlines():
            if match := _BICEP_RESOURCE.match(line):
                resource = f"{match[2]}.{match[1]}"
            elif match := _TERRAFORM_RESOURCE.match(line):
                resource = f"{match[1]}.{match[2]}"
            if match := SKIP.search(line):
                assert resource, f"{path.name}: a skip outside a resource: {line.strip()}"
                declared.add((f"/{path.relative_to(INFRA)}", resource, match[1]))
    return declared

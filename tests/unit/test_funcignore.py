""".funcignore ships only the app: a deploy package holds function_app.py, host.json,
requirements.txt, reclaim/ and the policies file, never tests, bench, infra, examples, node_modules,
venvs, Samba's or Azurite's state or local settings. git's own gitignore matcher applies the file
(the syntax azd and Core Tools document for .funcignore) to a tree shaped like a working copy."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = {"function_app.py", "host.json", "requirements.txt", "policies.yaml"}
# What a working copy holds besides the tracked files: none of it may ship.
LEFT_BEHIND = {
    "node_modules/azurite/dist/src/azurite.js",
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/yaml/__init__.py",
    ".samba/private/sam.ldb",
    ".azurite/__azurite_db_table__.json",
    ".hypothesis/examples/0",
    ".mypy_cache/3.11/reclaim/cli.meta.json",
    "reclaim/__pycache__/cli.cpython-311.pyc",
    "reclaim/domain/__pycache__/policy.cpython-311.pyc",
    "local.settings.json",
    "reclaim.sqlite3",
    "bench/out/selection.json",
    "package-lock.json",
}


def shipped(tree: Path, paths: set[str]) -> set[str]:
    for path in paths:
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).touch()
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "--others", f"--exclude-from={REPO / '.funcignore'}"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.splitlines())


def tracked() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return {path for path in listed.stdout.splitlines() if (REPO / path).is_file()}


def test_only_the_app_ships(tmp_path: Path) -> None:
    assert (REPO / ".funcignore").is_file(), "without .funcignore a deploy ships the whole tree"
    files = tracked() | {".funcignore", "policies.yaml"} | LEFT_BEHIND
    assert {"tests/run.sh", "infra/main.bicep", "examples/policies.yaml"} <= files
    package = shipped(tmp_path, files)
    app = {p for p in files if p in APP or (p.startswith("reclaim/") and p.endswith(".py"))}
    assert package == app, {"ships but should not": package - app, "missing": app - package}


def test_the_repository_tracks_no_symlink() -> None:
    # A tracked symlink (a worktree's node_modules -> another checkout, say) dangles in a fresh
    # clone, and installs then write through it.
    listed = subprocess.run(
        ["git", "ls-files", "--stage"], cwd=REPO, capture_output=True, text=True, check=True
    )
    links = [
        line.split("\t", 1)[1] for line in listed.stdout.splitlines() if line.startswith("120000")
    ]
    assert links == []

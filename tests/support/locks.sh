#!/bin/sh
# Regenerate the three hashed locks from the dependency groups of pyproject.toml, the one set of
# inputs: requirements.txt (runtime, what the deployment installs), tests/requirements.txt (the
# runtime lock's exact pins plus the test tools) and tests/support/checkov-requirements.txt.
# Run it after changing a group; `--upgrade` moves every pin to the newest release in range.
# Needs PyPI. uv reads dependency groups straight from pyproject.toml without building anything
# (pip-compile 7.6 cannot: it needs a [project] table and a build backend).
set -eu
cd "$(dirname "$0")/../.."

UV_SPEC="uv==0.13.9"
TOOLS_DIR="${RECLAIM_TOOLS_DIR:-${HOME:-/tmp}/.cache/reclaim-tools}"
VENV="$TOOLS_DIR/uv-venv"
UV="$VENV/bin/uv"

if ! [ -x "$UV" ] || ! "$UV" --version | grep -q "${UV_SPEC#uv==}"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$UV_SPEC"
fi

# The function app runs CPython 3.11 on Linux x86_64 (infra/modules/functionapp.bicep).
# --no-strip-extras: pip 23.2 in hash mode takes a dependency on `httpx[http2]` for a new, unpinned
# requirement unless the lock says `httpx[http2]==...` (tests/unit/test_locks.py).
compile() {
    "$UV" pip compile --quiet --generate-hashes --no-strip-extras --python-version 3.11 \
        --python-platform x86_64-unknown-linux-gnu "$@"
}
compile --group pyproject.toml:runtime -o requirements.txt "$@"
compile --group pyproject.toml:test -c requirements.txt -o tests/requirements.txt "$@"
compile --group pyproject.toml:checkov -o tests/support/checkov-requirements.txt "$@"

#!/bin/sh
# Create (or reuse) a private venv for checkov outside the repository and print the path of its
# checkov binary on the last line of stdout; all other output goes to stderr.
# Why a separate venv: installed beside the app, checkov overwrites python-hcl2's `hcl2` module,
# downgrades pycep-parser and downgrades `packaging` so far that pytest 9 breaks.
# It installs checkov's own hashed lock (tests/support/checkov-requirements.txt, generated from the
# `checkov` group of pyproject.toml by tests/support/locks.sh), wheels only.
# Idempotent: a venv built from the same lock whose checkov runs is reused (about 25 s and 300 MB
# the first time).
set -eu

LOCK="$(cd "$(dirname "$0")" && pwd)/checkov-requirements.txt"
TOOLS_DIR="${RECLAIM_TOOLS_DIR:-${HOME:-/tmp}/.cache/reclaim-tools}"
VENV="$TOOLS_DIR/checkov-venv"
CHECKOV="$VENV/bin/checkov"
PYTHON="${RECLAIM_CHECKOV_PYTHON:-python3}"
LOCK_SUM="$(sha256sum "$LOCK" | cut -d' ' -f1)"

mkdir -p "$TOOLS_DIR"
# Two test runs at once must not build the same venv together.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/checkov.lock"
    flock 9
fi

if [ -x "$CHECKOV" ] && [ "$(cat "$VENV/lock.sha256" 2>/dev/null)" = "$LOCK_SUM" ] &&
    version=$("$CHECKOV" --version 2>/dev/null); then
    echo "checkov.sh: reusing $VENV (checkov $version)" >&2
    echo "$CHECKOV"
    exit 0
fi

echo "checkov.sh: installing $LOCK into $VENV" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary :all: -r "$LOCK" >&2
"$CHECKOV" --version >&2
echo "$LOCK_SUM" >"$VENV/lock.sha256"
echo "$CHECKOV"

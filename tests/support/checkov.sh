#!/bin/sh
# Create (or reuse) a private venv for checkov outside the repository and print the path of its
# checkov binary on the last line of stdout; all other output goes to stderr.
# Why a separate venv: installed beside the app, checkov overwrites python-hcl2's `hcl2` module,
# downgrades pycep-parser and downgrades `packaging` so far that pytest 9 breaks.
# Idempotent: a venv whose checkov already runs is reused (about 30 s and 300 MB the first time).
set -eu

CHECKOV_SPEC="checkov>=3.2,<4"
TOOLS_DIR="${RECLAIM_TOOLS_DIR:-${HOME:-/tmp}/.cache/reclaim-tools}"
VENV="$TOOLS_DIR/checkov-venv"
CHECKOV="$VENV/bin/checkov"
PYTHON="${RECLAIM_CHECKOV_PYTHON:-python3}"

mkdir -p "$TOOLS_DIR"
# Two test runs at once must not build the same venv together.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/checkov.lock"
    flock 9
fi

if [ -x "$CHECKOV" ] && version=$("$CHECKOV" --version 2>/dev/null); then
    echo "checkov.sh: reusing $VENV (checkov $version)" >&2
    echo "$CHECKOV"
    exit 0
fi

echo "checkov.sh: installing $CHECKOV_SPEC into $VENV" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$CHECKOV_SPEC" >&2
"$CHECKOV" --version >&2
echo "$CHECKOV"

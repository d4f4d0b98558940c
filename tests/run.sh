#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs all of it: Debian packages
# (python3-venv, Samba as a real AD domain controller, Chromium), Azurite (the real Azure Storage
# emulator) and the test lock into .venv; then ruff, mypy and pytest from that venv.
# Extra arguments go to pytest (e.g. `bash tests/run.sh tests/unit -q`); its exit code is ours.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/support/system_packages.sh
bash tests/support/azurite_setup.sh

# The test lock (the runtime lock's pins plus the test tools), hashes required, wheels only, in the
# project's own venv: never the system's pip. A venv built from another lock is built anew, so it
# holds exactly what the lock says.
LOCK_SUM="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
if [ "$(cat .venv/test-lock.sha256 2>/dev/null)" != "$LOCK_SUM" ] || ! .venv/bin/python -c "" 2>/dev/null; then
    started=$SECONDS
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        --require-hashes --only-binary :all: -r tests/requirements.txt
    echo "$LOCK_SUM" >.venv/test-lock.sha256
    echo "run.sh: installed tests/requirements.txt into .venv in $((SECONDS - started)) s"
fi

.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"

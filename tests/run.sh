#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs all of it:
# Python packages, Samba (a real AD domain controller) and Azurite (real Azure Storage emulator).
# Extra arguments go to pytest (e.g. `bash tests/run.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
bash tests/support/system_packages.sh
bash tests/support/azurite_setup.sh

python -m ruff check .
python -m ruff format --check .
python -m pytest "$@"

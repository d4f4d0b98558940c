#!/bin/sh
# Install Azurite (the real Azure Storage emulator, from npm) for the storage and function tests.
# Idempotent: returns at once when node_modules/azurite is present. Installs into the repository's
# node_modules (git-ignored) without writing package.json or package-lock.json.
set -eu
cd "$(dirname "$0")/../.."

if [ -f node_modules/azurite/dist/src/azurite.js ]; then
    echo "azurite_setup: azurite already installed ($(node -p "require('./node_modules/azurite/package.json').version"))"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    # Machines of this kind ship Node.js; a bare Debian gets it from Debian's packages.
    echo "azurite_setup: npm is missing; installing Debian's nodejs and npm"
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi

echo "azurite_setup: installing azurite@3 into node_modules"
npm install --no-save --no-audit --no-fund --loglevel=error azurite@3
echo "azurite_setup: installed $(node -p "require('./node_modules/azurite/package.json').version")"

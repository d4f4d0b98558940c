#!/bin/sh
# Install what the tests need from Debian: python3-venv (tests/run.sh installs the test lock into
# .venv: Debian's own pip refuses to install into the system), Samba (a real Active Directory domain
# controller) for the LDAP tests, and Chromium to open the HTML report as a person would.
# Idempotent: returns at once when every package is already installed. Needs root (or sudo).
# samba-vfs-modules is required: without it provisioning fails loading acl_xattr.so. libatomic1:
# the Node.js that the Playwright wheel bundles (its driver) links it, and a stock Debian lacks it.
set -eu

PACKAGES="python3-venv samba samba-dsdb-modules samba-ad-provision samba-vfs-modules chromium fonts-dejavu-core libatomic1"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

SAMBA="$(command -v samba || echo /usr/sbin/samba)"  # /usr/sbin is not on every user's PATH

if [ -z "$missing" ]; then
    echo "system_packages: already installed: $PACKAGES"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

echo "system_packages: installing$missing"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
echo "system_packages: installed $("$SAMBA" --version)"

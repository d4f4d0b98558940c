#!/bin/sh
# Install Samba (a real Active Directory domain controller) from Debian for the LDAP tests.
# Idempotent: returns at once when every package is already installed. Needs root (or sudo).
# samba-vfs-modules is required: without it provisioning fails loading acl_xattr.so.
set -eu

PACKAGES="samba samba-dsdb-modules samba-ad-provision samba-vfs-modules"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

SAMBA="$(command -v samba || echo /usr/sbin/samba)"  # /usr/sbin is not on every user's PATH

if [ -z "$missing" ]; then
    echo "samba_setup: samba already installed ($("$SAMBA" --version))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

echo "samba_setup: installing$missing"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
echo "samba_setup: installed $("$SAMBA" --version)"

#!/usr/bin/env bash
# Installs the OS packages Tianfu needs from Debian's archive, only those that are missing.
#   scripts/install-system-deps.sh run    SpatiaLite (enough for `make run`)
#   scripts/install-system-deps.sh test   + PostGIS for PostgreSQL 15 and Chromium (browser tests)
set -euo pipefail

mode="${1:-run}"
packages=(libsqlite3-mod-spatialite)
if [[ "$mode" == "test" ]]; then
    pg_major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)"
    packages+=("postgresql-${pg_major:-15}-postgis-3" chromium)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing OS packages: ${missing[*]}" >&2
sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null

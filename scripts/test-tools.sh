#!/usr/bin/env bash
# The outside programs the tests drive: the SCEP clients of the interoperability tests
# (tests/test_scep_interop.py), Debian's `certmonger` (getcert, certmonger, scep-submit in
# /usr/lib/certmonger/) and `scep` (micromdm's scepclient), and Debian's `chromium` for the
# browser tests (Playwright, a pip dev dependency, drives it). Idempotent and quiet: installs
# only what is missing.
#
# Usage: scripts/test-tools.sh        exit 0 once all of them are installed
#
# Needs root (apt-get) when something is missing. Waits (bounded) while another
# apt/dpkg run holds the lock, as scripts/services.sh does.
set -euo pipefail

APT_LOCK_WAIT=${APT_LOCK_WAIT:-120} # seconds to wait for another apt/dpkg run

log() { printf '[test-tools] %s\n' "$*" >&2; }
die() {
    printf '[test-tools] ERROR: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# package -> the files it must provide (Debian keeps certmonger's helpers in /usr/lib/certmonger;
# other distributions use /usr/libexec/certmonger).
declare -A WANT=(
    [certmonger]="/usr/bin/getcert /usr/sbin/certmonger scep-submit"
    [scep]="/usr/bin/scepclient"
    [chromium]="/usr/bin/chromium" # the browser tests (Playwright drives Debian's chromium)
)

has_file() { # has_file PATH-or-helper-name
    case $1 in
    /*) [[ -x $1 ]] ;;
    *) [[ -x /usr/lib/certmonger/$1 || -x /usr/libexec/certmonger/$1 ]] ;;
    esac
}

has_pkg() { # has_pkg PACKAGE: every file it must provide is there
    local f
    for f in ${WANT[$1]}; do has_file "$f" || return 1; done
}

missing=()
for pkg in "${!WANT[@]}"; do
    has_pkg "$pkg" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

((EUID == 0)) || die "missing: ${missing[*]} (install with: sudo apt-get install -y ${missing[*]})"

log "installing ${missing[*]}..."
apt_install "${missing[@]}" || die "could not install ${missing[*]}"

for pkg in "${!WANT[@]}"; do
    has_pkg "$pkg" || die "$pkg is installed but one of ${WANT[$pkg]} is missing"
done
log "installed ${missing[*]}"

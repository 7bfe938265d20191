#!/usr/bin/env bash
# The outside programs bench/run.py drives: Debian's `wrk` (the command loop and its floor,
# bench/loop.lua) and Debian's `scep` (micromdm's `scepserver`, the SCEP part's yardstick; also
# a test tool, so scripts/test-tools.sh installs it and is reused here). Idempotent and quiet:
# installs only what is missing.
#
# Usage: scripts/bench-tools.sh        exit 0 once all of them are installed
#
# Needs root (apt-get) when something is missing. Waits (bounded) while another apt/dpkg run
# holds the lock.
set -euo pipefail

APT_LOCK_WAIT=${APT_LOCK_WAIT:-120} # seconds to wait for another apt/dpkg run
HERE=$(dirname "${BASH_SOURCE[0]}")

log() { printf '[bench-tools] %s\n' "$*" >&2; }
die() {
    printf '[bench-tools] ERROR: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/apt.sh
source "$HERE/apt.sh"

"$HERE/test-tools.sh" # scep (scepserver), with the tests' other tools
[[ -x /usr/bin/scepserver ]] || die "scepserver is missing after scripts/test-tools.sh"

[[ -x /usr/bin/wrk ]] && exit 0
((EUID == 0)) || die "missing: wrk (install with: sudo apt-get install -y wrk)"
log "installing wrk..."
apt_install wrk || die "could not install wrk"
[[ -x /usr/bin/wrk ]] || die "wrk is installed but /usr/bin/wrk is missing"
log "installed wrk"

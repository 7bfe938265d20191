# Sourced by scripts/services.sh, scripts/test-tools.sh and scripts/bench-tools.sh (which
# define `log` and APT_LOCK_WAIT): apt-get, quietly, retrying (bounded) while another apt/dpkg
# run holds the lock, e.g. someone else's background install. Output of the last try: $APT_OUT.
# 9>&- : a package's postinst may start a daemon (redis-server does) that would otherwise
# inherit, and hold forever, the caller's lock file descriptor.
APT_OUT=
apt_get() {
    local deadline=$((SECONDS + APT_LOCK_WAIT)) said=0
    while :; do
        if APT_OUT=$(DEBIAN_FRONTEND=noninteractive apt-get -qq \
            -o DPkg::Lock::Timeout=10 "$@" 2>&1 9>&-); then
            return 0
        fi
        if grep -qi 'lock' <<<"$APT_OUT" && ((SECONDS < deadline)); then
            ((said)) || log "apt/dpkg is locked by another process; waiting (up to ${APT_LOCK_WAIT}s)..."
            said=1
            sleep 3
            continue
        fi
        return 1
    done
}

# apt_install PACKAGE...: install them, running `apt-get update` only when the first try fails
# (it is slow and usually not needed). On failure, prints apt's output and returns 1.
apt_install() {
    apt_get install -y --no-install-recommends "$@" && return 0
    log "refreshing package lists (apt-get update)..."
    if ! apt_get update || ! apt_get install -y --no-install-recommends "$@"; then
        printf '%s\n' "$APT_OUT" >&2
        return 1
    fi
}

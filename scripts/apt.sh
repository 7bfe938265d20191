# Sourced by scripts/services.sh and scripts/test-tools.sh (which define `log` and
# APT_LOCK_WAIT): apt-get, quietly, retrying (bounded) while another apt/dpkg run holds the
# lock, e.g. someone else's background install. Output of the last try: $APT_OUT.
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

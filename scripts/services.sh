#!/usr/bin/env bash
# PostgreSQL 15 + Redis on loopback. By default throwaway, for the test suite
# (speed settings: no fsync, no Redis persistence); with MDM_SERVICES_DURABLE=1
# durable, for scripts/serve.sh (the servers' safe defaults, passwords).
# Idempotent: CI calls `scripts/services.sh start` on every run, because nothing
# started by hand survives between runs.
#
# Usage: scripts/services.sh [start|stop|status|env]
#   start   (default) install what is missing, initialise, start, and wait until
#           both accept connections. Exit 0 only if both do.
#   stop    stop both (if running).
#   status  say whether each runs; exit 0 only if both do.
#   env     print the two exports for the services:
#             eval "$(scripts/services.sh env)"
#
# Environment:
#   MDM_SERVICES_DIR      data folder (default: <repo>/var/services)
#   MDM_PG_PORT           PostgreSQL port (default: 55432)
#   MDM_REDIS_PORT        Redis port (default: 56379)
#   MDM_SERVICES_DURABLE  1: durable mode. PostgreSQL keeps its safe defaults
#                         (fsync, synchronous_commit, full_page_writes on), Redis
#                         persists every write (appendonly, appendfsync always),
#                         both get a generated password (files pg-password and
#                         redis-password, mode 0600), the role mdm cannot create
#                         databases, and Redis runs as the `redis` user when run
#                         as root. The default (unset or 0) is the test mode.
#
# Layout under the data folder:
#   pg/ (cluster), pg.log, pg-socket/ (unix socket), initdb.log
#   redis/ (redis.conf, redis.pid, redis.log, dump.rdb; appendonlydir/ if durable)
# When run as root and the postgres user cannot traverse the data folder's
# path (e.g. the repo lives under /root, mode 0700), the PostgreSQL part
# (pg/, pg.log, pg-socket/) lives in /var/lib/mdm-portal-services instead
# (/var/lib/mdm-portal-durable-<port> in durable mode).
set -euo pipefail

SCRIPT_PATH=$(readlink -f -- "${BASH_SOURCE[0]}")
REPO=$(dirname -- "$(dirname -- "$SCRIPT_PATH")")
DIR=${MDM_SERVICES_DIR:-$REPO/var/services}
[[ $DIR == /* ]] || DIR=$PWD/$DIR
PG_PORT=${MDM_PG_PORT:-55432}
REDIS_PORT=${MDM_REDIS_PORT:-56379}
REDIS_DIR=$DIR/redis
case ${MDM_SERVICES_DURABLE:-0} in
1 | true | yes) DURABLE=1 ;;
0 | false | no | "") DURABLE=0 ;;
*) printf '[services] ERROR: MDM_SERVICES_DURABLE must be 1 or 0\n' >&2 && exit 2 ;;
esac
if ((DURABLE)); then
    PG_FALLBACK_BASE=/var/lib/mdm-portal-durable-$PG_PORT
else
    PG_FALLBACK_BASE=/var/lib/mdm-portal-services
fi

# Test mode: the fixed password mdm (throwaway data on loopback). Durable mode:
# generated passwords, kept beside the data (see service_password).
PG_PASSWORD=mdm
REDIS_PASSWORD=

READY_TIMEOUT=30   # seconds to wait for each service to accept connections
APT_LOCK_WAIT=60   # seconds to wait for another apt/dpkg run to release its lock
LOCK_WAIT=90       # seconds to wait for a concurrent start/stop of this script

# The caller's libpq settings (PGHOST, PGUSER, PGSSLMODE...) must not redirect
# our admin connections; everything below passes host/port/user explicitly.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE \
    PGSERVICE PGSERVICEFILE PGSSLMODE PGOPTIONS PGDATA 2>/dev/null || true

CMD=${1:-start}
DIED=0

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    DIED=1
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}
# set -e can exit on an unexpected failure without a word; say something then.
on_exit() {
    local rc=$?
    if ((rc != 0 && !DIED)) && [[ $CMD != status && $CMD != env ]]; then
        printf '[services] ERROR: "%s" failed unexpectedly (exit %d)\n' "$CMD" "$rc" >&2
    fi
}
trap on_exit EXIT

for port in "$PG_PORT" "$REDIS_PORT"; do
    [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "invalid port: $port"
done

show_log_tail() { # show_log_tail FILE: last lines of a service log, to stderr
    if [[ -f $1 ]]; then
        printf '[services] ---- last lines of %s ----\n' "$1" >&2
        tail -n 30 -- "$1" >&2 || true
        printf '[services] ----\n' >&2
    fi
}

# ---------------------------------------------------------------- helpers

service_password() { # service_password NAME: the durable mode's password for NAME, made once
    local file=$DIR/$1-password
    if [[ ! -s $file ]]; then
        mkdir -p -- "$DIR"
        (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$file.tmp" && mv -- "$file.tmp" "$file")
    fi
    cat -- "$file"
}

urls() { # set DATABASE_URL and REDIS_URL (reading or making the durable passwords)
    if ((DURABLE)); then
        PG_PASSWORD=$(service_password pg)
        REDIS_PASSWORD=$(service_password redis)
    fi
    DATABASE_URL="postgres://mdm:$PG_PASSWORD@127.0.0.1:$PG_PORT/mdm"
    REDIS_URL="redis://${REDIS_PASSWORD:+:$REDIS_PASSWORD@}127.0.0.1:$REDIS_PORT/0"
}

# PostgreSQL refuses to run as root, so as root its tools run as `postgres`.
# cd / first: postgres may not be allowed into the caller's cwd (e.g. /root).
as_pg() {
    if ((EUID != 0)); then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && exec runuser -u postgres -- "$@")
    else
        (cd / && exec su -s /bin/bash postgres -c "$(printf '%q ' "$@")")
    fi
}

pid_is() { # pid_is PID COMM: PID is alive (not a zombie) and is that program (guards against pid reuse)
    [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
        [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] &&
        [[ $(sed -E 's/.*\) //; s/ .*//' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

wait_for() { # wait_for READY_FN ALIVE_FN: poll until ready; give up early if the process died
    local start=$SECONDS
    while ((SECONDS - start < READY_TIMEOUT)); do
        "$1" && return 0
        if ((SECONDS - start >= 3)) && ! "$2"; then return 1; fi
        sleep 0.5
    done
    "$1"
}

# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# ---------------------------------------------------------------- binaries

PG_BIN= PG_CTL= INITDB= POSTGRES= PSQL= PG_ISREADY=
detect_pg() {
    PG_BIN= PG_CTL= INITDB= POSTGRES=
    local c d
    # Prefer what is on PATH (e.g. /usr/local/bin symlinks), then Debian's layout.
    for c in "$(command -v pg_ctl 2>/dev/null || true)" /usr/lib/postgresql/15/bin/pg_ctl \
        $(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -rV); do
        [[ -n $c && -x $c ]] || continue
        d=$(dirname -- "$(readlink -f -- "$c")")
        if [[ -x $d/initdb && -x $d/postgres ]]; then
            PG_BIN=$d PG_CTL=$d/pg_ctl INITDB=$d/initdb POSTGRES=$d/postgres
            break
        fi
    done
    # Client tools: same installation if it has them, else whatever is on PATH.
    PSQL=$(command -v "${PG_BIN:-/nonexistent}/psql" || command -v psql || true)
    PG_ISREADY=$(command -v "${PG_BIN:-/nonexistent}/pg_isready" || command -v pg_isready || true)
}

have_redis() { command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; }

ensure_installed() {
    detect_pg
    local pkgs=()
    [[ -n $PG_BIN ]] || pkgs+=(postgresql-15)
    [[ -n $PSQL ]] || pkgs+=(postgresql-client-15)
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    ((${#pkgs[@]})) || return 0
    ((EUID == 0)) || die "missing packages: ${pkgs[*]} (install with: apt-get install -y ${pkgs[*]}, or run this script as root)"

    log "installing ${pkgs[*]}..."
    # Try without `apt-get update` first: it is slow and usually not needed.
    if ! apt_get install -y --no-install-recommends "${pkgs[@]}"; then
        log "refreshing package lists (apt-get update)..."
        apt_get update || { printf '%s\n' "$APT_OUT" >&2; die "apt-get update failed"; }
        apt_get install -y --no-install-recommends "${pkgs[@]}" ||
            { printf '%s\n' "$APT_OUT" >&2; die "could not install ${pkgs[*]}"; }
    fi
    detect_pg
    [[ -n $PG_BIN && -n $PSQL ]] || die "PostgreSQL binaries (initdb, pg_ctl, postgres, psql) still not found"
    have_redis || die "redis-server/redis-cli still not found after installing"
}

# ---------------------------------------------------------------- PostgreSQL

PG_BASE= PGDATA_DIR= PG_LOG= PG_SOCKDIR= PG_FALLBACK=0
pg_paths() {
    PG_BASE=$DIR PG_FALLBACK=0
    if ((EUID == 0)) && id postgres >/dev/null 2>&1; then
        # Can postgres reach the data folder (or, before it exists, its closest
        # existing ancestor)? `test -x` needs search permission on every parent.
        local p=$DIR
        while [[ ! -e $p ]]; do p=$(dirname -- "$p"); done
        if ! as_pg test -x "$p"; then
            PG_BASE=$PG_FALLBACK_BASE PG_FALLBACK=1
        fi
    fi
    PGDATA_DIR=$PG_BASE/pg
    PG_LOG=$PG_BASE/pg.log
    PG_SOCKDIR=$PG_BASE/pg-socket
    # Unix socket paths are limited to ~107 bytes; a deep checkout can exceed it.
    local sock="$PG_SOCKDIR/.s.PGSQL.$PG_PORT.lock"
    if ((${#sock} > 100)); then
        PG_SOCKDIR=/tmp/mdm-pg-socket-$(id -u)-$PG_PORT
    fi
}

pg_prepare_dirs() {
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 ||
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres ||
            die "the postgres system user is missing and could not be created"
        pg_paths # the user may only exist now
        if ((PG_FALLBACK)); then
            log "note: user postgres cannot traverse $DIR; keeping PostgreSQL data in $PG_BASE"
        fi
        mkdir -p -- "$PG_BASE"
        ((PG_FALLBACK)) && chown postgres:postgres "$PG_BASE" && chmod 700 "$PG_BASE"
        mkdir -p -- "$PGDATA_DIR" "$PG_SOCKDIR"
        # A cluster created by another user would be refused by postgres.
        [[ $(stat -c %U "$PGDATA_DIR") == postgres ]] || chown -R postgres:postgres "$PGDATA_DIR"
        chown postgres:postgres "$PG_SOCKDIR"
        # pg_ctl (running as postgres) appends to the log; $DIR itself is root's.
        touch -- "$PG_LOG"
        chown postgres:postgres "$PG_LOG"
    else
        mkdir -p -- "$PGDATA_DIR" "$PG_SOCKDIR"
        touch -- "$PG_LOG"
    fi
    # initdb/postgres insist on 0700 (or 0750); the socket dir is private so
    # that only the cluster owner gets the trusted local superuser login.
    chmod 700 "$PGDATA_DIR" "$PG_SOCKDIR"
}

pg_init_if_needed() {
    local bin_ver
    bin_ver=$("$POSTGRES" --version | awk '{print $3}' | cut -d. -f1)
    if [[ -f $PGDATA_DIR/PG_VERSION ]]; then
        local data_ver
        data_ver=$(<"$PGDATA_DIR/PG_VERSION")
        [[ $data_ver == "$bin_ver" ]] ||
            die "$PGDATA_DIR holds a PostgreSQL $data_ver cluster but the binaries are $bin_ver; remove that folder to recreate it"
        return 0
    fi
    [[ -z $(ls -A -- "$PGDATA_DIR") ]] ||
        die "$PGDATA_DIR is not empty but holds no cluster (no PG_VERSION); remove it and retry"
    [[ $bin_ver == 15 ]] || log "warning: expected PostgreSQL 15, found $bin_ver"

    local locale=C
    locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
    log "initialising PostgreSQL cluster in $PGDATA_DIR"
    # Superuser `postgres` may log in without a password only over the private
    # unix socket; TCP (127.0.0.1 only) requires a password (mdm/mdm, or the
    # generated one in durable mode). --no-sync only for throwaway data.
    local nosync=(--no-sync)
    ((DURABLE)) && nosync=()
    if ! as_pg "$INITDB" -D "$PGDATA_DIR" -U postgres --encoding=UTF8 --locale="$locale" \
        --auth-local=trust --auth-host=scram-sha-256 "${nosync[@]}" >"$PG_BASE/initdb.log" 2>&1; then
        show_log_tail "$PG_BASE/initdb.log"
        die "initdb failed"
    fi
    # Our settings live in their own file, rewritten on each start.
    printf "\ninclude 'mdm-services.conf'\n" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

pg_write_conf() {
    # Test mode: fsync/synchronous_commit/full_page_writes off (throwaway data,
    # speed wins). Durable mode: the same three set back to the server's safe
    # defaults explicitly, so that a cluster once run in test mode is safe again.
    local safety=off
    ((DURABLE)) && safety=on
    as_pg tee "$PGDATA_DIR/mdm-services.conf" >/dev/null <<EOF
# Generated by scripts/services.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
max_connections = 200
fsync = $safety
synchronous_commit = $safety
full_page_writes = $safety
EOF
}

pg_pid() { # the postmaster's pid if our cluster is running
    local pid
    [[ -n $PGDATA_DIR && -f $PGDATA_DIR/postmaster.pid ]] || return 1
    pid=$(head -n 1 -- "$PGDATA_DIR/postmaster.pid" 2>/dev/null) || return 1
    pid_is "$pid" postgres || return 1
    echo "$pid"
}
pg_running() { pg_pid >/dev/null; }

pg_ready() { # something accepts PostgreSQL connections on 127.0.0.1:PORT
    if [[ -n $PG_ISREADY ]]; then
        timeout 10 "$PG_ISREADY" -q -h 127.0.0.1 -p "$PG_PORT" -t 3 >/dev/null 2>&1
    elif [[ -n $PSQL && -n $PG_SOCKDIR ]]; then
        # No pg_isready: ask over the socket (the TCP login needs a password).
        as_pg env PGCONNECT_TIMEOUT=3 timeout 10 "$PSQL" -X -qAt -h "$PG_SOCKDIR" -p "$PG_PORT" \
            -U postgres -d postgres -c 'select 1' >/dev/null 2>&1
    else
        return 1
    fi
}

pg_bootstrap() { # role mdm owning database mdm (test mode: CREATEDB, tests create test_mdm)
    local createdb=CREATEDB
    ((DURABLE)) && createdb=NOCREATEDB
    # The password is hex (durable) or "mdm": nothing to quote.
    if ! as_pg "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$PG_PORT" \
        -U postgres -d postgres >/dev/null <<SQL; then
SELECT 'CREATE ROLE mdm' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mdm')\\gexec
ALTER ROLE mdm WITH LOGIN $createdb PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE mdm OWNER mdm' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mdm')\\gexec
SQL
        die "could not create role/database mdm"
    fi
}

pg_start() {
    pg_paths
    pg_prepare_dirs
    pg_init_if_needed

    local pid
    if pid=$(pg_pid); then
        # Line 4 of postmaster.pid is the port it listens on.
        local running_port
        running_port=$(sed -n 4p "$PGDATA_DIR/postmaster.pid")
        [[ $running_port == "$PG_PORT" ]] ||
            die "PostgreSQL from $PGDATA_DIR already runs on port $running_port, not $PG_PORT; run '$0 stop' first"
        log "PostgreSQL already running (pid $pid, 127.0.0.1:$PG_PORT)"
    else
        pg_ready && die "port $PG_PORT already has a PostgreSQL server that this script did not start (data: $PGDATA_DIR is not running); stop it or set MDM_PG_PORT"
        # Leftovers of a server that died with its container. Removing them
        # matters when a reused pid makes the stale lock look alive.
        rm -f -- "$PGDATA_DIR/postmaster.pid" "$PG_SOCKDIR/.s.PGSQL.$PG_PORT" "$PG_SOCKDIR/.s.PGSQL.$PG_PORT.lock"
        pg_write_conf
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT (data: $PGDATA_DIR, log: $PG_LOG)"
        # 9>&- : the server must not inherit (and keep) our lock descriptor.
        if ! as_pg "$PG_CTL" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$READY_TIMEOUT" -s start 9>&-; then
            show_log_tail "$PG_LOG"
            die "PostgreSQL failed to start"
        fi
    fi

    if ! wait_for pg_ready pg_running; then
        show_log_tail "$PG_LOG"
        die "PostgreSQL exited or does not accept connections on 127.0.0.1:$PG_PORT (waited up to ${READY_TIMEOUT}s)"
    fi
    pg_bootstrap
    # The real check: log in the way the application will.
    local out
    out=$(PGCONNECT_TIMEOUT=5 timeout 15 "$PSQL" -X -qAt "$DATABASE_URL" -c 'select 1' 2>&1) ||
        die "cannot connect with $DATABASE_URL: $out"
    log "PostgreSQL ready: $DATABASE_URL"
}

pg_stop() {
    pg_paths
    local pid
    if ! pid=$(pg_pid); then
        log "PostgreSQL not running"
        return 0
    fi
    log "stopping PostgreSQL (pid $pid)"
    if ! as_pg "$PG_CTL" -D "$PGDATA_DIR" -m fast -w -t "$READY_TIMEOUT" -s stop; then
        show_log_tail "$PG_LOG"
        die "PostgreSQL did not stop"
    fi
}

# ---------------------------------------------------------------- Redis

redis_cli() { # REDISCLI_AUTH: the durable password, without showing it in the process list
    if [[ -n $REDIS_PASSWORD ]]; then
        REDISCLI_AUTH=$REDIS_PASSWORD timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null
    else
        timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null
    fi
}

REDIS_USER= # durable mode as root: redis-server runs as this user
as_redis() {
    if [[ -n $REDIS_USER ]]; then
        setpriv --reuid="$REDIS_USER" --regid="$REDIS_USER" --init-groups -- "$@"
    else
        "$@"
    fi
}

redis_prepare_dir() {
    mkdir -p -- "$REDIS_DIR"
    if ((DURABLE && EUID == 0)); then
        id redis >/dev/null 2>&1 ||
            useradd --system --user-group --home-dir /var/lib/redis --shell /usr/sbin/nologin redis ||
            die "the redis system user is missing and could not be created"
        REDIS_USER=redis
        chown -R redis:redis "$REDIS_DIR"
    fi
    # Durable data (and the password in redis.conf) is the server's only.
    if ((DURABLE)); then chmod 700 "$REDIS_DIR"; fi
}

redis_ready() { have_redis && [[ $(redis_cli ping) == PONG ]]; }

redis_pid() { # pid of our redis-server, from its pidfile
    local pid
    [[ -f $REDIS_DIR/redis.pid ]] || return 1
    pid=$(<"$REDIS_DIR/redis.pid") || return 1
    pid_is "$pid" redis-server || return 1
    echo "$pid"
}
redis_running() { redis_pid >/dev/null; }

redis_ours() { # the Redis answering on our port works in our directory
    local dir ours
    ours=$(cd -- "$REDIS_DIR" 2>/dev/null && pwd -P) || return 1
    dir=$(redis_cli --raw config get dir | sed -n 2p) || return 1
    [[ -n $dir && $dir == "$ours" ]]
}

redis_start() {
    redis_prepare_dir
    if redis_ready; then
        redis_ours || die "port $REDIS_PORT already has a Redis server that this script did not start; stop it or set MDM_REDIS_PORT"
        log "Redis already running (pid $(redis_pid || echo '?'), 127.0.0.1:$REDIS_PORT)"
        return 0
    fi
    # Test mode: persistence off (save "", appendonly no), the data is throwaway.
    # Durable mode: every write reaches the append-only file before Redis answers
    # (appendfsync always), so a power cut loses no queued task; RDB snapshots
    # as the server's defaults; a password.
    local persistence='save ""
appendonly no'
    if ((DURABLE)); then
        persistence="save 3600 1 300 100 60 10000
appendonly yes
appendfsync always
requirepass $REDIS_PASSWORD"
    fi
    (umask 077 && cat >"$REDIS_DIR/redis.conf") <<EOF
# Generated by scripts/services.sh on every start; edits are overwritten.
bind 127.0.0.1
protected-mode yes
port $REDIS_PORT
daemonize yes
supervised no
pidfile "$REDIS_DIR/redis.pid"
logfile "$REDIS_DIR/redis.log"
dir "$REDIS_DIR"
dbfilename dump.rdb
$persistence
EOF
    [[ -z $REDIS_USER ]] || chown "$REDIS_USER:" "$REDIS_DIR/redis.conf"
    log "starting Redis on 127.0.0.1:$REDIS_PORT (dir: $REDIS_DIR)"
    local out
    # 9>&- : the daemon must not inherit (and keep) our lock descriptor.
    out=$(as_redis redis-server "$REDIS_DIR/redis.conf" 2>&1 9>&-) || {
        printf '%s\n' "$out" >&2
        show_log_tail "$REDIS_DIR/redis.log"
        die "redis-server failed to start"
    }
    if ! wait_for redis_ready redis_running; then
        show_log_tail "$REDIS_DIR/redis.log"
        die "Redis exited or does not answer PING on 127.0.0.1:$REDIS_PORT (waited up to ${READY_TIMEOUT}s)"
    fi
    log "Redis ready: $REDIS_URL"
}

redis_stop() {
    local pid=
    pid=$(redis_pid) || pid=
    if redis_ready && redis_ours; then
        log "stopping Redis${pid:+ (pid $pid)}"
        # Durable: SHUTDOWN SAVE flushes the append-only file and snapshots.
        local how=nosave
        ((DURABLE)) && how=save
        redis_cli shutdown "$how" >/dev/null || true
    elif [[ -n $pid ]]; then
        log "stopping Redis (pid $pid, not answering)"
        kill -TERM "$pid" 2>/dev/null || true
    else
        if redis_ready; then
            log "Redis from $REDIS_DIR not running (a Redis this script did not start answers on port $REDIS_PORT; leaving it alone)"
        else
            log "Redis not running"
        fi
        return 0
    fi
    local start=$SECONDS
    while redis_running || (redis_ready && redis_ours); do
        if ((SECONDS - start > 15)); then
            pid=$(redis_pid) && kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- commands

take_lock() { # serialise concurrent start/stop runs (e.g. two test jobs at once)
    mkdir -p -- "$DIR"
    exec 9>>"$DIR/.lock"
    flock -w "$LOCK_WAIT" 9 || die "another '$0' run holds $DIR/.lock for more than ${LOCK_WAIT}s"
}

cmd_start() {
    take_lock
    ensure_installed
    pg_start
    redis_start
    log "both services are up; use: eval \"\$($0 env)\""
}

cmd_stop() {
    take_lock
    detect_pg
    if [[ -n $PG_CTL ]]; then pg_stop; else log "PostgreSQL binaries not found; nothing to stop"; fi
    if have_redis; then redis_stop; else log "redis-cli not found; nothing to stop"; fi
}

cmd_status() {
    local rc=0 pid
    detect_pg
    pg_paths
    if pid=$(pg_pid) && pg_ready; then
        echo "postgresql: running (pid $pid) on 127.0.0.1:$PG_PORT, data $PGDATA_DIR"
    elif pid=$(pg_pid); then
        echo "postgresql: process running (pid $pid) but not accepting connections on 127.0.0.1:$PG_PORT"
        rc=1
    elif pg_ready; then
        echo "postgresql: NOT running from $PGDATA_DIR, but another server answers on port $PG_PORT"
        rc=1
    else
        echo "postgresql: not running"
        rc=1
    fi
    if redis_ready && redis_ours; then
        echo "redis: running (pid $(redis_pid || echo '?')) on 127.0.0.1:$REDIS_PORT, dir $REDIS_DIR"
    elif redis_ready; then
        echo "redis: NOT running from $REDIS_DIR, but another server answers on port $REDIS_PORT"
        rc=1
    elif pid=$(redis_pid); then
        echo "redis: process running (pid $pid) but not answering PING on 127.0.0.1:$REDIS_PORT"
        rc=1
    else
        echo "redis: not running"
        rc=1
    fi
    return "$rc"
}

cmd_env() {
    echo "export DATABASE_URL=$DATABASE_URL"
    echo "export REDIS_URL=$REDIS_URL"
    detect_pg
    pg_paths
    if ! pg_ready || ! redis_ready; then
        log "warning: the services are not (all) running; run: $0 start"
        return 1
    fi
}

urls
case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH" ;;
*)
    log "usage: $0 [start|stop|status|env]"
    DIED=1
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The portal the production way: nginx terminating TLS in front of gunicorn, Celery worker
# and beat, on PostgreSQL and Redis. One machine by default; --web-only / --workers-only for
# deployments over several machines sharing one PostgreSQL and one Redis.
#
# Usage: scripts/serve.sh start|stop|status|env [--web-only|--workers-only]
#   start   install what is missing (Debian's nginx, PostgreSQL 15, Redis), start PostgreSQL
#           and Redis (scripts/services.sh in its durable mode) unless DATABASE_URL and
#           REDIS_URL point elsewhere, migrate, mdm_init, collectstatic, then gunicorn on a
#           unix socket behind nginx (TLS on MDM_HTTPS_PORT), the Celery worker and beat.
#           Idempotent: what runs is left running (nginx reloads on a new configuration or
#           certificate, e.g. after a renewal).
#   stop    stop everything start started and wait until every process of it has exited;
#           with --web-only / --workers-only only that part (PostgreSQL and Redis keep running
#           while anything else does): `start` then brings back what is stopped.
#   status  what runs; exit 0 only if every part of the stack does.
#   env     the exports with which `.venv/bin/python manage.py ...` talks to the stack:
#             eval "$(scripts/serve.sh env)"
#   --web-only / --workers-only  nginx and gunicorn (and migrate, mdm_init, collectstatic) /
#                   the Celery worker, and beat unless MDM_CELERY_BEAT=0
#   (both need DATABASE_URL, REDIS_URL, SECRET_KEY, MDM_SECRETS_KEY and MDM_PUBLIC_URL set)
#
# Environment (the portal's own settings are in the README's Configuration table; every
# MDM_*, DJANGO_*, SECRET_KEY, LOG_LEVEL, DB_CONN_MAX_AGE, DB_CONN_HEALTH_CHECKS, ALLOWED_HOSTS and
# CSRF_TRUSTED_ORIGINS variable set here is passed on to the portal's processes):
#   MDM_PUBLIC_URL          https://<host>:<MDM_HTTPS_PORT> (no port when 443); <host> is the
#                           machine's name (hostname -f) when it has a dot, else localhost
#   MDM_HTTPS_PORT          8443
#   MDM_TLS_CERT_FILE, MDM_TLS_KEY_FILE  the chain and key nginx serves (copied in at each
#                           start); unset: the portal's own, made by mdm_init
#   MDM_CLIENT_CERT_HEADER  X-Ssl-Client-Cert (the header nginx forwards the certificate in)
#   MDM_WEB_WORKERS, MDM_CELERY_WORKERS  gunicorn processes (2 per core), Celery's (1)
#   MDM_CELERY_BEAT         1; 0 where beat must not run (exactly one machine runs it)
#   MDM_SERVE_DIR           <repo>/var/production
#   MDM_SERVE_USER          mdm: the unprivileged user of the web and worker processes when
#                           run as root (created if missing); else the user running this
#   MDM_SERVE_PG_PORT, MDM_SERVE_REDIS_PORT  55433, 56380 (the local PostgreSQL and Redis)
#   MDM_SERVE_VENV          MDM_SERVE_DIR/venv: the service's own venv, when it can't run .venv's
#   MDM_STOP_TIMEOUT        30: seconds each part gets to exit before it is killed
# Under MDM_SERVE_DIR: data/ (MDM_DATA_DIR), tls/ (what nginx serves), run/ (pids, socket),
# log/, nginx/, services/ (PostgreSQL and Redis data), stack.env, admin-login.txt.
set -euo pipefail
umask 022 # a fresh .venv and the repository's files must be readable by the service user

SCRIPT_PATH=$(readlink -f -- "${BASH_SOURCE[0]}")
ROOT=$(dirname -- "$(dirname -- "$SCRIPT_PATH")")
VENV=$ROOT/.venv # the service's: .venv, or venv/ in MDM_SERVE_DIR (see choose_venv)
CMD=${1:-}
[[ $# -gt 0 ]] && shift
MODE=all
for arg in "$@"; do
    case $arg in
    --web-only) MODE=web ;;
    --workers-only) MODE=workers ;;
    *) CMD=usage ;;
    esac
done

SERVE_DIR=${MDM_SERVE_DIR:-$ROOT/var/production}
[[ $SERVE_DIR == /* ]] || SERVE_DIR=$PWD/$SERVE_DIR
RUN=$SERVE_DIR/run LOG=$SERVE_DIR/log TLS=$SERVE_DIR/tls NGINX_DIR=$SERVE_DIR/nginx
STATE_FILE=$SERVE_DIR/serve.state STACK_ENV_FILE=$SERVE_DIR/stack.env
ADMIN_FILE=$SERVE_DIR/admin-login.txt
STOP_TIMEOUT=${MDM_STOP_TIMEOUT:-30}
APT_LOCK_WAIT=120
COMPONENTS=(nginx gunicorn beat worker) # stop order: the front first, the queue last
STACK_ENV=() RUNTIME_ENV=() DROP=() STARTED=()
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

log() { printf '[serve] %s\n' "$*" >&2; }
die() {
    printf '[serve] ERROR: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/processes.sh
source "$ROOT/scripts/processes.sh"

as_user() { # as_user CMD...: the command as the service user, with the stack's environment only
    (cd "$ROOT" && exec env -i "${RUNTIME_ENV[@]}" "${STACK_ENV[@]}" "${DROP[@]}" "$@" 8>&-)
}

manage() { as_user "$VENV/bin/python" "$ROOT/manage.py" "$@"; }

# ------------------------------------------------------------------ settings

default_public_url() {
    local host
    host=$(hostname -f 2>/dev/null || hostname 2>/dev/null || true)
    [[ $host == *.* ]] || host=localhost
    if [[ $HTTPS_PORT == 443 ]]; then echo "https://$host"; else echo "https://$host:$HTTPS_PORT"; fi
}

decide_settings() { # what a first start decides; saved in serve.state, reused while it runs
    HTTPS_PORT=${MDM_HTTPS_PORT:-8443}
    PUBLIC_URL=${MDM_PUBLIC_URL:-$(default_public_url)}
    CERT_HEADER=${MDM_CLIENT_CERT_HEADER:-X-Ssl-Client-Cert}
    WEB_WORKERS=${MDM_WEB_WORKERS:-$((2 * $(nproc)))}
    CELERY_WORKERS=${MDM_CELERY_WORKERS:-1}
    CELERY_BEAT=${MDM_CELERY_BEAT:-1}
    PG_PORT=${MDM_SERVE_PG_PORT:-55433}
    REDIS_PORT=${MDM_SERVE_REDIS_PORT:-56380}
    TLS_SOURCE_CERT=${MDM_TLS_CERT_FILE:-${MDM_TLS_CHAIN_FILE:-}}
    TLS_SOURCE_KEY=${MDM_TLS_KEY_FILE:-}
    DATA=${MDM_DATA_DIR:-$SERVE_DIR/data}
    SERVE_USER=${MDM_SERVE_USER:-mdm}
    ((EUID == 0)) || SERVE_USER=$(id -un)
    DATABASE_URL=${DATABASE_URL:-} REDIS_URL=${REDIS_URL:-}
    LOCAL_SERVICES=0
    [[ -n $DATABASE_URL && -n $REDIS_URL ]] || LOCAL_SERVICES=1
    # The URLs of this stack's own services (a shell that ran `eval "$(serve.sh env)"`).
    [[ $DATABASE_URL == *@127.0.0.1:$PG_PORT/* && $REDIS_URL == *@127.0.0.1:$REDIS_PORT/* ]] &&
        LOCAL_SERVICES=1
    SAVED_MODE=$MODE SAVED_VENV=

    local n
    for n in HTTPS_PORT WEB_WORKERS CELERY_WORKERS PG_PORT REDIS_PORT; do
        [[ ${!n} =~ ^[0-9]+$ ]] && ((${!n} > 0)) || die "$n must be a positive number, not '${!n}'"
    done
    [[ $CELERY_BEAT == [01] ]] || die "MDM_CELERY_BEAT must be 1 or 0"
    [[ $CERT_HEADER =~ ^[A-Za-z][A-Za-z0-9-]*$ ]] ||
        die "MDM_CLIENT_CERT_HEADER must be letters, digits and dashes (nginx drops underscores)"
    [[ $PUBLIC_URL == https://* ]] || die "MDM_PUBLIC_URL must be https (devices talk to an MDM over HTTPS only)"
    [[ -n $TLS_SOURCE_CERT && -z $TLS_SOURCE_KEY && $MODE != workers ]] &&
        die "MDM_TLS_CERT_FILE is set but MDM_TLS_KEY_FILE is not: nginx needs both"
    [[ -z $TLS_SOURCE_CERT && -n $TLS_SOURCE_KEY ]] && die "MDM_TLS_KEY_FILE is set but MDM_TLS_CERT_FILE is not"
    if [[ $MODE != all ]]; then
        for n in DATABASE_URL REDIS_URL SECRET_KEY MDM_SECRETS_KEY MDM_PUBLIC_URL; do
            [[ -n ${!n:-} ]] || die "--$MODE-only shares one database with other machines: set $n (the same on every machine)"
        done
    fi
    return 0
}

STATE_VARS=(HTTPS_PORT PUBLIC_URL CERT_HEADER WEB_WORKERS CELERY_WORKERS CELERY_BEAT PG_PORT
    REDIS_PORT TLS_SOURCE_CERT TLS_SOURCE_KEY DATA SERVE_USER LOCAL_SERVICES SAVED_MODE SAVED_VENV)
save_state() {
    local name
    (umask 077 && for name in "${STATE_VARS[@]}"; do printf '%s=%q\n' "$name" "${!name}"; done >"$STATE_FILE")
    (umask 077 && printf '%s\n' "${STACK_ENV[@]}" >"$STACK_ENV_FILE")
}

load_state() { # the settings of the stack that runs (or ran) from this folder
    [[ -f $STATE_FILE ]] || return 1
    [[ -r $STATE_FILE ]] || die "$STATE_FILE is $(stat -c %U "$STATE_FILE")'s: run this as that user"
    # shellcheck disable=SC1090
    source "$STATE_FILE"
    VENV=${SAVED_VENV:-$ROOT/.venv}
    STACK_ENV=()
    [[ -f $STACK_ENV_FILE ]] && mapfile -t STACK_ENV <"$STACK_ENV_FILE"
    set_runtime
}

set_runtime() {
    RUNTIME_ENV=(PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME="$DATA" LANG=C.UTF-8
        PYTHONPATH="$ROOT" PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=mdm_portal.settings)
    DROP=()
    ((EUID == 0)) && DROP=(/usr/bin/setpriv --reuid="$SERVE_USER" --regid="$SERVE_USER" --init-groups --)
    return 0
}

services() { # services CMD: scripts/services.sh in its durable mode, on the stack's own ports
    env MDM_SERVICES_DURABLE=1 MDM_SERVICES_DIR="$SERVE_DIR/services" MDM_PG_PORT="$PG_PORT" \
        MDM_REDIS_PORT="$REDIS_PORT" "$ROOT/scripts/services.sh" "$1" 8>&-
}

compose_env() { # the processes' settings: the caller's portal settings, then serve.sh's
    local entry name
    STACK_ENV=()
    while IFS= read -r -d '' entry; do
        name=${entry%%=*}
        case $name in
        MDM_SERVE_* | MDM_SERVICES_* | MDM_PG_PORT | MDM_REDIS_PORT | MDM_HTTPS_PORT | MDM_WEB_WORKERS | \
            MDM_CELERY_WORKERS | MDM_CELERY_BEAT | MDM_STOP_TIMEOUT | MDM_TLS_* | MDM_DATA_DIR | \
            MDM_PUBLIC_URL | MDM_CLIENT_CERT_HEADER | MDM_REAL_IP_HEADER) continue ;;
        MDM_* | DJANGO_* | SECRET_KEY | LOG_LEVEL | DB_CONN_MAX_AGE | DB_CONN_HEALTH_CHECKS | ALLOWED_HOSTS | CSRF_TRUSTED_ORIGINS)
            [[ $entry != *$'\n'* ]] || die "$name holds a line break"
            STACK_ENV+=("$entry")
            ;;
        esac
    done < <(env -0)
    STACK_ENV+=(DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" MDM_DATA_DIR="$DATA"
        MDM_PUBLIC_URL="$PUBLIC_URL" MDM_CLIENT_CERT_HEADER="$CERT_HEADER" MDM_REAL_IP_HEADER=X-Real-Ip)
    if [[ -n $TLS_SOURCE_CERT ]]; then
        STACK_ENV+=(MDM_TLS_CERT_FILE="$TLS/chain.pem")
        [[ $MODE == workers ]] || STACK_ENV+=(MDM_TLS_KEY_FILE="$TLS/key.pem")
    fi
    return 0
}

# ------------------------------------------------------------------ preparing the machine

ensure_packages() {
    local pkgs=()
    [[ $MODE == workers ]] || [[ -x $NGINX_BIN && -f /etc/nginx/mime.types ]] || pkgs+=(nginx)
    command -v setsid >/dev/null && command -v flock >/dev/null || pkgs+=(util-linux)
    ((${#pkgs[@]})) || return 0
    ((EUID == 0)) || die "missing: ${pkgs[*]} (apt-get install ${pkgs[*]}, or run this as root)"
    # shellcheck source=scripts/apt.sh
    source "$ROOT/scripts/apt.sh"
    log "installing ${pkgs[*]}..."
    if ! apt_get install -y --no-install-recommends "${pkgs[@]}" 8>&-; then
        apt_get update 8>&- || { printf '%s\n' "$APT_OUT" >&2 && die "apt-get update failed"; }
        apt_get install -y --no-install-recommends "${pkgs[@]}" 8>&- ||
            { printf '%s\n' "$APT_OUT" >&2 && die "could not install ${pkgs[*]}"; }
    fi
    NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
}

ensure_user() {
    ((EUID == 0)) || return 0
    id "$SERVE_USER" >/dev/null 2>&1 && return 0
    log "creating the system user $SERVE_USER"
    useradd --system --user-group --home-dir "$SERVE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVE_USER" || die "could not create the user $SERVE_USER"
}

own_dir() { # own_dir MODE OWNER DIR...: create, owned by OWNER (root only), with MODE
    local mode=$1 owner=$2 dir
    shift 2
    for dir in "$@"; do
        mkdir -p -- "$dir"
        ((EUID == 0)) && chown "$owner:$owner" "$dir"
        chmod "$mode" "$dir"
    done
}

prepare_dirs() {
    local me=$SERVE_USER
    ((EUID == 0)) && me=root
    own_dir 755 "$me" "$SERVE_DIR" "$NGINX_DIR"
    # Keys and data: the service user's only (a restored secrets_key put there by root too).
    own_dir 700 "$SERVE_USER" "$DATA" "$TLS" "$RUN" "$NGINX_DIR/client-body" "$NGINX_DIR/proxy" \
        "$NGINX_DIR/fastcgi" "$NGINX_DIR/uwsgi" "$NGINX_DIR/scgi"
    ((EUID == 0)) && chown -R "$SERVE_USER:$SERVE_USER" "$DATA" "$TLS"
    own_dir 750 "$SERVE_USER" "$LOG"
    local name
    for name in "${COMPONENTS[@]}" nginx-access nginx-error; do
        [[ -e $LOG/$name.log ]] || install -m 0640 /dev/null "$LOG/$name.log"
        ((EUID == 0)) && chown "$SERVE_USER:$SERVE_USER" "$LOG/$name.log"
    done
    return 0
}

choose_venv() { # a virtual environment whose Python the service user can run
    local python
    ((EUID == 0)) || return 0
    python=$(readlink -f -- "$ROOT/.venv/bin/python")
    if setpriv --reuid="$SERVE_USER" --regid="$SERVE_USER" --init-groups -- test -x "$python"; then
        VENV=$ROOT/.venv
        return 0
    fi
    # E.g. .venv made from a Python under /root (pyenv): the service's own, system Python.
    VENV=${MDM_SERVE_VENV:-$SERVE_DIR/venv}
    log "user $SERVE_USER cannot run .venv's Python ($python): using $VENV (system Python)"
    if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
        # shellcheck source=scripts/apt.sh
        source "$ROOT/scripts/apt.sh"
        apt_get install -y --no-install-recommends python3-venv 8>&- ||
            { printf '%s\n' "$APT_OUT" >&2 && die "could not install python3-venv"; }
    fi
    (MDM_VENV=$VENV PYTHON=/usr/bin/python3 && source "$ROOT/scripts/bootstrap.sh" >&2 8>&-) ||
        die "could not create $VENV"
}

check_access() { # the service user can read the code and run the virtual environment
    local out
    out=$(as_user "$VENV/bin/python" -c 'import django, gunicorn, mdm_portal.settings' 2>&1) ||
        die "user $SERVE_USER cannot run the portal from $ROOT: $out
Put the repository where $SERVE_USER can read it (e.g. /opt/mdm-portal; every parent folder
must be traversable) and keep its files world-readable (umask 022)."
}

# ------------------------------------------------------------------ the web side

prepare_database() { # migrations, key material, the first admin, static files
    log "migrating the database"
    manage migrate --noinput >"$LOG/migrate.log" 2>&1 || { tail -n 20 "$LOG/migrate.log" >&2 && die "migrate failed"; }
    log "creating the key material (mdm_init)"
    local out created
    out=$(manage mdm_init --demo-admin admin 2>&1) || { printf '%s\n' "$out" >&2 && die "mdm_init failed"; }
    printf '%s\n' "$out" | grep -v "admin user created" | sed 's/^/    /' >&2
    if created=$(printf '%s\n' "$out" | grep -o 'admin user created: .*'); then
        (umask 077 && echo "${created#admin user created: }" >"$ADMIN_FILE")
    fi
    manage collectstatic --noinput >"$LOG/collectstatic.log" 2>&1 ||
        { tail -n 20 "$LOG/collectstatic.log" >&2 && die "collectstatic failed"; }
}

copy_private() { # copy_private SRC DST: a copy for the service user only
    [[ -r $1 ]] || die "cannot read $1"
    if ((EUID == 0)); then
        install -m 0600 -o "$SERVE_USER" -g "$SERVE_USER" -- "$1" "$2"
    else
        install -m 0600 -- "$1" "$2"
    fi
}

prepare_tls() { # what nginx serves and asks for, into tls/; warnings about the chain
    if [[ -n $TLS_SOURCE_CERT ]]; then
        copy_private "$TLS_SOURCE_CERT" "$TLS/chain.pem"
        [[ $MODE == workers ]] || copy_private "$TLS_SOURCE_KEY" "$TLS/key.pem"
    elif [[ $MODE != workers ]]; then
        manage mdm_tls export --chain "$TLS/chain.pem" --key "$TLS/key.pem" >/dev/null
    fi
    [[ $MODE == workers ]] || manage mdm_tls export --client-ca "$TLS/device-ca.pem" >/dev/null
    TLS_WARNINGS=$(manage mdm_tls check) || die "mdm_tls check failed"
}

portal_limits() { # the portal's own body limits, so nginx refuses exactly what it would
    manage shell -v 0 -c "from django.conf import settings as s; from certs.scep_codec import \
MAX_MESSAGE_BYTES as scep; print(s.MDM_CHECKIN_MAX_BYTES, s.MDM_CONNECT_MAX_BYTES, scep, \
s.MDM_PROFILE_MAX_BYTES + 65536, s.STATIC_ROOT)"
}

render_nginx_conf() {
    local checkin connect scep ui static text header cleared="" listen_v6="" user_line=""
    read -r checkin connect scep ui static < <(portal_limits) || die "cannot read the portal's limits"
    for header in Client-Cert Client-Cert-Chain X-Client-Cert X-Ssl-Cert X-Ssl-Client-Cert \
        X-Forwarded-Client-Cert X-Forwarded-Host X-Forwarded-Protocol X-Forwarded-Ssl \
        X-Url-Scheme Forwarded; do
        [[ ${header,,} == "${CERT_HEADER,,}" ]] || cleared+="        proxy_set_header $header \"\";"$'\n'
    done
    [[ -s /proc/net/if_inet6 ]] && listen_v6="        listen [::]:$HTTPS_PORT ssl http2;"
    ((EUID == 0)) && user_line="user $SERVE_USER $SERVE_USER;"
    text=$(<"$ROOT/scripts/nginx.conf.template")
    shopt -u patsub_replacement 2>/dev/null || true # '&' in a value stays '&'
    text=${text//@USER_DIRECTIVE@/$user_line}
    text=${text//@LISTEN_V6@/$listen_v6}
    text=${text//@CLEARED_HEADERS@/${cleared%$'\n'}}
    text=${text//@CERT_HEADER@/$CERT_HEADER}
    text=${text//@HTTPS_PORT@/$HTTPS_PORT}
    text=${text//@CHECKIN_MAX@/$checkin}
    text=${text//@CONNECT_MAX@/$connect}
    text=${text//@SCEP_MAX@/$scep}
    text=${text//@UI_MAX@/$ui}
    text=${text//@STATIC@/$static}
    text=${text//@RUN@/$RUN}
    text=${text//@LOG@/$LOG}
    text=${text//@TLS@/$TLS}
    text=${text//@NGINX@/$NGINX_DIR}
    printf '%s\n' "$text" >"$NGINX_DIR/nginx.conf"
    nginx_cmd -t -q 2>"$LOG/nginx-test.log" || { cat "$LOG/nginx-test.log" >&2 && die "nginx rejects $NGINX_DIR/nginx.conf"; }
}

nginx_cmd() { "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$LOG/nginx-error.log" "$@"; }

web_fingerprint() { { cat -- "$NGINX_DIR/nginx.conf" "$TLS"/*.pem 2>/dev/null || true; } | sha256sum; }

https_ready() { # the portal answers through nginx on loopback
    "$VENV/bin/python" - "$HTTPS_PORT" <<'PY' >/dev/null 2>&1
import ssl, sys, urllib.request
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # liveness, not trust
url = f"https://127.0.0.1:{sys.argv[1]}/admin/login/"
assert urllib.request.urlopen(url, timeout=3, context=context).status == 200
PY
}

wait_until() { # wait_until WHAT SECONDS CHECK...: poll, failing when a component died
    local what=$1 limit=$2 start=$SECONDS name
    shift 2
    until "$@"; do
        for name in "${STARTED[@]}"; do
            alive "$name" >/dev/null || { tail -n 30 "$LOG/$name.log" >&2 && die "$name exited (log: $LOG/$name.log)"; }
        done
        ((SECONDS - start < limit)) || die "$what: not ready after ${limit}s (logs: $LOG)"
        sleep 0.5
    done
}

# ------------------------------------------------------------------ commands

wants() { # wants NAME: the component belongs to this machine's role
    case $1 in
    nginx | gunicorn) [[ $MODE != workers ]] ;;
    worker) [[ $MODE != web ]] ;;
    beat) [[ $MODE != web && $CELERY_BEAT == 1 ]] ;;
    esac
}

any_alive() {
    local name
    for name in "${COMPONENTS[@]}"; do alive "$name" >/dev/null && return 0; done
    return 1
}

take_lock() {
    mkdir -p -- "$SERVE_DIR"
    exec 8>>"$SERVE_DIR/.lock"
    flock -w 120 8 || die "another serve.sh holds $SERVE_DIR/.lock"
}

start_failed() { # a start that fails takes back what it launched (not what ran before it)
    local rc=$? i
    ((rc != 0 && ${#LAUNCHED[@]})) || return 0
    log "start failed: stopping what it started (${LAUNCHED[*]})"
    for ((i = ${#LAUNCHED[@]} - 1; i >= 0; i--)); do stop_component "${LAUNCHED[i]}" TERM; done
}

cmd_start() {
    take_lock
    trap start_failed EXIT
    if any_alive && load_state; then
        MODE=$SAVED_MODE
        log "the stack in $SERVE_DIR already runs: keeping its settings (stop it to change them)"
    else
        decide_settings
    fi
    ensure_packages
    ensure_user
    prepare_dirs
    [[ -n ${SAVED_VENV:-} ]] && VENV=$SAVED_VENV || choose_venv
    SAVED_VENV=$VENV
    set_runtime
    if ((LOCAL_SERVICES)); then
        services start || die "PostgreSQL/Redis did not start (scripts/services.sh, durable mode)"
        local urls db=${DATABASE_URL:-} broker=${REDIS_URL:-}
        urls=$(services env) || die "cannot read the services' URLs"
        eval "$urls" # the exports of DATABASE_URL and REDIS_URL (hex passwords)
        # One of the two may be elsewhere: the caller's wins.
        DATABASE_URL=${db:-$DATABASE_URL} REDIS_URL=${broker:-$REDIS_URL}
    fi
    [[ ${#STACK_ENV[@]} -gt 0 ]] || compose_env
    save_state
    check_access

    local before="" name worker_log_size=""
    if [[ $MODE != workers ]]; then
        prepare_database
        alive nginx >/dev/null && before=$(web_fingerprint) # to reload a running nginx
        prepare_tls
        render_nginx_conf
    else
        manage migrate --check >/dev/null 2>&1 ||
            die "the database is not migrated: start a web machine (serve.sh start --web-only) first"
        prepare_tls
    fi

    if wants nginx && ! alive nginx >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$HTTPS_PORT") 2>/dev/null; then
        die "port $HTTPS_PORT is in use by another program: stop it, or choose MDM_HTTPS_PORT"
    fi
    STARTED=()
    for name in gunicorn nginx worker beat; do
        wants "$name" || continue
        if alive "$name" >/dev/null; then
            STARTED+=("$name")
            continue
        fi
        case $name in
        gunicorn)
            rm -f -- "$RUN/gunicorn.sock"
            # Replaced after 200,000 requests (a leak stays bounded): a new one relearns the fleet.
            launch gunicorn "$VENV/bin/gunicorn" mdm_portal.wsgi:application \
                --bind "unix:$RUN/gunicorn.sock" --umask 0077 --workers "$WEB_WORKERS" \
                --timeout 75 --graceful-timeout 30 --limit-request-line 0 \
                --limit-request-field_size 16384 --max-requests 200000 \
                --max-requests-jitter 20000 --chdir "$ROOT" --error-logfile -
            ;;
        nginx)
            wait_until "gunicorn" 60 test -S "$RUN/gunicorn.sock"
            launch nginx "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$LOG/nginx-error.log"
            ;;
        worker)
            worker_log_size=$(stat -c %s "$LOG/worker.log")
            launch worker "$VENV/bin/celery" -A mdm_portal worker -l info \
                --concurrency "$CELERY_WORKERS" -n "worker@%h"
            ;;
        beat) launch beat "$VENV/bin/celery" -A mdm_portal beat -l info ;;
        esac
        STARTED+=("$name")
    done
    reload_if_changed "$before"
    if wants nginx; then wait_until "the portal over https" 90 https_ready; fi
    if [[ -n $worker_log_size ]]; then
        wait_until "the Celery worker" 90 worker_ready "$worker_log_size"
    fi
    summary
}

worker_ready() { tail -c +$(($1 + 1)) "$LOG/worker.log" | grep -q ' ready\.'; }

reload_if_changed() { # nginx already ran: reload it if its configuration or certificate changed
    local pid
    [[ $MODE != workers && -n $1 ]] || return 0
    pid=$(alive nginx) || return 0
    [[ $1 != "$(web_fingerprint)" ]] || return 0
    log "nginx configuration or certificate changed: reloading nginx"
    kill -HUP "$pid"
}

stack_value() { # stack_value NAME: the setting the stack's processes run with
    local entry
    for entry in "${STACK_ENV[@]}"; do [[ $entry == "$1="* ]] && echo "${entry#*=}" && return; done
    return 0
}

hide_password() { sed -E 's#://[^@/]*@#://…@#' <<<"$1"; }

summary() {
    local admin="admin (its password was set before; not kept here)"
    [[ -f $ADMIN_FILE ]] && admin="$(cat "$ADMIN_FILE")   (kept in $ADMIN_FILE: change it, then delete that file)"
    echo
    echo "The MDM portal runs the production way ($MODE: $(for n in "${STARTED[@]}"; do printf '%s ' "$n"; done)as $SERVE_USER)."
    if [[ $MODE != workers ]]; then
        cat <<MSG
  Portal:            $PUBLIC_URL/   (admin: $PUBLIC_URL/admin/)
  Check-in URL:      $PUBLIC_URL/mdm/checkin
  Server URL:        $PUBLIC_URL/mdm/connect
  SCEP URL:          $PUBLIC_URL/scep
  Admin login:       $admin
MSG
    fi
    cat <<MSG
  Database, broker:  $(hide_password "$(stack_value DATABASE_URL)"), $(hide_password "$(stack_value REDIS_URL)")
  Data:              $DATA (back up the database and MDM_SECRETS_KEY: see the README)
  Logs:              $LOG/{nginx-access,nginx-error,gunicorn,worker,beat}.log
  manage.py:         eval "\$($0 env)"; .venv/bin/python manage.py ...
  Stop it with:      $0 stop
MSG
    if [[ -n ${TLS_WARNINGS:-} ]]; then
        echo
        printf '%s\n' "$TLS_WARNINGS" | sed 's/^warning: /WARNING: /'
    fi
}

cmd_stop() {
    take_lock
    if ! load_state; then
        log "nothing was started from $SERVE_DIR"
        return 0
    fi
    local name
    for name in "${COMPONENTS[@]}"; do
        [[ $MODE == all ]] || wants "$name" || continue # --web-only / --workers-only: that part
        case $name in
        nginx) stop_component nginx QUIT ;;
        *) stop_component "$name" TERM ;;
        esac
    done
    [[ $MODE == workers ]] || rm -f -- "$RUN/gunicorn.sock"
    if [[ $MODE != all ]] && any_alive; then # the rest runs (start brings the part back)
        log "stopped the $MODE side; the rest of the stack runs"
        return 0
    fi
    if ((LOCAL_SERVICES)); then services stop; fi
    log "stopped: no process of the stack is left"
}

cmd_status() {
    load_state || {
        echo "not started from $SERVE_DIR"
        return 1
    }
    MODE=$SAVED_MODE
    local rc=0 name pid
    echo "stack in $SERVE_DIR ($MODE, as $SERVE_USER): $PUBLIC_URL"
    for name in gunicorn nginx worker beat; do
        wants "$name" || continue
        if pid=$(alive "$name"); then
            echo "$name: running (pid $pid, $(members "$name" | wc -l) processes)"
        else
            echo "$name: not running"
            rc=1
        fi
    done
    if wants nginx && alive nginx >/dev/null; then
        https_ready && echo "https: answering on port $HTTPS_PORT" || { echo "https: NOT answering on port $HTTPS_PORT" && rc=1; }
    fi
    if ((LOCAL_SERVICES)); then services status || rc=1; fi
    return "$rc"
}

cmd_env() {
    load_state || die "not started from $SERVE_DIR: run $0 start"
    local entry
    for entry in "${STACK_ENV[@]}"; do printf 'export %s=%q\n' "${entry%%=*}" "${entry#*=}"; done
    any_alive || {
        log "warning: the stack is not running; run: $0 start"
        return 1
    }
}

case $CMD in
start)
    [[ -x $VENV/bin/python ]] || log "first start: creating the virtual environment"
    # shellcheck source=scripts/bootstrap.sh
    source "$ROOT/scripts/bootstrap.sh" >&2
    VENV=$ROOT/.venv
    cmd_start
    ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH" ;;
*)
    log "usage: $0 start|stop|status|env [--web-only|--workers-only]"
    exit 2
    ;;
esac

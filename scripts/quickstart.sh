#!/usr/bin/env bash
# One command from a fresh clone to a running portal on the embedded default (SQLite, no Redis):
# virtual environment, install, migrations, the CA (mdm_init), a demo admin, then the web server,
# a Celery worker and celery beat on loopback.
#
#   scripts/quickstart.sh              run in the foreground (Ctrl-C stops everything)
#   scripts/quickstart.sh --detach     start in the background and return
#   scripts/quickstart.sh --demo [N]   also a demo without Apple: a demo push certificate (unless
#                                      one from Apple is imported), a local APNs stand-in and N
#                                      simulated devices (default 25) that stay enrolled and
#                                      answer commands (python manage.py mdm_simulate)
#   scripts/quickstart.sh stop         stop what --detach started (the simulator too)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HOST="${MDM_HOST:-127.0.0.1}"
PORT="${MDM_PORT:-8000}"
DATA="${MDM_DATA_DIR:-$ROOT/var}"
RUN="$DATA/run"
STOP_TIMEOUT="${MDM_STOP_TIMEOUT:-30}"
# The simulator first: it stops answering before the portal goes.
COMPONENTS=(simulator web worker beat)
mkdir -p "$RUN"

usage() {
  sed -n '6,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

ACTION=start DETACH=0 DEMO=0 DEMO_DEVICES=25
while [ $# -gt 0 ]; do
  case "$1" in
  stop) ACTION=stop ;;
  --detach) DETACH=1 ;;
  --demo)
    DEMO=1
    if [[ ${2:-} =~ ^[0-9]+$ ]]; then
      DEMO_DEVICES="$2"
      shift
    fi
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    echo "unknown argument: $1" >&2
    usage >&2
    exit 2
    ;;
  esac
  shift
done

stop_all() {
  # Each component runs in a session of its own (setsid, below): signal the whole group, so
  # that nothing it forked is left, then wait for it, killing what outlives STOP_TIMEOUT.
  local name pid waited
  for name in "${COMPONENTS[@]}"; do
    [ -f "$RUN/$name.pid" ] || continue
    pid="$(cat "$RUN/$name.pid")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    waited=0
    # Gone, or a zombie that this shell (the foreground run's) reaps at its `wait`.
    while [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" =~ ^[^Z]$ ]] &&
      [ "$waited" -lt $((STOP_TIMEOUT * 4)) ]; do
      sleep 0.25
      waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
  done
}

start() { # start NAME CMD...: a component in its own session, logging to run/NAME.log
  local name="$1"
  shift
  setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

if [ "$ACTION" = stop ]; then
  stop_all
  echo "portal stopped"
  exit 0
fi

# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"

# The embedded default: unless the caller chose otherwise, no PostgreSQL and no Redis.
export DATABASE_URL="${DATABASE_URL:-}"
export REDIS_URL="${REDIS_URL:-}"
export MDM_PUBLIC_URL="${MDM_PUBLIC_URL:-http://$HOST:$PORT}"

if [ "$DEMO" = 1 ] && ! python manage.py help mdm_simulate >/dev/null 2>&1; then
  echo "--demo needs the device simulator (python manage.py mdm_simulate), which this" \
    "checkout does not have" >&2
  exit 1
fi

echo "==> migrating the database"
python manage.py migrate --noinput >"$RUN/migrate.log"
python manage.py collectstatic --noinput >"$RUN/collectstatic.log"
echo "==> creating the key material and the demo admin"
init_output="$(python manage.py mdm_init --demo-admin admin)"
echo "$init_output" | sed 's/^/    /' | grep -v "admin user created" || true
login_file="$DATA/demo-admin.txt"
if created="$(echo "$init_output" | grep -o 'admin user created: .*')"; then
  (umask 077 && echo "${created#admin user created: }" >"$login_file")
fi

stop_all

if [ "$DEMO" = 1 ]; then
  # The APNs stand-in is the simulator's (TLS + HTTP/2 on loopback): every process that may
  # push (worker, beat, web) gets its URL, and trusts its certificate, which the simulator
  # makes in APNS_DIR. The client reads MDM_APNS_CA_FILE at each push, so the file may appear
  # after the worker started, before the first device enrolls.
  APNS_DIR="$DATA/apns-standin"
  APNS_PORT="${MDM_DEMO_APNS_PORT:-$(python -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
  mkdir -p "$APNS_DIR"
  export MDM_APNS_URL="https://127.0.0.1:$APNS_PORT"
  export MDM_APNS_CA_FILE="$APNS_DIR/apns-cert.pem"
  echo "==> the demo push certificate (pushes go only to $MDM_APNS_URL)"
  pushcert_output="$(python manage.py mdm_pushcert demo --keep-real)"
  echo "$pushcert_output" | sed 's/^/    /'
  push_note="with the demo push certificate (not from Apple)"
  if echo "$pushcert_output" | grep -q "from Apple is imported"; then
    push_note="(the push certificate from Apple is kept, but while the demo runs every push goes to the stand-in)"
  fi
fi

echo "==> starting the Celery worker and beat (embedded broker)"
start worker python -m celery -A mdm_portal worker --pool=solo -l info
start beat python -m celery -A mdm_portal beat -l info
echo "==> starting the web server on http://$HOST:$PORT/"
start web python manage.py runserver "$HOST:$PORT" --noreload

for _ in $(seq 1 60); do
  if python - "$HOST" "$PORT" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/accounts/login/", timeout=1)
PY
  sleep 0.5
done

if [ "$DEMO" = 1 ]; then
  echo "==> starting $DEMO_DEVICES simulated devices and the APNs stand-in on 127.0.0.1:$APNS_PORT"
  start simulator python manage.py mdm_simulate --url "http://$HOST:$PORT" \
    --devices "$DEMO_DEVICES" --concurrency "${MDM_DEMO_CONCURRENCY:-4}" --duration 0 \
    --apns-listen "127.0.0.1:$APNS_PORT" --apns-tls-dir "$APNS_DIR" \
    --state "$DATA/simulator-state.json"
  for _ in $(seq 1 120); do
    [ -s "$MDM_APNS_CA_FILE" ] && break
    if ! kill -0 "$(cat "$RUN/simulator.pid")" 2>/dev/null; then
      echo "the simulator stopped: see $RUN/simulator.log" >&2
      tail -20 "$RUN/simulator.log" >&2 || true
      stop_all
      exit 1
    fi
    sleep 0.5
  done
fi

cat <<MSG

The MDM portal is running (embedded default: SQLite in $DATA, no Redis).
  Staff UI:          http://$HOST:$PORT/  (log in with the admin login below)
  Django admin:      http://$HOST:$PORT/admin/  (read-only, superusers)
  Check-in URL:      $MDM_PUBLIC_URL/mdm/checkin
  Server URL:        $MDM_PUBLIC_URL/mdm/connect
  Admin login:       $(cat "$login_file" 2>/dev/null || echo "see $login_file")
MSG
if [ "$DEMO" = 1 ]; then
  cat <<MSG
  Logs:              $RUN/{web,worker,beat,simulator}.log

The demo: $DEMO_DEVICES simulated devices enroll in "Simulated devices" and stay enrolled.
Pushes go to the local APNs stand-in on 127.0.0.1:$APNS_PORT, never to Apple,
$push_note. To try it:
  1. open http://$HOST:$PORT/ and log in; the devices appear under Devices within a minute;
  2. open a device and press a button under "Send a command", e.g. "Lock…" then "Send";
  3. watch the command page: the push wakes the device and its answer arrives in seconds.
MSG
else
  echo "  Logs:              $RUN/{web,worker,beat}.log"
fi

if [ "$DETACH" = 1 ]; then
  echo "  Stop it with:      scripts/quickstart.sh stop"
  exit 0
fi
echo "Press Ctrl-C to stop."
trap 'stop_all; echo; echo "portal stopped"; exit 0' INT TERM
wait

#!/usr/bin/env bash
# One command from a fresh clone to a running portal on the embedded default (SQLite, no Redis):
# virtual environment, install, migrations, the CA (mdm_init), a demo admin, then the web server,
# a Celery worker and celery beat on loopback.
#
#   scripts/quickstart.sh            run in the foreground (Ctrl-C stops everything)
#   scripts/quickstart.sh --detach   start in the background and return
#   scripts/quickstart.sh stop       stop what --detach started
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HOST="${MDM_HOST:-127.0.0.1}"
PORT="${MDM_PORT:-8000}"
DATA="${MDM_DATA_DIR:-$ROOT/var}"
RUN="$DATA/run"
mkdir -p "$RUN"

stop_all() {
  for name in web worker beat; do
    if [ -f "$RUN/$name.pid" ]; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
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
echo "==> starting the Celery worker and beat (embedded broker)"
celery -A mdm_portal worker --pool=solo -l info >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"
celery -A mdm_portal beat -l info >"$RUN/beat.log" 2>&1 &
echo $! >"$RUN/beat.pid"
echo "==> starting the web server on http://$HOST:$PORT/"
python manage.py runserver "$HOST:$PORT" --noreload >"$RUN/web.log" 2>&1 &
echo $! >"$RUN/web.pid"

for _ in $(seq 1 60); do
  if python - "$HOST" "$PORT" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/accounts/login/", timeout=1)
PY
  sleep 0.5
done

cat <<MSG

The MDM portal is running (embedded default: SQLite in $DATA, no Redis).
  Staff UI:          http://$HOST:$PORT/  (log in with the admin login below)
  Django admin:      http://$HOST:$PORT/admin/  (read-only, superusers)
  Check-in URL:      $MDM_PUBLIC_URL/mdm/checkin
  Server URL:        $MDM_PUBLIC_URL/mdm/connect
  Admin login:       $(cat "$login_file" 2>/dev/null || echo "see $login_file")
  Logs:              $RUN/{web,worker,beat}.log
MSG

if [ "${1:-}" = "--detach" ]; then
  echo "  Stop it with:      scripts/quickstart.sh stop"
  exit 0
fi
echo "Press Ctrl-C to stop."
trap 'stop_all; echo; echo "portal stopped"; exit 0' INT TERM
wait

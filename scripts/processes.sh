# shellcheck shell=bash
# Sourced by scripts/serve.sh: its components, each in a session of its own, so that every
# process a component forks (gunicorn's and nginx's workers, Celery's pool) can be found and
# waited for. A component NAME has run/NAME.pid holding "<pid> <start time>", the start time
# guarding against a reused pid. Needs: ROOT, RUN, LOG, STOP_TIMEOUT, NGINX_BIN, RUNTIME_ENV,
# STACK_ENV, DROP (setpriv to the service user, or nothing) and the functions log and die.
LAUNCHED=() # what this run started

# Fields of /proc/PID/stat, numbered as in proc(5).
STATE=3 SESSION=6 STARTTIME=22
stat_field() { # stat_field PID N: field N of /proc/PID/stat
    local stat fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    read -r -a fields <<<"${stat##*) }" # fields 3.. (the name in field 2 may hold spaces)
    echo "${fields[$2 - 3]}"
}

is_program() { # is_program PID NAME: the process runs that program (not a reused pid)
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    case $2 in
    nginx) [[ $cmdline == nginx:* || $cmdline == "$NGINX_BIN "* ]] ;;
    gunicorn) [[ $cmdline == *gunicorn* ]] ;;
    worker | beat) [[ $cmdline == *celery* ]] ;;
    *) return 1 ;;
    esac
}

alive() { # alive NAME: print the pid of the component if it runs (as recorded at its start)
    local pid start
    read -r pid start 2>/dev/null <"$RUN/$1.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(stat_field "$pid" $STARTTIME) == "$start" && $(stat_field "$pid" $STATE) != Z ]] || return 1
    is_program "$pid" "$1" || return 1
    echo "$pid"
}

members() { # members NAME: pids of the component's session (its master and every child)
    local sid proc pid
    read -r sid _ 2>/dev/null <"$RUN/$1.pid" || return 0
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $(stat_field "$pid" $SESSION) == "$sid" ]] || continue
        [[ $(stat_field "$pid" $STATE) != Z ]] || continue
        is_program "$pid" "$1" && echo "$pid"
    done
    return 0
}

launch() { # launch NAME CMD...: start a component in its own session, logging to log/NAME.log
    # Its own session (setsid, which execs: the pid stays the component's) lets stop find
    # every process it forks. nginx's master keeps root to bind the port; its workers, and
    # every other component, run as the service user with the stack's environment only.
    local name=$1 pid
    shift
    local as=("${STACK_ENV[@]}" "${DROP[@]}")
    [[ $name == nginx ]] && as=()
    (cd "$ROOT" && exec setsid env -i "${RUNTIME_ENV[@]}" "${as[@]}" "$@" \
        >>"$LOG/$name.log" 2>&1 </dev/null 8>&-) &
    pid=$!
    sleep 0.2
    [[ $(stat_field "$pid" $SESSION) == "$pid" ]] ||
        die "$name did not start in a session of its own (see $LOG/$name.log)"
    echo "$pid $(stat_field "$pid" $STARTTIME)" >"$RUN/$name.pid"
    LAUNCHED+=("$name")
    log "started $name (pid $pid)"
}

stop_component() { # stop_component NAME SIGNAL: signal it, wait for its session to empty
    local name=$1 signal=$2 pid left deadline
    if pid=$(alive "$name"); then
        log "stopping $name (pid $pid)"
        kill -"$signal" "$pid" 2>/dev/null || true
    elif left=$(members "$name") && [[ -n $left ]]; then # its master died, children did not
        log "stopping what is left of $name: $(echo $left)"
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null || true
    fi
    deadline=$((SECONDS + STOP_TIMEOUT))
    while left=$(members "$name") && [[ -n $left ]]; do
        if ((SECONDS >= deadline)); then
            log "$name did not exit within ${STOP_TIMEOUT}s: killing $(echo $left)"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
            deadline=$((SECONDS + 5))
        fi
        sleep 0.2
    done
    rm -f -- "$RUN/$name.pid"
}

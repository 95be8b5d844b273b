# Sourced by the scripted tests: a work folder removed on exit, and taskorad in the background.
work=$(mktemp -d /tmp/taskora-script-test-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$work/log" "$work/vg" >&2 2>/dev/null || true; exit 1; }

# start_taskorad CONFIG [WRAPPER...]: runs taskorad in the background (log in $work/log) and
# waits up to 30 s until it is ready; sets pid and url.
start_taskorad() {
    config=$1; shift
    "$@" "$taskorad" run -c "$config" >"$work/log" 2>&1 &
    pid=$!
    i=0
    until grep -q "taskorad ready" "$work/log"; do
        i=$((i + 1)); [ $i -lt 1500 ] || fail "taskorad did not become ready"
        kill -0 "$pid" 2>/dev/null || fail "taskorad exited early"
        sleep 0.02
    done
    url=$(sed -n 's/.*http server listening listen=[^ ]* url=\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
    [ -n "$url" ] || fail "no url in the log"
}

# stop_taskorad [SIGNAL]: SIGINT (a stop without the drain delay) or SIGNAL (TERM: the drain),
# then the exit status must be 0.
stop_taskorad() {
    sig=${1:-INT}
    kill -"$sig" "$pid"
    status=0
    wait "$pid" || status=$?
    pid=
    [ "$status" -eq 0 ] || fail "taskorad exited $status after SIG$sig (99: valgrind found errors)"
}

#!/bin/sh
# taskorad start/stop with the example plugin under valgrind: no leaks, no memory errors.
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
if [ "${TK_SANITIZERS:-no}" = yes ]; then
    echo "SKIP: valgrind does not run sanitizer builds (the plain build runs this test)"; exit 77
fi
[ -n "${VALGRIND:-}" ] && [ -x "$VALGRIND" ] || { echo "SKIP: valgrind not installed"; exit 77; }
work=$(mktemp -d /tmp/taskora-valgrind-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$work/log" "$work/vg" >&2 2>/dev/null || true; exit 1; }

export TASKORA_PLUGIN_DIR="$TK_BUILDDIR/examples/hello_consumer/.libs"
export TASKORA_HTTP_LISTEN=127.0.0.1:0 KAFKA_BROKERS=embedded
"$VALGRIND" --quiet --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$work/vg" \
    "$TK_BUILDDIR/taskorad" run -c "$TK_SRCDIR/examples/hello_consumer/hello.json" >"$work/log" 2>&1 &
pid=$!
i=0
until grep -q "taskorad ready" "$work/log"; do
    i=$((i + 1)); [ $i -lt 1500 ] || fail "taskorad under valgrind did not become ready"
    kill -0 "$pid" 2>/dev/null || fail "taskorad exited early"
    sleep 0.02
done
url=$(sed -n 's/.*http server listening listen=[^ ]* url=\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
curl -fsS "$url/hello" >/dev/null || fail "GET /hello failed"
curl -fsS "$url/metrics" >/dev/null || fail "GET /metrics failed"
curl -sS -o /dev/null "$url/nope" || fail "GET /nope failed"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "exit status $status (99 = valgrind found errors or leaks)"
[ ! -s "$work/vg" ] || fail "valgrind reported something"
echo "valgrind: start, requests and stop with no leaks or errors"

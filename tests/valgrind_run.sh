#!/bin/sh
# taskorad start/stop with the example plugin under valgrind: no leaks, no memory errors.
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
if [ "${TK_SANITIZERS:-no}" = yes ]; then
    echo "SKIP: valgrind does not run sanitizer builds (the plain build runs this test)"; exit 77
fi
[ -n "${VALGRIND:-}" ] && [ -x "$VALGRIND" ] || { echo "SKIP: valgrind not installed"; exit 77; }
. "$TK_SRCDIR/tests/lib.sh"

taskorad="$TK_BUILDDIR/taskorad"
export TASKORA_PLUGIN_DIR="$TK_BUILDDIR/examples/hello_consumer/.libs"
export TASKORA_HTTP_LISTEN=127.0.0.1:0 KAFKA_BROKERS=embedded
start_taskorad "$TK_SRCDIR/examples/hello_consumer/hello.json" \
    "$VALGRIND" --quiet --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$work/vg"
curl -fsS "$url/hello" >/dev/null || fail "GET /hello failed"
curl -fsS "$url/metrics" >/dev/null || fail "GET /metrics failed"
curl -sS -o /dev/null "$url/nope" || fail "GET /nope failed"
stop_taskorad
[ ! -s "$work/vg" ] || fail "valgrind reported something"
echo "valgrind: start, requests and stop with no leaks or errors"

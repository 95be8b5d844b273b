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
config="$TK_SRCDIR/examples/hello_consumer/hello.json"
export TASKORA_PLUGIN_DIR="$TK_BUILDDIR/examples/hello_consumer/.libs"
export TASKORA_HTTP_LISTEN=127.0.0.1:0 KAFKA_BROKERS=embedded
if [ -n "${TASKORA_TEST_DATABASE_URL:-}" ]; then
    # with a database: the pool, /ready's probe and the http_api plugin too
    config="$work/taskora.json"
    export TASKORA_PLUGIN_DIR="$TASKORA_PLUGIN_DIR:$TK_BUILDDIR/plugins/http_api/.libs"
    cat >"$config" <<JSON
{"log": {"format": "text"}, "plugin_dir": "\${TASKORA_PLUGIN_DIR}",
 "postgres": {"url": "\${TASKORA_TEST_DATABASE_URL}", "pool_size": 2},
 "kafka": {"brokers": "embedded"}, "http": {"listen": "\${TASKORA_HTTP_LISTEN}"},
 "plugins": [{"name": "api", "load": "http_api"}, {"name": "hello", "load": "hello_consumer"}]}
JSON
fi
start_taskorad "$config" \
    "$VALGRIND" --quiet --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$work/vg"
curl -fsS "$url/hello" >/dev/null || fail "GET /hello failed"
curl -fsS "$url/metrics" >/dev/null || fail "GET /metrics failed"
curl -sS -o /dev/null "$url/nope" || fail "GET /nope failed"
if [ -n "${TASKORA_TEST_DATABASE_URL:-}" ]; then
    curl -fsS "$url/ready" | grep -q '"database":"connected"' || fail "GET /ready is not ready"
    curl -fsS "$url/" | grep -q 'Welcome to Taskora API' || fail "GET / failed"
fi
stop_taskorad
[ ! -s "$work/vg" ] || fail "valgrind reported something"
echo "valgrind: start, requests and stop with no leaks or errors"

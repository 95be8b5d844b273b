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
    # with a database: the pool, /ready's probe, the http_api plugin, the outbox relay and a
    # consumer group on the embedded cluster too
    config="$work/taskora.json"
    export TASKORA_PLUGIN_DIR="$TASKORA_PLUGIN_DIR:$TK_BUILDDIR/plugins/http_api/.libs"
    cat >"$config" <<JSON
{"log": {"format": "text"}, "plugin_dir": "\${TASKORA_PLUGIN_DIR}",
 "postgres": {"url": "\${TASKORA_TEST_DATABASE_URL}", "pool_size": 2},
 "kafka": {"brokers": "embedded"}, "http": {"listen": "\${TASKORA_HTTP_LISTEN}"},
 "plugins": [{"name": "api", "load": "http_api"},
  {"name": "hello", "load": "hello_consumer", "consume": {"topics": ["task-events"], "workers": 2}}]}
JSON
fi
start_taskorad "$config" \
    "$VALGRIND" --quiet --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$work/vg"
curl -fsS "$url/hello" >/dev/null || fail "GET /hello failed"
curl -fsS "$url/metrics" >/dev/null || fail "GET /metrics failed"
curl -sS -o /dev/null "$url/nope" || fail "GET /nope failed"
if [ -n "${TASKORA_TEST_DATABASE_URL:-}" ]; then
    # ready once the consumer has joined its group (slow under valgrind)
    i=0
    until curl -fsS "$url/ready" 2>/dev/null | grep -q '"kafka":"connected"'; do
        i=$((i + 1)); [ $i -lt 600 ] || fail "GET /ready did not become ready"
        sleep 0.1
    done
    curl -fsS "$url/ready" | grep -q '"database":"connected"' || fail "GET /ready: no database"
    curl -fsS "$url/" | grep -q 'Welcome to Taskora API' || fail "GET / failed"
fi
stop_taskorad
[ ! -s "$work/vg" ] || fail "valgrind reported something"
echo "valgrind: start, requests and stop with no leaks or errors"

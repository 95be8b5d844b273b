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
    # with a database: the pool, /ready's probe, every domain plugin (the API, the AI
    # providers, real-time push, notifications with its scheduler, analytics in batches), the
    # outbox relay and consumer groups on the embedded cluster too
    config="$work/taskora.json"
    for p in http_api ai_gemini ai_cohere realtime notifications analytics webui lua; do
        TASKORA_PLUGIN_DIR="$TASKORA_PLUGIN_DIR:$TK_BUILDDIR/plugins/$p/.libs"
    done
    export TASKORA_PLUGIN_DIR
    # a database of its own, migrated (the URL names the server's admin database)
    db="taskora_valgrind_$$"
    psql -q "$TASKORA_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null || fail "createdb failed"
    admin_url=$TASKORA_TEST_DATABASE_URL
    trap 'cleanup; psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
    TASKORA_TEST_DATABASE_URL=$(printf '%s' "$admin_url" | sed "s#/[^/?]*\(?.*\)\{0,1\}\$#/$db\1#")
    export TASKORA_TEST_DATABASE_URL
    cat >"$config" <<JSON
{"log": {"format": "text"}, "plugin_dir": "\${TASKORA_PLUGIN_DIR}", "drain_delay_ms": 300,
 "postgres": {"url": "\${TASKORA_TEST_DATABASE_URL}", "pool_size": 2},
 "kafka": {"brokers": "embedded"}, "http": {"listen": "\${TASKORA_HTTP_LISTEN}"},
 "resiliency": {"retry": {"attempts": 2, "delay_ms": 10}},
 "plugins": [{"name": "api", "load": "http_api",
   "config": {"jwt_secret": "valgrind-secret-0123456789abcdef01234567", "bcrypt_cost": 4,
              "ai_provider": "gemini"}},
  {"name": "gemini", "load": "ai_gemini",
   "config": {"api_key": "valgrind-key", "base_url": "http://127.0.0.1:1"}},
  {"name": "cohere", "load": "ai_cohere"},
  {"name": "realtime", "load": "realtime", "consume": {"topics": ["task-events"], "broadcast": true}},
  {"name": "notifications", "load": "notifications", "config": {"poll_ms": 200},
   "consume": {"topics": ["task-events"], "workers": 2}},
  {"name": "analytics", "load": "analytics",
   "consume": {"topics": ["task-events", "user-events", "chat-events"], "workers": 2}},
  {"name": "webui", "load": "webui", "config": {"root": "$TK_SRCDIR/plugins/webui/www"}},
  {"name": "hello", "load": "hello_consumer", "consume": {"topics": ["task-events"], "workers": 2}},
  {"name": "vgaudit", "load": "lua", "config": {"script": "audit.lua"},
   "consume": {"topics": ["task-events"], "workers": 2}}]}
JSON
    # a script consumer: its own table, each task event recorded with its payload's title
    cat >"$work/audit.lua" <<'LUA'
function migrations() return {"CREATE TABLE vg_audit (event_id text, type text, title text)"} end
function handle(event)
  taskora.db.exec("INSERT INTO vg_audit VALUES ($1, $2, $3)", event.id, event.type,
                  event.payload.title)
end
LUA
    "$taskorad" migrate -c "$config" >/dev/null || fail "taskorad migrate failed"
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
    curl -fsS "$url/app/" | grep -q '<title>' || fail "GET /app/ failed"
    # the API's paths: register, login, a tag, a recurring task completed, the list, errors
    json='Content-Type: application/json'
    email="vg$$@example.com"
    uid=$(curl -fsS -X POST "$url/api/auth/register" -H "$json" \
        -d "{\"email\":\"$email\",\"name\":\"V\",\"password\":\"pw\"}" |
        sed 's/^{"id":\([0-9]*\).*/\1/') || fail "register failed"
    token=$(curl -fsS -X POST "$url/api/auth/login" -H "$json" \
        -d "{\"email\":\"$email\",\"password\":\"pw\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    [ -n "$token" ] || fail "login failed"
    auth="Authorization: Bearer $token"
    tag=$(curl -fsS -X POST "$url/api/tags" -H "$auth" -H "$json" -d '{"name":"home"}' |
        sed 's/^{"id":\([0-9]*\).*/\1/')
    task=$(curl -fsS -X POST "$url/api/tasks" -H "$auth" -H "$json" \
        -d "{\"title\":\"t\",\"is_recurring\":true,\"recurrence_rule\":\"daily\",\"tag_ids\":[$tag]}" |
        sed 's/^{"id":\([0-9]*\).*/\1/')
    curl -fsS -X PATCH "$url/api/tasks/$task/complete" -H "$auth" -H "$json" \
        -d '{"completed":true}' | grep -q next_task || fail "complete failed"
    curl -fsS "$url/api/tasks?sort_by=priority&tags=$tag&search=t" -H "$auth" | grep -q '"title"' ||
        fail "list failed"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/api/tasks" -H "$auth" -H "$json" -d '{"title":')
    [ "$code" = 422 ] || fail "malformed JSON gave $code"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/api/tasks" -H "Authorization: Bearer x.y.z")
    [ "$code" = 401 ] || fail "bad token gave $code"
    # the chat with its provider unreachable: the question is stored, the answer is a 503
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/api/$uid/chat" -H "$auth" \
        -H "$json" -d '{"message":"hello"}')
    [ "$code" = 503 ] || fail "chat with an unreachable provider gave $code"
    # a reminder due now: fired by the scheduler, listed; an event stream; the analytics
    curl -fsS -X POST "$url/api/tasks" -H "$auth" -H "$json" \
        -d '{"title":"remind me","reminder_at":"2020-01-01T00:00:00Z"}' >/dev/null ||
        fail "task with a reminder failed"
    i=0
    until curl -fsS "$url/api/notifications" -H "$auth" | grep -q 'remind me'; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "the reminder did not fire"
        sleep 0.1
    done
    curl -sS -N --max-time 4 "$url/api/events/stream?token=$token" >"$work/stream" 2>/dev/null &
    cpid=$!
    i=0
    until grep -q 'event: connected' "$work/stream"; do
        i=$((i + 1)); [ $i -lt 100 ] || fail "no event stream"
        sleep 0.1
    done
    curl -fsS -X POST "$url/api/tasks" -H "$auth" -H "$json" -d '{"title":"pushed"}' >/dev/null ||
        fail "task for the stream failed"
    wait "$cpid" || true # curl's own time limit ends it
    grep -q '"title":"pushed"' "$work/stream" || fail "the stream did not get the new task"
    # a reconnect with Last-Event-ID: the window's events replayed (the id of the first one seen)
    last=$(sed -n 's/^id: //p' "$work/stream" | head -n 1)
    [ -n "$last" ] || fail "the stream's events have no id"
    curl -sS --max-time 2 -H "Last-Event-ID: $last" "$url/api/events/stream?token=$token" \
        >"$work/resumed" 2>/dev/null || true
    grep -q '"resume":"resumed"' "$work/resumed" || fail "no resume after Last-Event-ID"
    i=0
    until curl -fsS "$url/api/analytics/summary?days=1" -H "$auth" | grep -q '"created" : 3'; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "analytics did not count the tasks"
        sleep 0.1
    done
    # the script consumer saw the tasks; SIGHUP reloads it between events
    i=0
    until [ "$(psql -tAq "$TASKORA_TEST_DATABASE_URL" -c "SELECT count(*) FROM vg_audit WHERE title = 'pushed'")" = 1 ]; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "the script consumer did not record the tasks"
        sleep 0.1
    done
    kill -HUP "$pid"
    i=0
    until grep -q "script reloaded" "$work/log"; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "SIGHUP did not reload the script"
        sleep 0.1
    done
    # SIGTERM: the drain, with an event stream open that gets its last event
    curl -sSN --max-time 120 "$url/api/events/stream?token=$token" >"$work/stream" 2>/dev/null &
    spid=$!
    i=0
    until grep -q 'event: connected' "$work/stream"; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "no event stream"
        sleep 0.1
    done
    stop_taskorad TERM
    wait "$spid" || true
    grep -q 'event: reconnect' "$work/stream" || fail "the stream did not get its reconnect event"
else
    stop_taskorad
fi
[ ! -s "$work/vg" ] || fail "valgrind reported something"
echo "valgrind: start, requests and stop with no leaks or errors"

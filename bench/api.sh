#!/bin/sh
# The REST API under load against pgbench running the same SQL, in one run. From a build folder:
#   DATABASE_URL=postgresql://postgres@127.0.0.1:55432/postgres ../../bench/api.sh [SECONDS] [CONNS]
# DATABASE_URL names a server (and a database to connect to first); the script creates and
# drops its own database taskora_bench_api there. Needs wrk and pgbench (postgresql-client).
# It creates a user with 50 tasks of 3 tags each, then:
#   1. wrk GET /api/tasks (the user's list, default sort) with CONNS connections;
#   2. pgbench running the list's own statement (taken from pg_stat_activity, so it is exactly
#      what the plugin sends, in the same protocol: -M extended) with CONNS connections;
#   3. wrk POST /api/tasks (each request one transaction with its outbox event);
# and prints req/s, p99, the ratio GET/pgbench, and taskorad's RSS idle and under load.
# Prints figures; asserts nothing.
set -eu
secs=${1:-10}
conns=${2:-8}
build=$(pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$build/taskorad" ] || { echo "run from a build folder (taskorad not found here)" >&2; exit 2; }
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server (e.g. the one scripts/pg.sh starts)}"
for tool in wrk pgbench psql curl; do
    command -v $tool >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
work=$(mktemp -d)
port=${BENCH_PORT:-18182}
url="http://127.0.0.1:$port"
db=taskora_bench_api
# the same server, another database (URL or key=value conninfo)
dburl=$(psql "$DATABASE_URL" -Atc "SELECT 'postgresql://' || current_user || '@' ||
    coalesce(host(inet_server_addr()), 'localhost') || ':' || current_setting('port') || '/$db'")
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
pid=
cleanup() {
    [ -z "$pid" ] || { kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

cat >"$work/bench.json" <<JSON
{"app_id": "bench", "log": {"level": "\${BENCH_LOG_LEVEL}", "format": "text"},
 "plugin_dir": "$build/plugins/http_api/.libs",
 "postgres": {"url": "$dburl", "pool_size": $conns},
 "kafka": {"brokers": "embedded"},
 "http": {"listen": "127.0.0.1:$port"},
 "plugins": [{"name": "api", "load": "http_api",
   "config": {"jwt_secret": "bench-secret-0123456789abcdef0123456789ab", "bcrypt_cost": 4}}]}
JSON
export BENCH_LOG_LEVEL=debug
"$build/taskorad" migrate -c "$work/bench.json" >/dev/null
start() {
    "$build/taskorad" run -c "$work/bench.json" >"$work/log" 2>&1 &
    pid=$!
    until curl -fs -o /dev/null "$url/ready"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
        sleep 0.05
    done
}
stop() {
    kill -INT "$pid" # no drain delay
    wait "$pid" || true
    pid=
}
# first with debug logging, which shows each statement's text: the list's is kept for pgbench
start

# the data: one user, 3 tags, 50 tasks with all 3 tags each
json='Content-Type: application/json'
curl -fsS -o /dev/null -X POST "$url/api/auth/register" -H "$json" \
    -d '{"email":"bench@example.com","name":"Bench","password":"bench"}'
token=$(curl -fsS -X POST "$url/api/auth/login" -H "$json" \
    -d '{"email":"bench@example.com","password":"bench"}' |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
auth="Authorization: Bearer $token"
tags=
for name in home work errands; do
    id=$(curl -fsS -X POST "$url/api/tags" -H "$auth" -H "$json" -d "{\"name\":\"$name\"}" |
        sed 's/^{"id":\([0-9]*\).*/\1/')
    tags="$tags${tags:+,}$id"
done
i=0
while [ $i -lt 50 ]; do
    curl -fsS -o /dev/null -X POST "$url/api/tasks" -H "$auth" -H "$json" \
        -d "{\"title\":\"Task $i\",\"description\":\"bench task number $i\",\"priority\":\"high\",
             \"due_date\":\"2027-03-01T10:00:00Z\",\"tag_ids\":[$tags]}"
    i=$((i + 1))
done
curl -fsS -o /dev/null "$url/api/tasks" -H "$auth"
# the list's statement exactly as the plugin sent it; its parameters become pgbench variables
sql=$(sed -n 's/^.*\] sql: \(SELECT count(\*) OVER ().*\)$/\1/p' "$work/log" | tail -1)
[ -n "$sql" ] || { echo "the list statement is not in the debug log" >&2; exit 1; }
user=$(psql "$dburl" -Atc "SELECT id FROM users WHERE email = 'bench@example.com'")
printf '%s\n' "$sql" | sed -e 's/\$1\b/:uid/g' -e 's/\$2\b/:lim/g' -e 's/\$3\b/:off/g' >"$work/list.sql"
stop
BENCH_LOG_LEVEL=warn
start
sleep 1
echo "idle RSS (http_api, pool, relay, embedded broker): $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"

wrk_run() { # label, then wrk arguments
    label=$1
    shift
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" >"$work/wrk.out"
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    p99=$(awk '/ 99%/ {print $2}' "$work/wrk.out")
    errors=$(awk '/Non-2xx/ {print $5}' "$work/wrk.out")
    echo "$label: $rps req/s, p99 $p99${errors:+, non-2xx: $errors}"
}

echo "== $conns connections, ${secs}s each, 50 tasks x 3 tags"
wrk_run "HTTP GET /api/tasks" -H "$auth" "$url/api/tasks"
get_rps=$rps
echo "RSS after GET load: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"

pgbench -n -M extended -c "$conns" -j 2 -T "$secs" -D uid="$user" -D lim=500 -D off=0 \
    -f "$work/list.sql" "$dburl" >"$work/pgb.out" 2>&1 || { cat "$work/pgb.out" >&2; exit 1; }
pg_tps=$(awk '/^tps/ {print $3}' "$work/pgb.out")
pg_lat=$(awk '/latency average/ {print $4, $5}' "$work/pgb.out")
echo "pgbench, same statement: $pg_tps tx/s (latency average $pg_lat)"
echo "ratio HTTP GET / pgbench: $(awk -v a="$get_rps" -v b="$pg_tps" 'BEGIN {printf "%.2f", a / b}')"

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"title":"Posted","priority":"urgent","due_date":"2027-04-01T09:00:00Z","tag_ids":[TAGS]}'
LUA
sed -i "s/TAGS/$tags/" "$work/post.lua"
wrk_run "HTTP POST /api/tasks" -s "$work/post.lua" -H "$auth" -H "$json" "$url/api/tasks"
echo "RSS after POST load: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status);" \
    "peak $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
backlog=$(psql "$dburl" -Atc "SELECT count(*) FROM taskora_outbox WHERE sent_at IS NULL")
echo "outbox rows not yet published right after the POST run: $backlog"

#!/bin/bash
# The dashboard (deploy/grafana/taskora.json) and the alerts (deploy/prometheus/alerts.yaml)
# against a running taskorad with every plugin, the embedded broker and a fresh database, after
# some traffic (an account, tasks, a reminder, a chat answered by a fake Gemini server
# (tests/fake_ai_server), one it fails with a 503, poison events):
#   - every metric a panel's or an alert's expression names is on /metrics;
#   - promtool check rules accepts the alerts;
#   - a real Prometheus scraping taskorad every second with those rules evaluates every rule
#     without an error, answers every alert's and every panel's expression, and fires the
#     dead-letter alert for the poison events.
# Plain build only. Skips (77) without a database, prometheus and promtool (Debian's
# "prometheus", scripts/deps.sh) or kcat, unless TASKORA_REQUIRE_DB or CI is set (then 99:
# scripts/test installs them first). Bounded to about 100 s.
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
if [ "${TK_SANITIZERS:-no}" = yes ]; then
    echo "SKIP: the observability test runs in the plain build only"; exit 77
fi
missing=
[ -n "${TASKORA_TEST_DATABASE_URL:-}" ] || missing="$missing TASKORA_TEST_DATABASE_URL"
for t in prometheus promtool kcat curl psql; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
    if [ "${TASKORA_REQUIRE_DB:-0}" != 0 ] || [ -n "${CI:-}" ]; then
        echo "FAIL: missing:$missing (scripts/deps.sh installs the tools)"; exit 99
    fi
    echo "SKIP: missing:$missing"; exit 77
fi
. "$TK_SRCDIR/tests/lib.sh"
deadline=$(($(date +%s) + 100))
in_time() { [ "$(date +%s)" -lt "$deadline" ]; }

taskorad="$TK_BUILDDIR/taskorad"
dashboard="$TK_SRCDIR/deploy/grafana/taskora.json"
alerts="$TK_SRCDIR/deploy/prometheus/alerts.yaml"
ppid_=
fpid=
db="taskora_obs_$$"
admin_url=$TASKORA_TEST_DATABASE_URL
trap 'for p in $ppid_ $fpid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; cleanup
      psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql -q "$admin_url" -c "CREATE DATABASE $db" >/dev/null || fail "createdb failed"
TASKORA_TEST_DATABASE_URL=$(printf '%s' "$admin_url" | sed "s#/[^/?]*\(?.*\)\{0,1\}\$#/$db\1#")
export TASKORA_TEST_DATABASE_URL KAFKA_BROKERS=embedded TASKORA_HTTP_LISTEN=127.0.0.1:0
TASKORA_PLUGIN_DIR=
for p in http_api ai_gemini ai_cohere realtime notifications analytics webui lua; do
    TASKORA_PLUGIN_DIR="$TASKORA_PLUGIN_DIR${TASKORA_PLUGIN_DIR:+:}$TK_BUILDDIR/plugins/$p/.libs"
done
export TASKORA_PLUGIN_DIR
${MAKE:-make} -s -C "$TK_BUILDDIR" tests/fake_ai_server >/dev/null || fail "cannot build tests/fake_ai_server"
# the provider: one answer, then its 503 (the chat's 503; the breaker opens at the first failure)
"$TK_BUILDDIR/tests/fake_ai_server" --provider gemini --text "hi there" --error 503 \
    </dev/null >"$work/fake.out" 2>"$work/fake.err" &
fpid=$!
until [ -s "$work/fake.out" ]; do
    kill -0 "$fpid" 2>/dev/null || fail "fake_ai_server exited: $(cat "$work/fake.err")"
    sleep 0.05
done
GEMINI_BASE_URL=$(head -n 1 "$work/fake.out")
export GEMINI_BASE_URL

# every plugin
config="$work/taskora.json"
cat >"$config" <<JSON
{"log": {"format": "text"}, "plugin_dir": "\${TASKORA_PLUGIN_DIR}", "drain_delay_ms": 0,
 "postgres": {"url": "\${TASKORA_TEST_DATABASE_URL}", "pool_size": 4},
 "kafka": {"brokers": "\${KAFKA_BROKERS}", "partitions": 2},
 "http": {"listen": "\${TASKORA_HTTP_LISTEN}"},
 "resiliency": {"retry": {"attempts": 1, "delay_ms": 10},
                "circuit_breaker": {"failures": 1, "open_ms": 60000}},
 "plugins": [{"name": "api", "load": "http_api",
   "config": {"jwt_secret": "observability-secret-0123456789abcdef0123", "bcrypt_cost": 4,
              "ai_provider": "gemini"}},
  {"name": "gemini", "load": "ai_gemini",
   "config": {"api_key": "fake-ai-key", "base_url": "\${GEMINI_BASE_URL}"}},
  {"name": "cohere", "load": "ai_cohere"},
  {"name": "realtime", "load": "realtime", "consume": {"topics": ["task-events"], "broadcast": true}},
  {"name": "notifications", "load": "notifications", "config": {"poll_ms": 200},
   "consume": {"topics": ["task-events"]}},
  {"name": "analytics", "load": "analytics",
   "consume": {"topics": ["task-events", "user-events", "chat-events"]}},
  {"name": "webui", "load": "webui", "config": {"root": "$TK_SRCDIR/plugins/webui/www"}},
  {"name": "audit", "load": "lua", "config": {"script": "audit.lua"},
   "consume": {"topics": ["task-events"]}}]}
JSON
cat >"$work/audit.lua" <<'LUA'
function handle(event) end
LUA
"$taskorad" migrate -c "$config" >"$work/migrate.log" 2>&1 || fail "taskorad migrate failed"
start_taskorad "$config"
brokers=$(sed -n 's/.*embedded Kafka-protocol cluster.* bootstrap=\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
[ -n "$brokers" ] || fail "no embedded broker address in the log"
until curl -fsS "$url/ready" >/dev/null 2>&1; do
    in_time || fail "GET /ready did not become ready"
    sleep 0.1
done

# traffic: an account, a tag, tasks (one completed, one with a reminder due), a list, errors,
# the chat with its provider down (503, the breaker opens), a message that is not an event
json='Content-Type: application/json'
uid=$(curl -fsS -X POST "$url/api/auth/register" -H "$json" \
    -d '{"email":"obs@example.com","name":"O","password":"pw"}' | sed 's/^{"id":\([0-9]*\).*/\1/') ||
    fail "register failed"
token=$(curl -fsS -X POST "$url/api/auth/login" -H "$json" \
    -d '{"email":"obs@example.com","password":"pw"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
[ -n "$token" ] || fail "login failed"
auth="Authorization: Bearer $token"
tag=$(curl -fsS -X POST "$url/api/tags" -H "$auth" -H "$json" -d '{"name":"obs"}' |
    sed 's/^{"id":\([0-9]*\).*/\1/')
task=$(curl -fsS -X POST "$url/api/tasks" -H "$auth" -H "$json" -d "{\"title\":\"a\",\"tag_ids\":[$tag]}" |
    sed 's/^{"id":\([0-9]*\).*/\1/')
curl -fsS -X PATCH "$url/api/tasks/$task/complete" -H "$auth" -H "$json" -d '{"completed":true}' \
    >/dev/null || fail "complete failed"
curl -fsS -X POST "$url/api/tasks" -H "$auth" -H "$json" \
    -d '{"title":"remind me","reminder_at":"2020-01-01T00:00:00Z"}' >/dev/null || fail "reminder task failed"
curl -fsS "$url/api/tasks?tags=$tag" -H "$auth" >/dev/null || fail "list failed"
curl -sS -o /dev/null "$url/nope"
chat() { curl -sS -o "$work/chat" -w '%{http_code}' -X POST "$url/api/$uid/chat" -H "$auth" -H "$json" \
    -d '{"message":"hello"}'; }
code=$(chat)
[ "$code" = 200 ] || fail "chat gave $code: $(cat "$work/chat")"
code=$(chat)
[ "$code" = 503 ] || fail "chat with the provider failing gave $code: $(cat "$work/chat")"
poison() { printf 'not an event %s\n' "$1" | kcat -P -b "$brokers" -t task-events -p 0 2>>"$work/kcat.err" ||
    fail "kcat could not produce to $brokers"; }
poison 1
metrics() { curl -fsS "$url/metrics" >"$work/metrics" || fail "GET /metrics failed"; }
# wait_series PATTERN: until /metrics has a sample line matching the extended regexp
wait_series() {
    until metrics && grep -Eq "$1" "$work/metrics"; do
        in_time || fail "no series matching $1 on /metrics"
        sleep 0.1
    done
}
wait_series '^taskora_notifications_reminders_fired_total\{plugin="notifications"\} [1-9]'
wait_series '^taskora_consumer_dead_lettered_total\{plugin="[a-z]*",reason="undecodable"\} [1-9]'
wait_series '^taskora_consumer_lag\{'
wait_series '^taskora_outbox_oldest_age_seconds '
wait_series '^taskora_ready 1$'
grep -q '^taskora_circuit_state{target="ai.gemini"} 2$' "$work/metrics" || fail "the breaker did not open"

# the expressions: the panels' (JSON strings, one a line) and the alerts' (one a line, folded)
sed -n 's/^ *"expr": "\(.*\)",\{0,1\}$/\1/p' "$dashboard" | sed 's/\\"/"/g; s/\\\\/\\/g' >"$work/panel.exprs"
awk '
    function flush() { if (e != "") print e; e = ""; blk = 0 }
    blk { match($0, /^ */); if (RLENGTH > ind && $0 !~ /^ *$/) { sub(/^ */, " "); e = e $0; next } flush() }
    /^ *expr: *\|-?$/ { ind = index($0, "expr:") - 1; blk = 1; e = ""; next }
    /^ *expr: / { sub(/^ *expr: */, ""); print }
    END { flush() }' "$alerts" >"$work/alert.exprs"
npanels=$(grep -c . "$work/panel.exprs") || true
nalerts=$(grep -c '^ *- alert: ' "$alerts") || true
[ "$npanels" -ge 20 ] || fail "only $npanels panel expressions in $dashboard"
[ "$(grep -c . "$work/alert.exprs")" -eq "$nalerts" ] || fail "not one expression per alert in $alerts"

# the metric names an expression reads: its identifiers without strings, label matchers,
# ranges, grouping labels, functions and keywords
names() {
    awk '{
        e = $0
        gsub(/"([^"\\]|\\.)*"/, "", e); gsub(/\{[^}]*\}/, "", e); gsub(/\[[^]]*\]/, "", e)
        gsub(/(by|without|on|ignoring|group_left|group_right) *\([^)]*\)/, "", e)
        while (match(e, /[A-Za-z_:][A-Za-z0-9_:]*/)) {
            t = substr(e, RSTART, RLENGTH); pre = substr(e, RSTART - 1, 1); e = substr(e, RSTART + RLENGTH)
            if (pre ~ /[0-9.]/ || e ~ /^ *\(/) continue  # a number s exponent, a function
            if (t ~ /^(and|or|unless|bool|offset|Inf|NaN|inf|nan)$/) continue
            print t
        }
    }' "$@" | sort -u
}
names "$work/panel.exprs" "$work/alert.exprs" >"$work/names"
[ "$(grep -c . "$work/names")" -ge 15 ] || fail "too few metric names parsed: $(tr '\n' ' ' <"$work/names")"
metrics
sed -n 's/^\([A-Za-z_:][A-Za-z0-9_:]*\)[{ ].*/\1/p' "$work/metrics" | sort -u >"$work/served"
absent=$(comm -23 "$work/names" "$work/served" | tr '\n' ' ')
[ -z "$absent" ] || fail "metrics named by the dashboard or the alerts that /metrics does not have: $absent"

promtool check rules "$alerts" >"$work/promtool.out" 2>&1 ||
    { cat "$work/promtool.out" >&2; fail "promtool check rules $alerts"; }

# a Prometheus of its own: a free port, temporary storage, taskorad scraped every second
target=${url#http://}
target=${target%%/*}
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$alerts"]
scrape_configs:
  - job_name: taskora
    static_configs: [{targets: ["$target"]}]
YAML
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
prom=
for try in 1 2 3 4 5; do
    pport=$((20000 + RANDOM % 20000))
    port_free "$pport" || continue
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
        --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$work/prom.log" 2>&1 &
    ppid_=$!
    until curl -fsS "http://127.0.0.1:$pport/-/ready" >/dev/null 2>&1; do
        kill -0 "$ppid_" 2>/dev/null || break
        in_time || fail "Prometheus did not start: $(cat "$work/prom.log")"
        sleep 0.1
    done
    if kill -0 "$ppid_" 2>/dev/null; then prom="http://127.0.0.1:$pport"; break; fi
    wait "$ppid_" 2>/dev/null || true
    ppid_=
done
[ -n "$prom" ] || fail "Prometheus did not start on a free port: $(cat "$work/prom.log")"
# query EXPR: the API's answer (JSON) in $work/q
query() { curl -fsS -G "$prom/api/v1/query" --data-urlencode "query=$1" >"$work/q" 2>"$work/q.err"; }
# a few scrapes, the counters seen before the second poison event
until query 'count_over_time(up{job="taskora"}[1m]) >= 3 and up{job="taskora"} == 1' &&
    grep -q '"value"' "$work/q"; do
    in_time || fail "Prometheus did not scrape taskorad 3 times: $(cat "$work/q" "$work/prom.log")"
    sleep 0.2
done
poison 2
# every rule evaluated, none with an error
until curl -fsS "$prom/api/v1/rules" >"$work/rules" &&
    [ "$(grep -o '"health":"ok"' "$work/rules" | wc -l)" -eq "$nalerts" ]; do
    grep -q '"health":"err"' "$work/rules" && fail "a rule did not evaluate: $(cat "$work/rules")"
    in_time || fail "the rules were not all evaluated: $(cat "$work/rules")"
    sleep 0.2
done
! grep -q '"lastError":"[^"]' "$work/rules" || fail "a rule has an error: $(cat "$work/rules")"
# each alert's and each panel's expression is answered without an error or a warning
sed 's/\$__rate_interval/1m/g' "$work/panel.exprs" | cat "$work/alert.exprs" - >"$work/all.exprs"
while IFS= read -r e; do
    query "$e" || fail "query failed: $e: $(cat "$work/q" "$work/q.err")"
    grep -q '^{"status":"success"' "$work/q" || fail "query $e: $(cat "$work/q")"
    ! grep -q '"warnings"' "$work/q" || fail "query $e: $(cat "$work/q")"
done <"$work/all.exprs"
# the dead-letter alert fires for the second poison event (with the labels of the code's series)
until curl -fsS "$prom/api/v1/alerts" | sed 's/{"labels"/\n&/g' >"$work/alerts.json" &&
    grep -q '"alertname":"TaskoraDeadLetters".*"reason":"undecodable".*"state":"firing"' "$work/alerts.json"; do
    in_time || fail "TaskoraDeadLetters did not fire: $(cat "$work/alerts.json")"
    sleep 0.2
done
kill "$ppid_"
wait "$ppid_" 2>/dev/null || true
ppid_=
stop_taskorad
echo "observability: $npanels panel and $nalerts alert expressions, $(grep -c . "$work/names") metric names on /metrics; Prometheus evaluated every rule"

/*
 * Consumers written as Lua scripts (the lua plugin), end to end over the Kafka protocol
 * (librdkafka's mock cluster, owned by the test) and a real PostgreSQL: migrations,
 * exactly-once effects across a SIGKILL, results and errors through retries to the DLQ,
 * the sandbox and budgets, check-config, and reload.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testhelp.h"
#include "th_kafka.h"

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */

#define PARTITIONS 4

/* Writes the script and a config running it as instance "script"; returns the config path. */
static char *write_config(const char *name, const char *script, const char *extra_config)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.lua", name);
    free(th_write(dir, file, script));
    char *text =
        th_fmt("{\"app_id\": \"lua-test\", \"log\": {\"format\": \"text\", \"level\": \"info\"},"
               " \"postgres\": {\"url\": \"${TK_TEST_DB}\", \"pool_size\": 6},"
               " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\","
               "   \"heartbeat.interval.ms\": \"500\"}},"
               " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"plugin_dir\": \"%s/plugins/lua/.libs\","
               " \"shutdown_timeout_ms\": 20000,"
               " \"plugins\": [{\"name\": \"script\", \"load\": \"lua\","
               "   \"config\": {\"script\": \"%s\"%s},"
               "   \"consume\": {\"topics\": [\"task-events\"], \"group\": \"lua-group\","
               "     \"workers\": 4, \"retry\": {\"attempts\": 2, \"delay_ms\": 100}}}]}",
               bootstrap, th_builddir(), file, extra_config ? extra_config : "");
    snprintf(file, sizeof(file), "%s.json", name);
    return th_write(dir, file, text);
}

static void migrate(const char *cfg)
{
    const char *args[] = {"migrate", "-c", cfg, NULL};
    char *err = NULL;
    int rc = th_taskorad(args, NULL, &err, 60000);
    ck_assert_msg(rc == 0, "migrate: %s", err);
    free(err);
}

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_lua_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    setenv("TK_TEST_DB", dburl, 1);
    static const th_topic topics[] = {
        {"task-events", PARTITIONS}, {"task-events.dlq", 1}, {"audit-events", 1}, {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
}

static void teardown(void)
{
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    if (!getenv("TK_KEEP"))
        th_rmtree(dir);
    free(dir);
}

/* The payload of produce: {seq: base + seq, title, tags}. */
static json_t *task_payload(int seq, void *base)
{
    return json_pack("{s:i, s:s, s:[s,s]}", "seq", *(int *)base + seq, "title", "Buy milk", "tags",
                     "home", "errand");
}

/* Produces n events of `type` to task-events, keyed by user u<i % users>, payload {seq, title}. */
static void produce(int n, int users, const char *type, int seq_base)
{
    th_produce_events(bootstrap, "task-events", n, users, type, task_payload, &seq_base);
}

/* Messages written to a one-partition topic, once at least `want` or after timeout_s. */
static long wait_topic_messages(const char *topic, long want, int timeout_s)
{
    rd_kafka_t *rk = th_producer(bootstrap);
    int64_t lo = 0, hi = 0;
    double until = th_now_s() + timeout_s;
    do {
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000), 0);
        if (hi < want)
            rd_kafka_poll(rk, 100);
    } while (hi < want && th_now_s() < until);
    rd_kafka_destroy(rk);
    return (long)hi;
}

/* The effects script: each event inserts a row and bumps its user's counter, in one transaction
 * with the processed-event mark; its own tables come from migrations(). */
static const char *effects_script =
    "local seen = taskora.metrics.counter('taskora_lua_test_events_total', 'events', {'type'})\n"
    "function migrations()\n"
    "  return {\n"
    "    'CREATE TABLE lua_effects (n bigserial PRIMARY KEY, event_id text NOT NULL,'\n"
    "      .. ' user_id text NOT NULL, seq int NOT NULL, title text, version int)',\n"
    "    'CREATE TABLE lua_counters (user_id text PRIMARY KEY, n bigint NOT NULL)',\n"
    "  }\n"
    "end\n"
    "function handle(event)\n"
    "  seen:inc({type = event.type})\n"
    "  taskora.db.exec('INSERT INTO lua_effects (event_id, user_id, seq, title, version)'\n"
    "    .. ' VALUES ($1, $2, $3, $4, $5)', event.id, event.user_id, event.payload.seq,\n"
    "    event.payload.title, VERSION)\n"
    "  taskora.db.exec('INSERT INTO lua_counters VALUES ($1, 1) ON CONFLICT (user_id)'\n"
    "    .. ' DO UPDATE SET n = lua_counters.n + 1', event.user_id)\n"
    "  return 'ok'\n"
    "end\n";

static char *effects_version(int version)
{
    char *s = NULL;
    ck_assert_int_ge(asprintf(&s, "VERSION = %d\n%s", version, effects_script), 0);
    return s;
}

START_TEST(test_script_consumer_applies_every_event_exactly_once_across_a_sigkill)
{
    char *script = effects_version(1);
    char *cfg = write_config("effects", script, NULL);
    migrate(cfg);
    /* the script's steps are recorded under the instance's name, and run once */
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_migrations"
                                        " WHERE component = 'script'"),
                     2);
    migrate(cfg);
    produce(6000, 20, "task.created", 0);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "a");
    ck_assert_int_ge(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 1000, 60), 1000);
    kill(d.pid, SIGKILL);
    th_daemon_wait(&d, 10000);
    th_daemon_cleanup(&d);
    long at_kill = th_pg_count(dburl, "SELECT count(*) FROM lua_effects");
    ck_assert_msg(at_kill < 6000, "all were done before the kill (%ld)", at_kill);
    th_daemon_start_named(&d, dir, cfg, "a2");
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 6000, 120), 6000);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(DISTINCT event_id) FROM lua_effects"), 6000);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT sum(n) FROM lua_counters"), 6000);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_processed_events"
                                        " WHERE consumer_group = 'lua-group'"),
                     6000);
    /* per user, in order: seq increases with the row number */
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM (SELECT seq, lag(seq) OVER"
                                        " (PARTITION BY user_id ORDER BY n) AS prev"
                                        " FROM lua_effects) x WHERE prev >= seq"),
                     0);
    ck_assert(th_metric(d.url, "taskora_lua_test_events_total{plugin=\"script\","
                               "type=\"task.created\"}") >= 1);
    th_daemon_stop(&d);
    free(cfg);
    free(script);
}
END_TEST

/* What each test event type makes the script do. */
static const char *results_script =
    "function handle(event)\n"
    "  local t = event.type\n"
    "  if t == 'test.retry' then return 'retry' end\n"
    "  if t == 'test.fail' then return 'fail' end\n"
    "  if t == 'test.error' then error('boom for ' .. event.id) end\n"
    "  if t == 'test.io' then io.write('x') end\n"
    "  if t == 'test.loop' then while true do end end\n"
    "  if t == 'test.pcall' then\n"
    "    while true do pcall(function() while true do end end) end\n"
    "  end\n"
    "  if t == 'test.memory' then\n"
    "    local big = {}\n"
    "    for i = 1, 1e9 do big[i] = string.rep('x', 64) .. i end\n"
    "  end\n"
    "  if t == 'test.sqlerror' then\n"
    "    pcall(taskora.db.exec, 'INSERT INTO no_such_table VALUES (1)')\n"
    "    return 'ok'\n"
    "  end\n"
    "  if t == 'test.emit' then\n"
    "    taskora.emit('audit-events', 'audit.seen', event.user_id, {of = event.id})\n"
    "  end\n"
    "  taskora.db.exec('INSERT INTO lua_done VALUES ($1, $2, $3)', event.id, t, event.attempt)\n"
    "end\n";

/* The DLQ message whose x-taskora-error contains `needle`; fails the test, listing them all,
 * when there is none. */
static const th_dlq_msg *dlq_with(const th_dlq_msg *m, int n, const char *needle)
{
    char all[4096] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (strstr(m[i].error, needle))
            return &m[i];
        if (len < sizeof(all))
            len += (size_t)snprintf(all + len, sizeof(all) - len, "\n  %s", m[i].error);
    }
    ck_abort_msg("no dead letter says \"%s\"; they say:%s", needle, all);
    return NULL;
}

START_TEST(test_results_errors_and_budgets_reach_the_dlq_with_the_reason)
{
    th_pg_exec(dburl, "CREATE TABLE lua_done (event_id text, type text, attempt int)");
    char *cfg = write_config("results", results_script,
                             ", \"budget_ms\": 3000, \"budget_instructions\": 20000000,"
                             " \"memory_mb\": 24");
    migrate(cfg);
    produce(1, 1, "test.emit", 0);
    produce(40, 8, "task.created", 0);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "a");
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_done", 41, 60), 41);
    /* the emitted event went through the outbox, committed with the event's transaction */
    ck_assert_int_eq(wait_topic_messages("audit-events", 1, 30), 1);
    /* then the failing ones (the memory hog would starve its siblings of the shared cap) */
    const char *bad[] = {"test.retry", "test.fail",  "test.error",  "test.io",
                         "test.loop",  "test.pcall", "test.memory", "test.sqlerror"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        produce(1, 1, bad[i], 0);
    th_dlq_msg m[8];
    int got = th_dlq_read(bootstrap, "task-events.dlq", m, 8, 60, NULL, NULL);
    for (int i = 0; got != 8 && i < got; i++)
        fprintf(stderr, "dead letter %d: %s\n", i, m[i].error);
    ck_assert_int_eq(got, 8);
    const th_dlq_msg *x;
    ck_assert_ptr_nonnull(x = dlq_with(m, 8, "attempts exhausted: handle returned \"retry\""));
    ck_assert_str_eq(x->attempts, "2");
    ck_assert_ptr_nonnull(x = dlq_with(m, 8, "handler failed the event: handle returned \"fail\""));
    ck_assert_str_eq(x->attempts, "1");
    ck_assert_ptr_nonnull(dlq_with(m, 8, "results.lua:5: boom for "));
    ck_assert_ptr_nonnull(dlq_with(m, 8, "results.lua:6: forbidden: io is not available"));
    /* an endless loop is stopped by whichever budget runs out first (slow under valgrind) */
    ck_assert_ptr_nonnull(x = dlq_with(m, 8, "results.lua:7: "));
    ck_assert_msg(strstr(x->error, "budget of"), "%s", x->error);
    /* also when it catches the budget's error with pcall */
    ck_assert_ptr_nonnull(x = dlq_with(m, 8, "results.lua:9: "));
    ck_assert_msg(strstr(x->error, "budget of"), "%s", x->error);
    ck_assert_str_eq(x->consumer, "script");
    ck_assert_ptr_nonnull(dlq_with(m, 8, "not enough memory"));
    ck_assert_ptr_nonnull(dlq_with(m, 8, "a statement of the event's transaction failed"));
    /* nothing of a failed event was kept: each done row is a good event, once */
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM lua_done WHERE type LIKE 'test.%'"
                                        " AND type <> 'test.emit'"),
                     0);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(DISTINCT event_id) FROM lua_done"), 41);
    th_daemon_stop(&d);
    free(cfg);
}
END_TEST

/* Inside handle(): everything the sandbox withholds raises, what it offers works. */
static const char *sandbox_script =
    "local c = taskora.metrics.counter('taskora_lua_sandbox_total', 'checks', {'kind'})\n"
    "local function refused(f, what)\n"
    "  local ok, err = pcall(f)\n"
    "  if ok or not tostring(err):find('forbidden', 1, true) then\n"
    "    error(what .. ' was not refused: ' .. tostring(err))\n"
    "  end\n"
    "end\n"
    "function handle(event)\n"
    "  for _, name in ipairs({'io', 'debug', 'package', 'require', 'dofile', 'loadfile',\n"
    "                         'ffi', 'jit', 'getfenv', 'setfenv', 'collectgarbage',\n"
    "                         'newproxy'}) do\n"
    "    refused(function() return _G[name] end, name)\n"
    "  end\n"
    "  refused(function() return os.execute end, 'os.execute')\n"
    "  refused(function() return os.getenv end, 'os.getenv')\n"
    "  refused(function() return ('x'):dump() end, 'string.dump')\n"
    "  assert(string.dump == nil, 'string.dump is offered')\n"
    "  local f, err = load('\\27LJ\\2\\0')\n"
    "  assert(f == nil and err, 'bytecode was loaded')\n"
    "  assert(load('return 1 + 1')() == 2, 'text cannot be loaded')\n"
    "  assert(type(os.time()) == 'number' and os.date('%Y') and os.clock())\n"
    "  assert(not pcall(setmetatable, _G, nil), 'the globals lost their guard')\n"
    "  assert(taskora.json.decode(taskora.json.encode({a = {1, 2}})).a[2] == 2)\n"
    "  assert(event.payload.tags[2] == 'errand' and event.data.user_id == event.user_id)\n"
    "  local rows = taskora.db.query('SELECT 1::int AS n, true AS b, NULL::text AS z,'\n"
    "    .. ' $1::text AS s, $2::jsonb AS j', 'x', {k = 'v'})\n"
    "  local r = rows[1]\n"
    "  assert(#rows == 1 and r.n == 1 and r.b == true and r.z == nil and r.s == 'x')\n"
    "  assert(taskora.json.decode(r.j).k == 'v', 'a table parameter is JSON')\n"
    "  c:inc({kind = 'sandbox'})\n"
    "  local ok, err = pcall(c.inc, c, {nope = 'x'})\n"
    "  assert(not ok and err:find('has no label nope', 1, true), 'an undeclared label')\n"
    "  taskora.log.info('sandbox checked', {event = event.id})\n"
    "  taskora.db.exec('INSERT INTO lua_done VALUES ($1, $2, $3)', event.id, 'sandbox', 1)\n"
    "end\n";

START_TEST(test_the_sandbox_refuses_what_it_withholds_inside_handle)
{
    th_pg_exec(dburl, "CREATE TABLE lua_done (event_id text, type text, attempt int)");
    char *cfg = write_config("sandbox", sandbox_script, NULL);
    migrate(cfg);
    produce(1, 1, "task.created", 0);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "a");
    long done = th_pg_wait_count(dburl, "SELECT count(*) FROM lua_done", 1, 30);
    if (done != 1) {
        th_dlq_msg m[1];
        if (th_dlq_read(bootstrap, "task-events.dlq", m, 1, 10, NULL, NULL) == 1)
            ck_abort_msg("the sandbox check failed: %s", m[0].error);
    }
    ck_assert_int_eq(done, 1);
    ck_assert(th_wait_file_contains(d.log_path, "sandbox checked", 10000));
    ck_assert(th_metric(d.url, "taskora_lua_sandbox_total{plugin=\"script\",kind=\"sandbox\"}") ==
              1);
    th_daemon_stop(&d);
    free(cfg);
}
END_TEST

START_TEST(test_check_config_names_the_script_file_and_line)
{
    const struct {
        const char *script, *want;
    } cases[] = {
        {"local x = 1\nlocal f = io.open('/etc/passwd')\nfunction handle(e) end\n",
         "bad.lua:2: forbidden: io is not available to scripts"},
        {"function handle(e)\n  if then\nend\n", "bad.lua:2: unexpected symbol near 'then'"},
        {"local n = 0\n", "the script defines no function handle(event)"},
        {"while true do end\nfunction handle(e) end\n", "bad.lua:1: "},
        {"os.execute('true')\nfunction handle(e) end\n", "bad.lua:1: forbidden: os.execute"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cfg = write_config("bad", cases[i].script, ", \"budget_ms\": 200");
        const char *args[] = {"check-config", "-c", cfg, NULL};
        char *err = NULL;
        ck_assert_int_eq(th_taskorad(args, NULL, &err, 30000), 2);
        ck_assert_msg(strstr(err, cases[i].want), "case %zu: %s", i, err);
        if (i == 3) /* stopped by whichever budget ran out first */
            ck_assert_msg(strstr(err, " budget of "), "%s", err);
        free(err);
        free(cfg);
    }
    char *cfg = write_config("good", "function handle(e) end\n", NULL);
    const char *args[] = {"check-config", "-c", cfg, NULL};
    ck_assert_int_eq(th_taskorad(args, NULL, NULL, 30000), 0);
    free(cfg);
}
END_TEST

START_TEST(test_reload_between_events_keeps_the_old_script_when_the_new_one_fails)
{
    char *v1 = effects_version(1);
    char *cfg = write_config("effects", v1, ", \"watch\": false");
    migrate(cfg);
    produce(40, 4, "task.created", 0);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "a");
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 40, 60), 40);
    /* a new version, by SIGHUP: the next events run it */
    char *v2 = effects_version(2);
    free(th_write(dir, "effects.lua", v2));
    kill(d.pid, SIGHUP);
    ck_assert(th_wait_file_contains(d.log_path, "script reloaded", 10000));
    produce(40, 4, "task.created", 100);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 80, 60), 80);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM lua_effects WHERE version = 2"), 40);
    /* a broken one: logged with file and line, the version before goes on */
    free(th_write(dir, "effects.lua", "function handle(e)\n  return ((\nend\n"));
    kill(d.pid, SIGHUP);
    ck_assert(th_wait_file_contains(d.log_path, "reload failed", 10000));
    ck_assert(th_wait_file_contains(d.log_path, "effects.lua:3:", 1000));
    produce(40, 4, "task.created", 200);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 120, 60), 120);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM lua_effects WHERE version = 2"), 80);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(DISTINCT event_id) FROM lua_effects"), 120);
    th_daemon_stop(&d);
    free(v1);
    free(v2);
    free(cfg);
}
END_TEST

START_TEST(test_a_changed_script_file_is_reloaded_when_watched)
{
    char *v1 = effects_version(1);
    char *cfg = write_config("effects", v1, ", \"watch\": true");
    migrate(cfg);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "a");
    char *v3 = effects_version(3);
    free(th_write(dir, "effects.lua", v3));
    ck_assert(th_wait_file_contains(d.log_path, "the script file changed", 10000));
    produce(20, 4, "task.created", 0);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM lua_effects", 20, 60), 20);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM lua_effects WHERE version = 3"), 20);
    th_daemon_stop(&d);
    free(v1);
    free(v3);
    free(cfg);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_lua");
    Suite *s = suite_create("lua");
    TCase *tc = tcase_create("lua");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_script_consumer_applies_every_event_exactly_once_across_a_sigkill);
    tcase_add_test(tc, test_results_errors_and_budgets_reach_the_dlq_with_the_reason);
    tcase_add_test(tc, test_the_sandbox_refuses_what_it_withholds_inside_handle);
    tcase_add_test(tc, test_check_config_names_the_script_file_and_line);
    tcase_add_test(tc, test_reload_between_events_keeps_the_old_script_when_the_new_one_fails);
    tcase_add_test(tc, test_a_changed_script_file_is_reloaded_when_watched);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}

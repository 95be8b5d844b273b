/*
 * The Lua consumers of examples/lua/ exactly as shipped (their lua.json and scripts, the
 * environment filling in the addresses), run by taskorad against a real PostgreSQL, the
 * Kafka-protocol cluster owned by the test and a webhook receiver of our own
 * (libmicrohttpd), fed task events shaped like the ones the API publishes.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "hook_server.h"
#include "testhelp.h"
#include "th_kafka.h"

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */
static char config[4096];

/* ---- the webhook receiver ------------------------------------------------------------------ */

static hook_server hook;

/* Requests that carried event `id` (in the header and in the body's event_id). */
static int hook_requests_for(const char *id)
{
    int n = 0;
    pthread_mutex_lock(&hook.lock);
    for (int i = 0; i < hook.n; i++) {
        json_t *body = json_loads(hook.reqs[i].body, 0, NULL);
        const char *in_body = json_string_value(json_object_get(body, "event_id"));
        if (strcmp(hook.reqs[i].event_id, id) == 0) {
            ck_assert_msg(in_body && strcmp(in_body, id) == 0, "%s", hook.reqs[i].body);
            ck_assert_str_eq(hook.reqs[i].content_type, "application/json");
            n++;
        }
        json_decref(body);
    }
    pthread_mutex_unlock(&hook.lock);
    return n;
}

/* The body of the first request for event `id`, parsed (caller decrefs), or NULL. */
static json_t *hook_body_for(const char *id)
{
    json_t *out = NULL;
    pthread_mutex_lock(&hook.lock);
    for (int i = 0; i < hook.n && !out; i++)
        if (strcmp(hook.reqs[i].event_id, id) == 0)
            out = json_loads(hook.reqs[i].body, 0, NULL);
    pthread_mutex_unlock(&hook.lock);
    return out;
}

/* ---- events shaped like the API's (plugins/http_api/task_write.c) ---------------------------- */

typedef struct event {
    char id[37];
    char user[8];
    char *value;
} event;

static void event_make(event *e, const char *type, const char *user, long task, json_t *payload)
{
    snprintf(e->user, sizeof(e->user), "%s", user);
    char subject[24];
    snprintf(subject, sizeof(subject), "%ld", task);
    e->value = tk_event_encode("taskora-backend", type, user, subject, payload, e->id);
    json_decref(payload);
    ck_assert_ptr_nonnull(e->value);
}

/* task.created: the task's fields, its tags by name. */
static void created(event *e, const char *user, long task, const char *priority, json_t *tags)
{
    event_make(e, "task.created", user, task,
               json_pack("{s:I, s:s, s:s, s:n, s:n, s:b, s:b, s:n, s:o}", "task_id",
                         (json_int_t)task, "title", "Buy milk", "priority", priority, "due_date",
                         "reminder_at", "completed", 0, "is_recurring", 0, "recurrence_rule",
                         "tags", tags));
}

/* Produces the events to task-events, keyed by user as the relay does. */
static void produce(event *evs, int n)
{
    rd_kafka_t *p = th_producer(bootstrap);
    for (int i = 0; i < n; i++)
        th_send(p, "task-events", evs[i].user, evs[i].value);
    th_producer_close(p);
}

static void events_free(event *evs, int n)
{
    for (int i = 0; i < n; i++)
        free(evs[i].value);
}

/* ---- fixture ----------------------------------------------------------------------------- */

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_luaex_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    static const th_topic topics[] = {{"task-events", 4}, {"task-events.dlq", 1}, {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
    hook_start(&hook);
    /* what examples/lua/README.md tells a user to set */
    const char *src = getenv("TK_SRCDIR") ? getenv("TK_SRCDIR") : "..";
    snprintf(config, sizeof(config), "%s/examples/lua/lua.json", src);
    setenv("DATABASE_URL", dburl, 1);
    setenv("KAFKA_BROKERS", bootstrap, 1);
    setenv("TASKORA_PLUGIN_DIR", th_fmt("%s/plugins/lua/.libs", th_builddir()), 1);
    setenv("TASKORA_HTTP_LISTEN", "127.0.0.1:0", 1);
    setenv("WEBHOOK_URL", hook.url, 1);
    th_migrate(config);
}

static void teardown(void)
{
    hook_stop(&hook);
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    if (!getenv("TK_KEEP"))
        th_rmtree(dir);
    free(dir);
}

/* Waits until each of the three instances has finished `n` events. */
static void wait_handled(th_daemon *d, double n)
{
    static const char *const names[] = {"audit", "webhook", "tags"};
    for (int i = 0; i < 3; i++) {
        char series[128];
        snprintf(series, sizeof(series), "taskora_consumer_succeeded_total{plugin=\"%s\"}",
                 names[i]);
        ck_assert_double_eq(th_wait_metric(d->url, series, n, 60), n);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_the_shipped_config_checks_and_migrates_the_scripts_tables)
{
    const char *args[] = {"check-config", "-c", config, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(th_taskorad(args, &out, &err, 30000) == 0, "%s%s", out, err);
    ck_assert_msg(strstr(out, "OK (3 plugin instances)"), "%s", out);
    free(out);
    free(err);
    /* check-config runs the scripts' top level: webhook.lua's own check of its setting */
    setenv("WEBHOOK_URL", "ftp://example.com/hook", 1);
    out = err = NULL;
    ck_assert_int_ne(th_taskorad(args, &out, &err, 30000), 0);
    ck_assert_msg(strstr(err, "webhook.lua:") && strstr(err, "settings.url"), "%s", err);
    free(out);
    free(err);
    /* migrate (the fixture's) recorded each script's steps under its instance's name */
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_migrations"
                                        " WHERE component = 'audit'"),
                     2);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_migrations"
                                        " WHERE component = 'tags'"),
                     1);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_migrations"
                                        " WHERE component = 'webhook'"),
                     0);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM audit_log"), 0);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM tag_counts"), 0);
}
END_TEST

/* Checks the audit row of event e: one row, with the event's fields. */
static void assert_audited(const event *e, const char *type_user_subject, const char *tags)
{
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM audit_log WHERE event_id = '%s'", e->id)),
        1);
    char *row =
        th_pg_query1(dburl, th_fmt("SELECT type || '|' || user_id || '|' || subject FROM audit_log"
                                   " WHERE event_id = '%s'",
                                   e->id));
    ck_assert_str_eq(row, type_user_subject);
    free(row);
    if (tags) {
        char *got = th_pg_query1(
            dburl,
            th_fmt("SELECT (payload->'tags')::text FROM audit_log WHERE event_id = '%s'", e->id));
        ck_assert_str_eq(got, tags);
        free(got);
    }
}

START_TEST(test_the_examples_audit_count_tags_and_call_the_webhook_for_high_priority)
{
    th_daemon d;
    th_daemon_start_named(&d, dir, config, "lua");
    event ev[6];
    created(&ev[0], "5", 42, "high", json_pack("[s,s]", "home", "errands"));
    created(&ev[1], "5", 43, "low", json_pack("[s]", "home"));
    created(&ev[2], "6", 44, "medium", json_array());
    event_make(
        &ev[3], "task.updated", "5", 43,
        json_pack("{s:i, s:s, s:[s]}", "task_id", 43, "priority", "high", "changes", "priority"));
    event_make(&ev[4], "task.completed", "5", 42,
               json_pack("{s:i, s:b, s:s, s:s}", "task_id", 42, "completed", 1, "status_change",
                         "completed", "completed_at", "2026-02-04T12:30:00"));
    event_make(&ev[5], "task.deleted", "6", 44, json_pack("{s:i}", "task_id", 44));
    produce(ev, 6);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM audit_log", 6, 60), 6);
    wait_handled(&d, 6);

    /* audit.lua: each event once, as it came (an empty list stays a list, null stays null) */
    assert_audited(&ev[0], "task.created|5|42", "[\"home\", \"errands\"]");
    assert_audited(&ev[2], "task.created|6|44", "[]");
    assert_audited(&ev[3], "task.updated|5|43", NULL);
    assert_audited(&ev[4], "task.completed|5|42", NULL);
    assert_audited(&ev[5], "task.deleted|6|44", NULL);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM audit_log WHERE payload->'due_date'"
                                        " = 'null'::jsonb AND payload->>'priority' = 'high'"),
                     1);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM audit_log"
                                        " WHERE at > now() - interval '1 hour'"),
                     6);
    /* tag_counter.lua: tasks created per user and tag, and the same on /metrics */
    char *counts = th_pg_query1(dburl, "SELECT string_agg(user_id || ':' || tag || '=' || count,"
                                       " ',' ORDER BY user_id, tag) FROM tag_counts");
    ck_assert_str_eq(counts, "5:errands=1,5:home=2");
    free(counts);
    ck_assert_double_eq(th_metric(d.url, "taskora_lua_tag_tasks_total{plugin=\"tags\","
                                         "tag=\"home\"}"),
                        2);
    ck_assert_double_eq(th_metric(d.url, "taskora_lua_tag_tasks_total{plugin=\"tags\","
                                         "tag=\"errands\"}"),
                        1);
    /* webhook.lua: exactly the two events that made a task high priority, once each */
    ck_assert_int_eq(hook_count(&hook), 2);
    ck_assert_int_eq(hook_requests_for(ev[0].id), 1);
    ck_assert_int_eq(hook_requests_for(ev[3].id), 1);
    json_t *body = hook_body_for(ev[0].id);
    ck_assert_str_eq(json_string_value(json_object_get(body, "type")), "task.created");
    ck_assert_str_eq(json_string_value(json_object_get(body, "user_id")), "5");
    json_t *task = json_object_get(body, "task");
    ck_assert_str_eq(json_string_value(json_object_get(task, "priority")), "high");
    ck_assert_int_eq(json_integer_value(json_object_get(task, "task_id")), 42);
    ck_assert(json_is_null(json_object_get(task, "due_date")));
    ck_assert_int_eq(json_array_size(json_object_get(task, "tags")), 2);
    json_decref(body);
    ck_assert_double_eq(th_metric(d.url, "taskora_lua_webhook_calls_total{plugin=\"webhook\","
                                         "status=\"200\"}"),
                        2);

    /* the same six events delivered again (same ids, as after a crash) */
    produce(ev, 6);
    wait_handled(&d, 12);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM audit_log"), 6);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(DISTINCT event_id) FROM audit_log"), 6);
    counts = th_pg_query1(dburl, "SELECT string_agg(user_id || ':' || tag || '=' || count,"
                                 " ',' ORDER BY user_id, tag) FROM tag_counts");
    ck_assert_str_eq(counts, "5:errands=1,5:home=2");
    free(counts);
    /* a duplicate stops at its first database call, before the counter */
    ck_assert_double_eq(th_metric(d.url, "taskora_lua_tag_tasks_total{plugin=\"tags\","
                                         "tag=\"home\"}"),
                        2);
    /* an HTTP call is at least once: the receiver deduplicates on X-Taskora-Event-Id */
    ck_assert_int_eq(hook_count(&hook), 4);
    ck_assert_int_eq(hook_requests_for(ev[0].id), 2);
    ck_assert_int_eq(hook_requests_for(ev[3].id), 2);
    th_daemon_stop(&d);
    events_free(ev, 6);
}
END_TEST

static int from_webhook(const th_dlq_msg *m, void *ud)
{
    (void)ud;
    return strcmp(m->consumer, "webhook") == 0;
}

START_TEST(test_a_failing_webhook_sends_the_event_to_the_dlq_with_the_error)
{
    hook_set_status(&hook, 500);
    th_daemon d;
    th_daemon_start_named(&d, dir, config, "lua");
    event ev[2];
    created(&ev[0], "7", 50, "high", json_pack("[s]", "work"));
    created(&ev[1], "7", 51, "low", json_array());
    produce(ev, 2);
    th_dlq_msg m;
    ck_assert_int_eq(th_dlq_read(bootstrap, "task-events.dlq", &m, 1, 60, from_webhook, NULL), 1);
    ck_assert_str_eq(m.attempts, "2");
    ck_assert_str_eq(m.topic, "task-events");
    ck_assert_msg(strstr(m.error, "attempts exhausted") && strstr(m.error, "webhook.lua:") &&
                      strstr(m.error, th_fmt("webhook %s failed", hook.url)) &&
                      strstr(m.error, "HTTP 500"),
                  "%s", m.error);
    /* two tries of the event (consume retry), each two calls (the target's retry policy) */
    ck_assert_int_eq(hook_wait(&hook, 4, 10), 4);
    ck_assert_int_eq(hook_requests_for(ev[0].id), 4);
    /* the low-priority event was no business of the webhook; the other instances go on */
    ck_assert_double_eq(
        th_wait_metric(d.url, "taskora_consumer_succeeded_total{plugin=\"webhook\"}", 1, 30), 1);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM audit_log", 2, 30), 2);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM tag_counts", 1, 30), 1);
    ck_assert_int_eq(hook_count(&hook), 4);
    th_daemon_stop(&d);
    events_free(ev, 2);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_lua_examples");
    Suite *s = suite_create("lua_examples");
    TCase *tc = tcase_create("examples");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_the_shipped_config_checks_and_migrates_the_scripts_tables);
    tcase_add_test(tc, test_the_examples_audit_count_tags_and_call_the_webhook_for_high_priority);
    tcase_add_test(tc, test_a_failing_webhook_sends_the_event_to_the_dlq_with_the_error);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}

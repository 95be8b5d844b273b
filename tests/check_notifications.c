/*
 * The notifications plugin end to end: an API taskorad (http_api + notifications routes) and
 * notification workers (scheduler + webhook sender) on a real PostgreSQL and a Kafka-protocol
 * cluster owned by the test, with a webhook receiver of our own (libmicrohttpd) that checks
 * every signature.
 */
#include <check.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hook_server.h"
#include "kit.h"
#include "testhelp.h"
#include "th_kafka.h"

#define SECRET "whsec-test-6b1f0c9e27d4"
#define JWT_SECRET "notif-secret-0123456789abcdef0123456789"

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */
static th_daemon api;

/* ---- the webhook receiver -------------------------------------------------------------------- */

static hook_server hook;

/* Whether the request carries sha256=<hex HMAC-SHA256(SECRET, body)>. */
static int signature_valid(const hook_req *r)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)r->body, strlen(r->body),
         mac, &len);
    char want[80] = "sha256=";
    for (unsigned int i = 0; i < len; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
    return strlen(r->signature) == strlen(want) &&
           CRYPTO_memcmp(r->signature, want, strlen(want)) == 0;
}

/* Requests the receiver got whose body is the event of task `task_id`; `answered_ok` of them
 * were answered 200. Every one must be signed correctly and carry its event id. */
static int hook_requests_for(long task_id, int *answered_ok)
{
    int total = 0, ok = 0;
    pthread_mutex_lock(&hook.lock);
    for (int i = 0; i < hook.n; i++) {
        hook_req *r = &hook.reqs[i];
        json_t *ev = json_loads(r->body, 0, NULL);
        json_t *payload = json_object_get(json_object_get(ev, "data"), "payload");
        if (json_integer_value(json_object_get(payload, "task_id")) == task_id) {
            total++;
            ok += r->status == 200;
            ck_assert_msg(signature_valid(r), "bad signature %s for %s", r->signature, r->body);
            ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "task.reminder");
            ck_assert_str_eq(json_string_value(json_object_get(ev, "id")), r->event_id);
            ck_assert_str_eq(json_string_value(json_object_get(payload, "reminder_type")),
                             "custom");
            ck_assert_str_eq(r->content_type, "application/json");
        }
        json_decref(ev);
    }
    pthread_mutex_unlock(&hook.lock);
    if (answered_ok)
        *answered_ok = ok;
    return total;
}

/* ---- processes ------------------------------------------------------------------------------- */

static const char *common_config(void)
{
    return th_fmt(
        "\"app_id\": \"notif-test\", \"log\": {\"format\": \"text\"},"
        " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/notifications/.libs\","
        " \"postgres\": {\"url\": \"${TK_TEST_DB}\", \"pool_size\": 4,"
        "  \"acquire_timeout_ms\": 2000, \"connect_timeout_s\": 2},"
        " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\","
        "  \"heartbeat.interval.ms\": \"500\", \"fetch.wait.max.ms\": \"10\"}},"
        " \"outbox\": {\"poll_ms\": 200, \"retention_s\": 3600},"
        " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"shutdown_timeout_ms\": 20000",
        th_builddir(), th_builddir(), bootstrap);
}

/* The API pod: http_api (and its consumer of task.reminder, which marks reminder_sent), and
 * notifications for its routes only. */
static char *api_config(void)
{
    return th_write(dir, "api.json",
                    th_fmt("{%s, \"plugins\": ["
                           " {\"name\": \"api\", \"load\": \"http_api\", \"config\":"
                           "  {\"jwt_secret\": \"" JWT_SECRET "\", \"bcrypt_cost\": 4},"
                           "  \"consume\": {\"topics\": [\"task-events\"], \"workers\": 2,"
                           "   \"retry\": {\"attempts\": 2, \"delay_ms\": 100}}},"
                           " {\"name\": \"notif\", \"load\": \"notifications\","
                           "  \"config\": {\"scheduler\": false}}]}",
                           common_config()));
}

/* A notification worker: scheduler, webhook sender, consumer of task- and user-events. */
static char *worker_config(const char *name, int poll_ms)
{
    return th_write(
        dir, th_fmt("%s.json", name),
        th_fmt("{%s,"
               " \"resiliency\": {\"targets\": {\"webhook.notif\": {\"retry\": {\"attempts\": 3,"
               "  \"delay_ms\": 100, \"max_delay_ms\": 1000}, \"circuit_breaker\": {\"failures\": "
               "50}}}},"
               " \"plugins\": [{\"name\": \"notif\", \"load\": \"notifications\","
               "  \"config\": {\"routes\": false, \"poll_ms\": %d, \"webhook_url\": \"%s\","
               "   \"webhook_secret\": \"" SECRET "\", \"webhook_timeout_ms\": 2000},"
               "  \"consume\": {\"topics\": [\"task-events\", \"user-events\"], \"workers\": 2,"
               "   \"retry\": {\"attempts\": 2, \"delay_ms\": 100}}}]}",
               common_config(), poll_ms, hook.url));
}

static void start_daemon(th_daemon *d, const char *cfg, const char *name)
{
    th_daemon_start_named(d, dir, cfg, name);
}

static void start_worker(th_daemon *d, const char *name, int poll_ms)
{
    char *cfg = worker_config(name, poll_ms);
    start_daemon(d, cfg, name);
    free(cfg);
}

/* SIGINT (a stop without the drain delay): the process must exit 0 (threads joined, nothing
 * left running). */

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_notif_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    setenv("TK_TEST_DB", dburl, 1);
    static const th_topic topics[] = {{"task-events", 2},
                                      {"task-events.dlq", 1},
                                      {"user-events", 2},
                                      {"user-events.dlq", 1},
                                      {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
    hook_start(&hook);
    /* migrate core, http_api and notifications, then start the API pod */
    char *cfg = api_config();
    const char *args[] = {"migrate", "-c", cfg, NULL};
    char *out = NULL, *err = NULL;
    int rc = th_taskorad(args, &out, &err, 60000);
    ck_assert_msg(rc == 0, "migrate: %s", err);
    ck_assert_msg(strstr(out, "notifications"), "no notifications step applied: %s", out);
    free(out);
    free(err);
    start_daemon(&api, cfg, "api");
    free(cfg);
}

static void teardown(void)
{
    th_daemon_stop(&api);
    hook_stop(&hook);
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

/* ---- the REST API ---------------------------------------------------------------------------- */

typedef struct reply {
    long status;
    json_t *json;
    char body[8192];
} reply;

static reply call(const char *method, const char *path, const char *body, const char *tok)
{
    char auth[1100];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
    const char *h[] = {"Content-Type: application/json", tok ? auth : NULL, NULL};
    th_response r;
    ck_assert_int_eq(
        th_http(method, th_fmt("%s%s", api.url, path), body, body ? strlen(body) : 0, h, &r), 0);
    reply out = {.status = r.status};
    out.json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    snprintf(out.body, sizeof(out.body), "%s", r.body ? r.body : "");
    th_response_free(&r);
    return out;
}

typedef struct user {
    char token[1024];
    char id[24];
} user;

static user new_user(const char *tag)
{
    user u;
    const char *email = th_fmt("%s-%d@example.com", tag, (int)getpid());
    reply r = call("POST", "/api/auth/register",
                   th_fmt("{\"email\":\"%s\",\"name\":\"N\",\"password\":\"pw\"}", email), NULL);
    ck_assert_msg(r.status == 201, "register: %ld %s", r.status, r.body);
    snprintf(u.id, sizeof(u.id), "%lld",
             (long long)json_integer_value(json_object_get(r.json, "id")));
    json_decref(r.json);
    r = call("POST", "/api/auth/login", th_fmt("{\"email\":\"%s\",\"password\":\"pw\"}", email),
             NULL);
    ck_assert_int_eq(r.status, 200);
    snprintf(u.token, sizeof(u.token), "%s",
             json_string_value(json_object_get(r.json, "access_token")));
    json_decref(r.json);
    return u;
}

/* UTC ISO 8601 of now + secs. */
static const char *iso_in(int secs)
{
    time_t t = time(NULL) + secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[40];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return th_fmt("%s", buf);
}

/* Creates a task through POST /api/tasks with a reminder `secs` from now; its id. */
static long task_with_reminder(const user *u, const char *title, int secs)
{
    reply r = call("POST", "/api/tasks",
                   th_fmt("{\"title\":\"%s\",\"due_date\":\"2030-01-02T09:30:00Z\","
                          "\"reminder_at\":\"%s\"}",
                          title, iso_in(secs)),
                   u->token);
    ck_assert_msg(r.status == 201, "create: %ld %s", r.status, r.body);
    long id = (long)json_integer_value(json_object_get(r.json, "id"));
    json_decref(r.json);
    return id;
}

static long notifications_of_task(long task_id)
{
    return th_pg_count(dburl,
                       th_fmt("SELECT count(*) FROM notifications WHERE task_id = %ld", task_id));
}

/* Waits until the task's reminder is in the in-app list its owner sees. */
static int wait_notified(long task_id, int timeout_s)
{
    return th_pg_wait_count(
               dburl, th_fmt("SELECT count(*) FROM notifications WHERE task_id = %ld", task_id), 1,
               timeout_s) >= 1;
}

static const char *reminder_events(long task_id)
{
    return th_fmt(
        "SELECT count(*) FROM taskora_outbox WHERE value::jsonb->>'type' = 'task.reminder'"
        " AND sent_at IS NOT NULL AND value::jsonb->>'subject' = '%ld'"
        " AND (value::jsonb->'data'->'payload'->>'task_id')::int = %ld"
        " AND value::jsonb->'data'->'payload'->>'reminder_type' = 'custom'",
        task_id, task_id);
}

/* ---- events the test puts on Kafka itself ------------------------------------------------- */

/* Produces value with key on topic, partitioned as taskorad's producer does (by key). */
static void produce(const char *topic, const char *key, const char *value)
{
    th_produce(bootstrap, topic, key, value);
}

/* A bare event (the data object without the CloudEvents wrapper, which consumers accept), with
 * an id of its own. Valid until 8 more th_fmt calls. */
static const char *bare_event(const char *id, const char *type, const char *user_id,
                              const char *payload)
{
    return th_fmt("{\"event_id\":\"%s-%d\",\"event_type\":\"%s\",\"timestamp\":\"%s\","
                  "\"user_id\":\"%s\",\"payload\":%s}",
                  id, (int)getpid(), type, iso_in(0), user_id, payload);
}

/* Waits until consumer group `group` handled the bare event `id` (it records it in pg_once). */
static int wait_handled(const char *group, const char *id)
{
    return th_pg_wait_count(dburl,
                            th_fmt("SELECT count(*) FROM taskora_processed_events"
                                   " WHERE consumer_group = '%s' AND event_id = '%s-%d'",
                                   group, id, (int)getpid()),
                            1, 20) == 1;
}

/* The value of the outbox row of task `task_id`'s event of `type` (malloc'd; the one there is). */
static char *outbox_value(const char *type, long task_id)
{
    char *v = th_pg_query1(dburl, th_fmt("SELECT value FROM taskora_outbox"
                                         " WHERE value::jsonb->>'type' = '%s'"
                                         " AND value::jsonb->>'subject' = '%ld'",
                                         type, task_id));
    ck_assert_msg(v && *v, "no %s event for task %ld", type, task_id);
    return v;
}

/* Waits until the API shows the task's reminder as sent (it follows task.reminder). */
static int wait_reminder_sent(long task_id)
{
    return th_pg_wait_count(
               dburl,
               th_fmt("SELECT count(*) FROM tasks WHERE id = %ld AND reminder_sent", task_id), 1,
               20) == 1;
}

/* Answers 2xx to a call whose body does not matter. */
static void call_ok(const char *method, const char *path, const char *body, const user *u)
{
    reply r = call(method, path, body, u->token);
    ck_assert_msg(r.status >= 200 && r.status < 300, "%s %s: %ld %s", method, path, r.status,
                  r.body);
    json_decref(r.json);
}

/* ---- tests ----------------------------------------------------------------------------------- */

START_TEST(test_due_reminders_fire_once_across_two_schedulers_on_every_channel)
{
    th_daemon w1, w2;
    start_worker(&w1, "w1", 200); /* both poll fast: they race for every due reminder */
    start_worker(&w2, "w2", 200);
    user u = new_user("race");
    enum { N = 8 };
    long ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = task_with_reminder(&u, th_fmt("call the bank %d", i), 2);
    /* a completed and a deleted task: their reminders must never fire */
    long done = task_with_reminder(&u, "completed before its reminder", 2);
    reply r =
        call("PATCH", th_fmt("/api/tasks/%ld/complete", done), "{\"completed\":true}", u.token);
    ck_assert_int_eq(r.status, 200);
    json_decref(r.json);
    long gone = task_with_reminder(&u, "deleted before its reminder", 2);
    r = call("DELETE", th_fmt("/api/tasks/%ld", gone), NULL, u.token);
    ck_assert_int_eq(r.status, 200);
    json_decref(r.json);
    /* due after all the others: once it fired, the schedulers have been past their times */
    long later = task_with_reminder(&u, "later one", 4);

    ck_assert_msg(wait_notified(later, 30), "the later reminder did not fire");
    /* the earlier ones may still be in the other scheduler's open transaction */
    for (int i = 0; i < N; i++)
        ck_assert_msg(wait_notified(ids[i], 10), "reminder %d did not fire", i);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM notifications", N + 1, 10),
                     N + 1);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(notifications_of_task(ids[i]), 1);
    ck_assert_int_eq(notifications_of_task(done), 0);
    ck_assert_int_eq(notifications_of_task(gone), 0);
    /* never early, and the task says it was sent (once the API consumed task.reminder) */
    ck_assert_int_eq(
        th_pg_wait_count(dburl, "SELECT count(*) FROM tasks WHERE reminder_sent", N + 1, 20),
        N + 1);
    ck_assert_int_eq(
        th_pg_count(dburl, "SELECT count(*) FROM notifications n JOIN tasks t ON t.id = n.task_id"
                           " WHERE n.created_at < t.reminder_at OR NOT t.reminder_sent"),
        0);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM tasks WHERE reminder_sent"), N + 1);

    /* the user sees them, newest first, in the API's shape */
    r = call("GET", "/api/notifications", NULL, u.token);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(json_array_size(r.json), N + 1);
    json_t *first = json_array_get(r.json, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "task_id")), later);
    ck_assert_str_eq(json_string_value(json_object_get(first, "type")), "reminder");
    ck_assert_str_eq(json_string_value(json_object_get(first, "title")), "later one");
    ck_assert_str_eq(json_string_value(json_object_get(first, "message")),
                     "Reminder: later one (due 2030-01-02 09:30 UTC)");
    ck_assert(json_is_null(json_object_get(first, "read_at")));
    ck_assert(json_is_integer(json_object_get(first, "id")));
    const char *created = json_string_value(json_object_get(first, "created_at"));
    ck_assert_msg(created && strlen(created) == 32 && strcmp(created + 26, "+00:00") == 0,
                  "created_at %s", created ? created : "(null)");
    ck_assert_int_eq(json_object_size(first), 7);
    for (size_t i = 1; i < json_array_size(r.json); i++) {
        const char *a = json_string_value(
                       json_object_get(json_array_get(r.json, i - 1), "created_at")),
                   *b = json_string_value(json_object_get(json_array_get(r.json, i), "created_at"));
        ck_assert_msg(strcmp(a, b) >= 0, "not newest first: %s before %s", a, b);
    }
    json_decref(r.json);

    /* one task.reminder each reached Kafka */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(ids[i]), 1, 20), 1);
    ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(later), 1, 20), 1);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_outbox"
                                        " WHERE value::jsonb->>'type' = 'task.reminder'"),
                     N + 1);
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM taskora_outbox"
                                  " WHERE value::jsonb->>'type' = 'task.reminder'"
                                  " AND key = '%s' AND value::jsonb->'data'->>'user_id' = '%s'",
                                  u.id, u.id)),
        N + 1);

    /* the webhook got each exactly once, signed, the same event as on Kafka */
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      "SELECT count(*) FROM notification_webhooks"
                                      " WHERE delivered_at IS NOT NULL",
                                      N + 1, 30),
                     N + 1);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(hook_requests_for(ids[i], NULL), 1);
    ck_assert_int_eq(hook_requests_for(later, NULL), 1);
    ck_assert_int_eq(hook_requests_for(done, NULL) + hook_requests_for(gone, NULL), 0);
    ck_assert_int_eq(hook_count(&hook), N + 1);
    ck_assert_int_eq(
        th_pg_count(dburl, "SELECT count(*) FROM notification_webhooks w JOIN taskora_outbox o"
                           " ON o.value = w.body"),
        N + 1);

    /* both schedulers counted what they fired (just after each commit): N + 1 together */
    const char *series = "taskora_notifications_reminders_fired_total{plugin=\"notif\"}";
    double fired = 0, end = th_now_s() + 10;
    do {
        double f1 = th_metric(w1.url, series), f2 = th_metric(w2.url, series);
        fired = (f1 > 0 ? f1 : 0) + (f2 > 0 ? f2 : 0);
    } while (fired != N + 1 && th_now_s() < end && usleep(50000) == 0);
    ck_assert_double_eq(fired, N + 1);
    th_daemon_stop(&w1);
    th_daemon_stop(&w2);
}
END_TEST

START_TEST(test_read_marks_one_notification_and_other_users_get_404)
{
    user a = new_user("reader"), b = new_user("other");
    /* set while no scheduler runs: the worker finds it in the database when it starts */
    long t1 = task_with_reminder(&a, "water the plants", 1);
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      th_fmt("SELECT count(*) FROM tasks WHERE id = %ld"
                                             " AND reminder_at < now() AT TIME ZONE 'utc'",
                                             t1),
                                      1, 10),
                     1);
    th_daemon w;
    start_worker(&w, "w", 60000); /* a long poll: only the task events wake it up */
    ck_assert_msg(wait_notified(t1, 20), "the overdue reminder did not fire at start");
    long t2 = task_with_reminder(&a, "feed the cat", 2);
    ck_assert_msg(wait_notified(t2, 20), "the task event did not wake the scheduler");

    reply r = call("GET", "/api/notifications?unread=true", NULL, a.token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_array_size(r.json), 2);
    json_int_t newest = json_integer_value(json_object_get(json_array_get(r.json, 0), "id"));
    json_int_t oldest = json_integer_value(json_object_get(json_array_get(r.json, 1), "id"));
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.json, 0), "task_id")), t2);
    json_decref(r.json);

    /* another user: not found, exactly like a missing one, and it stays unread */
    r = call("POST", th_fmt("/api/notifications/%lld/read", (long long)oldest), NULL, b.token);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "{\"detail\":\"Notification not found\"}");
    json_decref(r.json);
    r = call("GET", "/api/notifications", NULL, b.token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "[]");
    json_decref(r.json);
    r = call("POST", "/api/notifications/999999/read", NULL, a.token);
    ck_assert_int_eq(r.status, 404);
    json_decref(r.json);

    r = call("POST", th_fmt("/api/notifications/%lld/read", (long long)oldest), NULL, a.token);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "id")), oldest);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "task_id")), t1);
    const char *read_at = json_string_value(json_object_get(r.json, "read_at"));
    ck_assert_ptr_nonnull(read_at);
    char first_read[64];
    snprintf(first_read, sizeof(first_read), "%s", read_at);
    json_decref(r.json);
    /* reading again keeps the first time */
    r = call("POST", th_fmt("/api/notifications/%lld/read", (long long)oldest), NULL, a.token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "read_at")), first_read);
    json_decref(r.json);

    r = call("GET", "/api/notifications?unread=true", NULL, a.token);
    ck_assert_int_eq(json_array_size(r.json), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.json, 0), "id")), newest);
    json_decref(r.json);
    r = call("GET", "/api/notifications", NULL, a.token);
    ck_assert_int_eq(json_array_size(r.json), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r.json, 1), "read_at")),
                     first_read);
    json_decref(r.json);

    /* the contract's errors */
    r = call("GET", "/api/notifications", NULL, NULL);
    ck_assert_int_eq(r.status, 401);
    json_decref(r.json);
    r = call("GET", "/api/notifications?unread=maybe", NULL, a.token);
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(r.json, "detail"), 0), "type")),
                     "bool_parsing");
    json_decref(r.json);
    r = call("POST", "/api/notifications/abc/read", NULL, a.token);
    ck_assert_int_eq(r.status, 422);
    json_decref(r.json);
    th_daemon_stop(&w);
}
END_TEST

/* th_dlq_read's filter: the messages one consumer (instance name ud) dead-lettered. */
static int from_consumer(const th_dlq_msg *m, void *ud) { return strcmp(m->consumer, ud) == 0; }

START_TEST(test_poison_event_goes_to_the_dlq_and_reminders_keep_firing)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    static const char poison[] = "{this is not json";
    th_produce(bootstrap, "task-events", NULL, poison);
    th_dlq_msg m[1];
    /* (the API's consumer of task.reminder dead-letters it too, under its own name) */
    ck_assert_int_eq(th_dlq_read(bootstrap, "task-events.dlq", m, 1, 30, from_consumer, "notif"),
                     1);
    ck_assert_uint_eq(m[0].len, strlen(poison));
    ck_assert_str_eq(m[0].consumer, "notif");
    ck_assert_str_eq(m[0].topic, "task-events");
    ck_assert_msg(strstr(m[0].error, "not JSON"), "x-taskora-error: %s", m[0].error);
    /* the worker goes on: a reminder set now fires, woken by its task event */
    user u = new_user("poison");
    long t = task_with_reminder(&u, "after the poison", 1);
    ck_assert_msg(wait_notified(t, 20), "no reminder after the poison event");
    ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(t), 1, 20), 1);
    th_daemon_stop(&w);
}
END_TEST

/* Cuts the test database off: no new connections, every backend terminated. */
static void database_down(int down)
{
    th_pg_exec(th_pg_admin_url(),
               th_fmt("ALTER DATABASE %s ALLOW_CONNECTIONS %s", dbname, down ? "false" : "true"));
    if (down) {
        const char *sql = th_fmt("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE datname = '%s' AND pid <> pg_backend_pid()",
                                 dbname);
        char *v = th_pg_query1(th_pg_admin_url(), sql);
        free(v);
        double end = th_now_s() + 10;
        long left = 1;
        while (left > 0 && th_now_s() < end) {
            v = th_pg_query1(
                th_pg_admin_url(),
                th_fmt("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'", dbname));
            left = atol(v);
            free(v);
            if (left > 0)
                usleep(20000);
        }
        ck_assert_int_eq(left, 0);
    }
}

START_TEST(test_scheduler_survives_a_database_outage_and_fires_what_came_due)
{
    th_daemon w;
    start_worker(&w, "w", 1000);
    user u = new_user("outage");
    time_t due = time(NULL) + 2;
    long during = task_with_reminder(&u, "due during the outage", 2);
    database_down(1);
    ck_assert_msg(th_wait_file_contains(w.log_path, "scheduler: ", 20000),
                  "the scheduler never met the outage");
    while (time(NULL) <= due) /* the reminder comes due while the database is away */
        usleep(50000);
    database_down(0);
    ck_assert_msg(wait_notified(during, 30), "the reminder due during the outage did not fire");
    long after = task_with_reminder(&u, "set after recovery", 2);
    ck_assert_msg(wait_notified(after, 30), "a reminder set after recovery did not fire");
    ck_assert_int_eq(notifications_of_task(during), 1);
    ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(during), 1, 20), 1);
    ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(after), 1, 20), 1);
    ck_assert_double_gt(
        th_metric(w.url,
                  "taskora_notifications_errors_total{plugin=\"notif\",stage=\"scheduler\"}"),
        0);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_webhook_down_is_retried_and_delivered_once)
{
    hook_fail_first(&hook, 4); /* more than one round of the policy's 3 attempts */
    th_daemon w;
    start_worker(&w, "w", 60000);
    user u = new_user("hook");
    long t = task_with_reminder(&u, "ping the webhook", 1);
    /* the consumer is not held up by the failing webhook: the in-app notification is there */
    ck_assert_msg(wait_notified(t, 20), "the reminder did not fire");
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      "SELECT count(*) FROM notification_webhooks"
                                      " WHERE delivered_at IS NOT NULL",
                                      1, 30),
                     1);
    int ok = 0;
    ck_assert_int_eq(hook_requests_for(t, &ok), 5);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT attempts FROM notification_webhooks"), 5);
    /* counted just after the row is marked delivered: wait for it rather than race it */
    const char *series = "taskora_notifications_webhook_deliveries_total{plugin=\"notif\","
                         "outcome=\"%s\"}";
    ck_assert_double_eq(th_wait_metric(w.url, th_fmt(series, "delivered"), 1, 10), 1);
    ck_assert_double_eq(th_metric(w.url, th_fmt(series, "failed")), 1);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_a_reminder_fires_once_and_the_webhook_body_is_the_published_event)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    user u = new_user("exact");
    long t = task_with_reminder(&u, "renew the passport", 2);
    ck_assert_msg(wait_notified(t, 20), "the reminder did not fire");
    ck_assert_int_eq(th_pg_wait_count(dburl, reminder_events(t), 1, 20), 1);
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      "SELECT count(*) FROM notification_webhooks"
                                      " WHERE delivered_at IS NOT NULL",
                                      1, 30),
                     1);
    /* the webhook got the event exactly as it went to Kafka, and the notification names it */
    char *published = outbox_value("task.reminder", t);
    int ok = 0;
    ck_assert_int_eq(hook_requests_for(t, &ok), 1);
    pthread_mutex_lock(&hook.lock);
    ck_assert_str_eq(hook.reqs[0].body, published);
    json_t *ev = json_loads(published, 0, NULL);
    ck_assert_str_eq(hook.reqs[0].event_id, json_string_value(json_object_get(ev, "id")));
    pthread_mutex_unlock(&hook.lock);
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM notifications WHERE task_id = %ld"
                                  " AND event_id = '%s' AND message = 'Reminder: renew the"
                                  " passport (due 2030-01-02 09:30 UTC)'",
                                  t, json_string_value(json_object_get(ev, "id")))),
        1);
    json_t *payload = json_object_get(json_object_get(ev, "data"), "payload");
    ck_assert_str_eq(json_string_value(json_object_get(payload, "due_date")),
                     "2030-01-02T09:30:00.000000+00:00");
    ck_assert_str_eq(json_string_value(json_object_get(payload, "title")), "renew the passport");
    json_decref(ev);
    free(published);

    /* the API shows it sent: in the task, and no longer among the pending reminders */
    ck_assert_msg(wait_reminder_sent(t), "tasks.reminder_sent did not follow task.reminder");
    reply r = call("GET", th_fmt("/api/tasks/%ld", t), NULL, u.token);
    ck_assert(json_is_true(json_object_get(r.json, "reminder_sent")));
    json_decref(r.json);
    r = call("GET", "/api/tasks/reminders", NULL, u.token);
    ck_assert_str_eq(r.body, "[]");
    json_decref(r.json);

    /* once: a reminder due after it fired, and it still has one of each */
    long later = task_with_reminder(&u, "later one", 2);
    ck_assert_msg(wait_notified(later, 20), "the later reminder did not fire");
    ck_assert_int_eq(notifications_of_task(t), 1);
    ck_assert_int_eq(hook_requests_for(t, NULL), 1);
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM taskora_outbox"
                                               " WHERE value::jsonb->>'type' = 'task.reminder'"
                                               " AND value::jsonb->>'subject' = '%ld'",
                                               t)),
                     1);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_reminders_of_a_deleted_task_or_account_never_fire)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    user a = new_user("deltask"), b = new_user("delacct"), c = new_user("control");
    long gone = task_with_reminder(&a, "deleted before its reminder", 2);
    call_ok("DELETE", th_fmt("/api/tasks/%ld", gone), NULL, &a);
    long orphan = task_with_reminder(&b, "its account deleted before its reminder", 2);
    call_ok("DELETE", "/api/auth/delete-account", NULL, &b);

    /* user-events and task-events are not ordered with each other: a deleted account's task
     * event may come after its user.deleted. Here for an account that never had one before,
     * with a reminder already due. */
    produce("user-events", "999001", bare_event("ghost-gone", "user.deleted", "999001", "{}"));
    ck_assert(wait_handled("taskora-notif", "ghost-gone"));
    produce("task-events", "999001",
            bare_event("ghost-task", "task.created", "999001",
                       th_fmt("{\"task_id\":999001,\"title\":\"ghost\",\"priority\":\"low\","
                              "\"due_date\":null,\"reminder_at\":\"%s\",\"is_recurring\":false,"
                              "\"recurrence_rule\":null,\"tags\":[]}",
                              iso_in(-60))));
    ck_assert(wait_handled("taskora-notif", "ghost-task"));

    /* due after all the others: once it fired, the scheduler has been past their times */
    long later = task_with_reminder(&c, "control", 4);
    ck_assert_msg(wait_notified(later, 30), "the control reminder did not fire");
    ck_assert_int_eq(notifications_of_task(gone), 0);
    ck_assert_int_eq(notifications_of_task(orphan), 0);
    ck_assert_int_eq(notifications_of_task(999001), 0);
    ck_assert_int_eq(hook_requests_for(gone, NULL) + hook_requests_for(orphan, NULL) +
                         hook_requests_for(999001, NULL),
                     0);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_outbox"
                                        " WHERE value::jsonb->>'type' = 'task.reminder'"),
                     1);
    /* nothing of them is left in the schedule */
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM notification_reminders"
                                               " WHERE task_id IN (%ld, %ld, 999001)"
                                               " OR user_id IN ('%s', '999001')",
                                               gone, orphan, b.id)),
                     0);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_marking_sent_or_completing_stops_a_reminder_and_a_new_time_rearms_it)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    user u = new_user("rearm");
    long marked = task_with_reminder(&u, "marked sent before its time", 2);
    call_ok("POST", th_fmt("/api/tasks/%ld/reminder/sent", marked), NULL, &u);
    long patched = task_with_reminder(&u, "completed with PATCH", 2);
    call_ok("PATCH", th_fmt("/api/tasks/%ld/complete", patched), "{\"completed\":true}", &u);
    long put = task_with_reminder(&u, "completed with PUT", 2);
    call_ok("PUT", th_fmt("/api/tasks/%ld", put), "{\"completed\":true}", &u);
    long reopened = task_with_reminder(&u, "completed, then reopened", 2);
    call_ok("PATCH", th_fmt("/api/tasks/%ld/complete", reopened), "{\"completed\":true}", &u);
    call_ok("PATCH", th_fmt("/api/tasks/%ld/complete", reopened), "{\"completed\":false}", &u);
    long moved = task_with_reminder(&u, "moved an hour sooner", 3600);
    call_ok("PATCH", th_fmt("/api/tasks/%ld/reminder", moved),
            th_fmt("{\"reminder_at\":\"%s\"}", iso_in(2)), &u);
    long twice = task_with_reminder(&u, "reminded twice", 1);
    ck_assert_msg(wait_notified(twice, 20), "the first reminder did not fire");
    ck_assert_msg(wait_reminder_sent(twice), "tasks.reminder_sent did not follow");
    call_ok("PATCH", th_fmt("/api/tasks/%ld/reminder", twice),
            th_fmt("{\"reminder_at\":\"%s\"}", iso_in(1)), &u);
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      th_fmt("SELECT count(*) FROM notifications"
                                             " WHERE task_id = %ld",
                                             twice),
                                      2, 20),
                     2);

    /* a task.reminder of a time the task no longer has does not mark the new one sent */
    long stale = task_with_reminder(&u, "reminder moved later", 3000);
    reply r = call("PATCH", th_fmt("/api/tasks/%ld/reminder", stale),
                   th_fmt("{\"reminder_at\":\"%s\"}", iso_in(3600)), u.token);
    ck_assert_int_eq(r.status, 200);
    json_decref(r.json);
    produce("task-events", u.id,
            bare_event("stale-reminder", "task.reminder", u.id,
                       th_fmt("{\"task_id\":%ld,\"title\":\"x\",\"due_date\":null,"
                              "\"reminder_at\":\"%s\",\"reminder_type\":\"custom\"}",
                              stale, iso_in(3000))));
    ck_assert(wait_handled("taskora-api", "stale-reminder"));
    r = call("GET", th_fmt("/api/tasks/%ld", stale), NULL, u.token);
    ck_assert(json_is_false(json_object_get(r.json, "reminder_sent")));
    json_decref(r.json);

    long later = task_with_reminder(&u, "control", 4);
    ck_assert_msg(wait_notified(later, 30), "the control reminder did not fire");
    ck_assert_msg(wait_notified(moved, 10), "the moved reminder did not fire");
    ck_assert_msg(wait_notified(reopened, 10), "the reopened task's reminder did not fire");
    ck_assert_int_eq(notifications_of_task(marked), 0);
    ck_assert_int_eq(notifications_of_task(patched), 0);
    ck_assert_int_eq(notifications_of_task(put), 0);
    ck_assert_int_eq(notifications_of_task(reopened), 1);
    ck_assert_int_eq(notifications_of_task(moved), 1);
    ck_assert_int_eq(notifications_of_task(twice), 2);
    ck_assert_int_eq(notifications_of_task(stale), 0);
    ck_assert_msg(wait_reminder_sent(moved) && wait_reminder_sent(twice),
                  "tasks.reminder_sent did not follow");
    th_daemon_stop(&w);
}
END_TEST

/* Puts the database back as the version before the schedule left it: notifications' step 2
 * undone, so the next migrate applies it again (and copies tasks). */
static void undo_schedule_step(void)
{
    th_pg_exec(dburl, "DROP TABLE notification_reminders, notification_deleted_users,"
                      " notification_backfill;"
                      "DROP INDEX ix_notifications_task_reminder;"
                      "DELETE FROM taskora_migrations WHERE component = 'notifications'"
                      " AND step = 2");
}

/* An in-app notification as the version before the schedule wrote it when it fired. */
static void fired_by_the_previous_version(long task_id, const user *u)
{
    th_pg_exec(dburl, th_fmt("UPDATE tasks SET reminder_sent = true WHERE id = %ld;"
                             "INSERT INTO notifications (user_id, task_id, title, message)"
                             " VALUES ('%s', %ld, 'fired', 'Reminder: fired')",
                             task_id, u->id, task_id));
}

START_TEST(test_the_upgrade_copies_pending_reminders_from_tasks_once)
{
    user u = new_user("upgrade");
    undo_schedule_step();
    /* what the version before left: tasks with their events on Kafka (none consumed into a
     * schedule), and one that only tasks knows */
    long pending = task_with_reminder(&u, "pending at the upgrade", 3);
    th_pg_exec(dburl, th_fmt("INSERT INTO tasks (title, user_id, due_date, reminder_at)"
                             " VALUES ('only in tasks', '%s', '2030-01-02 09:30',"
                             " (now() AT TIME ZONE 'utc') - interval '1 minute')",
                             u.id));
    char *max_id = th_pg_query1(dburl, "SELECT max(id) FROM tasks");
    long direct = atol(max_id);
    free(max_id);
    long fired = task_with_reminder(&u, "fired before the upgrade", -60);
    fired_by_the_previous_version(fired, &u);
    long deleted = task_with_reminder(&u, "deleted before the upgrade", -60);
    call_ok("DELETE", th_fmt("/api/tasks/%ld", deleted), NULL, &u);
    long completed = task_with_reminder(&u, "completed before the upgrade", -60);
    call_ok("PATCH", th_fmt("/api/tasks/%ld/complete", completed), "{\"completed\":true}", &u);
    long late = task_with_reminder(&u, "fired by an old worker after the copy", -60);

    char *cfg = api_config();
    const char *args[] = {"migrate", "-c", cfg, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(th_taskorad(args, &out, &err, 60000) == 0, "migrate: %s", err);
    ck_assert_msg(strstr(out, "notifications"), "step 2 was not applied again: %s", out);
    free(out);
    free(err);
    free(cfg);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM notification_reminders"
                                        " WHERE backfilled"),
                     5);
    fired_by_the_previous_version(late, &u); /* an old worker still running */

    th_daemon w;
    start_worker(&w, "w", 1000);
    ck_assert_msg(wait_notified(direct, 20), "the reminder only tasks knew did not fire");
    ck_assert_msg(wait_notified(pending, 20), "the pending reminder did not fire");
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM notifications WHERE task_id = %ld"
                                  " AND message = 'Reminder: only in tasks (due 2030-01-02"
                                  " 09:30 UTC)'",
                                  direct)),
        1);
    /* the copied tasks' events, consumed from the start, are already in the copy: a reminder
     * set after the upgrade fires once they were all handled */
    long after = task_with_reminder(&u, "set after the upgrade", 2);
    ck_assert_msg(wait_notified(after, 30), "a reminder set after the upgrade did not fire");
    ck_assert_int_eq(notifications_of_task(direct), 1);
    ck_assert_int_eq(notifications_of_task(pending), 1);
    ck_assert_int_eq(notifications_of_task(fired), 1); /* the previous version's */
    ck_assert_int_eq(notifications_of_task(late), 1);  /* the old worker's */
    ck_assert_int_eq(notifications_of_task(deleted), 0);
    ck_assert_int_eq(notifications_of_task(completed), 0);
    ck_assert_int_eq(notifications_of_task(after), 1);
    ck_assert_msg(wait_reminder_sent(direct) && wait_reminder_sent(pending),
                  "tasks.reminder_sent did not follow");
    ck_assert_int_eq(hook_count(&hook), 3);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_a_task_event_delivered_again_changes_nothing_twice)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    user u = new_user("again");
    long t = task_with_reminder(&u, "only once", 1);
    ck_assert_msg(wait_notified(t, 20), "the reminder did not fire");
    ck_assert_msg(wait_reminder_sent(t), "tasks.reminder_sent did not follow");
    /* its task.reminder and its task.created (which sets the reminder: applied again, it would
     * fire at once) come again, as after a consumer's crash; then, behind them on the same
     * partition, another task's, due after the repeated one would have fired */
    char *created = outbox_value("task.created", t), *fired = outbox_value("task.reminder", t);
    produce("task-events", u.id, fired);
    produce("task-events", u.id, created);
    free(created);
    free(fired);
    long next = task_with_reminder(&u, "behind the repeats", 3);
    ck_assert_msg(wait_notified(next, 20), "the next reminder did not fire");
    ck_assert_msg(wait_reminder_sent(next), "tasks.reminder_sent did not follow");
    ck_assert_int_eq(notifications_of_task(t), 1);
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM taskora_outbox"
                                               " WHERE value::jsonb->>'type' = 'task.reminder'"
                                               " AND value::jsonb->>'subject' = '%ld'",
                                               t)),
                     1);
    ck_assert_int_eq(th_pg_wait_count(dburl,
                                      "SELECT count(*) FROM notification_webhooks"
                                      " WHERE delivered_at IS NOT NULL",
                                      2, 30),
                     2);
    ck_assert_int_eq(hook_requests_for(t, NULL), 1);
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM notification_reminders"
                                               " WHERE task_id = %ld AND sent",
                                               t)),
                     1);
    th_daemon_stop(&w);
}
END_TEST

START_TEST(test_a_task_created_completed_never_reminds)
{
    th_daemon w;
    start_worker(&w, "w", 60000);
    user u = new_user("born-done");
    reply r = call("POST", "/api/tasks",
                   th_fmt("{\"title\":\"done when written down\",\"completed\":true,"
                          "\"due_date\":\"2030-01-02T09:30:00Z\",\"reminder_at\":\"%s\"}",
                          iso_in(1)),
                   u.token);
    ck_assert_msg(r.status == 201, "create: %ld %s", r.status, r.body);
    ck_assert(json_is_true(json_object_get(r.json, "completed")));
    long done = (long)json_integer_value(json_object_get(r.json, "id"));
    json_decref(r.json);
    /* its event says so */
    char *created = outbox_value("task.created", done);
    json_t *ev = json_loads(created, 0, NULL);
    ck_assert_msg(json_is_true(json_object_get(
                      json_object_get(json_object_get(ev, "data"), "payload"), "completed")),
                  "task.created: %s", created);
    json_decref(ev);
    free(created);

    /* created after it and due after it: once it fired, the scheduler has been past its time */
    long later = task_with_reminder(&u, "control", 3);
    created = outbox_value("task.created", later);
    ev = json_loads(created, 0, NULL);
    ck_assert_msg(json_is_false(json_object_get(
                      json_object_get(json_object_get(ev, "data"), "payload"), "completed")),
                  "task.created: %s", created);
    json_decref(ev);
    free(created);
    ck_assert_msg(wait_notified(later, 30), "the control reminder did not fire");
    ck_assert_int_eq(notifications_of_task(done), 0);
    ck_assert_int_eq(th_pg_count(dburl, reminder_events(done)), 0);
    ck_assert_int_eq(hook_requests_for(done, NULL), 0);
    r = call("GET", "/api/notifications", NULL, u.token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_array_size(r.json), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r.json, 0), "task_id")),
                     later);
    json_decref(r.json);
    th_daemon_stop(&w);
}
END_TEST

/* Times, and the text the API writes for each ('*': whatever taskora_iso_utc writes). */
static const char iso_cases[] =
    "(VALUES ('2026-02-04 12:00:00'::timestamp, '2026-02-04T12:00:00.000000+00:00'),"
    " ('2026-02-04 12:00:00.123456', '2026-02-04T12:00:00.123456+00:00'),"
    " ('2026-02-04 12:00:00.5', '2026-02-04T12:00:00.500000+00:00'),"
    " ('2024-02-29 23:59:59.999999', '2024-02-29T23:59:59.999999+00:00'),"
    " ('1970-01-01 00:00:00.000001', '1970-01-01T00:00:00.000001+00:00'),"
    " ('0001-01-01 00:00:00', '0001-01-01T00:00:00.000000+00:00'),"
    " ('9999-12-31 23:59:59.999999', '9999-12-31T23:59:59.999999+00:00'),"
    " (NULL, NULL), (now() AT TIME ZONE 'utc', '*')) v(ts, want)";

#define KIT_TEXT KIT_SQL_ISO_UTC("v.ts")

/* The notifications' SQL writes times with the toolkit's KIT_SQL_ISO_UTC, http_api's with its
 * migration's taskora_iso_utc: the same text for every time, so that the two cannot drift. */
START_TEST(test_the_toolkits_sql_time_text_is_taskora_iso_utc)
{
    char *differ = th_pg_query1(
        dburl, th_fmt("SELECT coalesce(string_agg(format('%%s: %%s, taskora_iso_utc %%s, want %%s',"
                      " v.ts, " KIT_TEXT ", taskora_iso_utc(v.ts), v.want), '; '), '') FROM %s"
                      " WHERE " KIT_TEXT " IS DISTINCT FROM taskora_iso_utc(v.ts)"
                      " OR (coalesce(v.want, '') <> '*' AND " KIT_TEXT " IS DISTINCT FROM v.want)",
                      iso_cases));
    ck_assert_msg(!*differ, "KIT_SQL_ISO_UTC: %s", differ);
    free(differ);
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM %s", iso_cases)), 9);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_notifications");
    Suite *s = suite_create("notifications");
    TCase *tc = tcase_create("reminders");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_due_reminders_fire_once_across_two_schedulers_on_every_channel);
    tcase_add_test(tc, test_read_marks_one_notification_and_other_users_get_404);
    tcase_add_test(tc, test_poison_event_goes_to_the_dlq_and_reminders_keep_firing);
    tcase_add_test(tc, test_scheduler_survives_a_database_outage_and_fires_what_came_due);
    tcase_add_test(tc, test_webhook_down_is_retried_and_delivered_once);
    tcase_add_test(tc, test_a_reminder_fires_once_and_the_webhook_body_is_the_published_event);
    tcase_add_test(tc, test_reminders_of_a_deleted_task_or_account_never_fire);
    tcase_add_test(tc, test_marking_sent_or_completing_stops_a_reminder_and_a_new_time_rearms_it);
    tcase_add_test(tc, test_the_upgrade_copies_pending_reminders_from_tasks_once);
    tcase_add_test(tc, test_a_task_event_delivered_again_changes_nothing_twice);
    tcase_add_test(tc, test_a_task_created_completed_never_reminds);
    tcase_add_test(tc, test_the_toolkits_sql_time_text_is_taskora_iso_utc);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}

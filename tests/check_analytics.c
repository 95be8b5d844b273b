/* The analytics plugin end to end: events produced to a mock Kafka cluster owned by the test,
 * taskorad with http_api (users, tokens, the authenticator) and analytics on a real PostgreSQL,
 * the summary read back over HTTP and compared with what the test produced. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"
#include "th_kafka.h"

#define PARTITIONS 4
#define NDAYS 7 /* the big test spreads its events over the last NDAYS UTC days */
#define GROUP "taskora-analytics"

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */
static rd_kafka_t *producer;
static char *cfg;
static int event_seq;

/* ---- helpers ------------------------------------------------------------------------------ */

/* The UTC date `back` days before today, as YYYY-MM-DD. */
static void utc_date(int back, char out[11])
{
    time_t t = time(NULL) - (time_t)back * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static char *write_config(void)
{
    char text[4096];
    const char *b = th_builddir();
    snprintf(text, sizeof(text),
             "{\"app_id\": \"analytics-test\", \"log\": {\"format\": \"text\"},"
             " \"postgres\": {\"url\": \"${TK_TEST_DB}\", \"pool_size\": 6},"
             " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\","
             "   \"heartbeat.interval.ms\": \"500\", \"fetch.wait.max.ms\": \"10\"}},"
             " \"outbox\": {\"relay\": true, \"poll_ms\": 200},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},"
             " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/analytics/.libs\","
             " \"shutdown_timeout_ms\": 20000,"
             " \"plugins\": ["
             "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
             "   \"analytics-test-secret-0123456789abcdef\", \"bcrypt_cost\": 4}},"
             "  {\"name\": \"analytics\", \"load\": \"analytics\", \"config\": {\"routes\": true},"
             "   \"consume\": {\"topics\": [\"task-events\", \"user-events\", \"chat-events\"],"
             "    \"group\": \"" GROUP "\", \"workers\": 2,"
             "    \"retry\": {\"attempts\": 5, \"delay_ms\": 100}}}]}",
             bootstrap, b, b);
    return th_write(dir, "analytics.json", text);
}

static void start_daemon(th_daemon *d, const char *name)
{
    th_daemon_start_named(d, dir, cfg, name);
}

static void setup(void)
{
    dir = th_tmpdir();
    event_seq = 0;
    snprintf(dbname, sizeof(dbname), "tk_analytics_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    setenv("TK_TEST_DB", dburl, 1);

    static const th_topic topics[] = {{"task-events", PARTITIONS},
                                      {"task-events.dlq", 1},
                                      {"user-events", PARTITIONS},
                                      {"user-events.dlq", 1},
                                      {"chat-events", PARTITIONS},
                                      {"chat-events.dlq", 1},
                                      {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
    producer = th_producer(bootstrap);

    cfg = write_config();
    th_migrate(cfg);
}

static void teardown(void)
{
    rd_kafka_destroy(producer);
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
    free(cfg);
}

static void produce(const char *topic, const char *key, const char *value)
{
    th_send(producer, topic, key, value);
}

static void flush(void) { th_flush(producer); }

/* The topic of an event type. */
static const char *topic_of(const char *type)
{
    if (strncmp(type, "chat.", 5) == 0)
        return "chat-events";
    if (strncmp(type, "user.", 5) == 0)
        return "user-events";
    return "task-events";
}

/*
 * An event's message value: a CloudEvent (EVENTS.md) or, with bare, its data object alone
 * (with bare == 2 the user id is a JSON number). Steals payload. Writes the id (a fresh
 * "an-<n>") to id. Caller frees.
 */
static char *event_value(const char *type, const char *user, const char *when, json_t *payload,
                         int bare, char id[32])
{
    snprintf(id, 32, "an-%d", ++event_seq);
    json_t *uid = bare == 2 ? json_integer(atoll(user)) : json_string(user);
    json_t *data = json_pack("{s:s,s:s,s:s,s:o,s:o}", "event_id", id, "event_type", type,
                             "timestamp", when, "user_id", uid, "payload", payload);
    json_t *root = bare ? data
                        : json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "specversion", "1.0", "id", id,
                                    "source", "analytics-test", "type", type, "time", when,
                                    "datacontenttype", "application/json", "data", data);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    ck_assert_ptr_nonnull(text);
    return text;
}

/* Produces one CloudEvent and returns nothing; for the hand-made cases. */
static void send_event(const char *type, const char *user, const char *when, json_t *payload)
{
    char id[32];
    char *v = event_value(type, user, when, payload, 0, id);
    produce(topic_of(type), user, v);
    free(v);
}

static json_t *task_payload(int task, const char *change)
{
    if (!change)
        return json_pack("{s:i,s:s,s:s}", "task_id", task, "title", "a task", "priority", "low");
    return json_pack("{s:i,s:b,s:s}", "task_id", task, "completed",
                     strcmp(change, "completed") == 0, "status_change", change);
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

typedef struct user {
    char id[16];
    char token[1024];
} user;

static json_t *http_json(const th_daemon *d, const char *method, const char *path,
                         const char *token, const char *body, long want_status)
{
    char url[512], auth[1100];
    snprintf(url, sizeof(url), "%s%s", d->url, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    const char *hdr[] = {"Content-Type: application/json", token ? auth : NULL, NULL};
    th_response r;
    ck_assert_int_eq(th_http(method, url, body, body ? strlen(body) : 0, hdr, &r), 0);
    ck_assert_msg(r.status == want_status, "%s %s: %ld, not %ld: %s", method, path, r.status,
                  want_status, r.body);
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    ck_assert_msg(j != NULL, "%s %s: not JSON: %s", method, path, r.body);
    th_response_free(&r);
    return j;
}

static user new_user(const th_daemon *d, const char *tag)
{
    user u;
    char body[256];
    snprintf(body, sizeof(body),
             "{\"email\":\"%s-%d@example.com\",\"name\":\"%s\",\"password\":\"pw-%s-secret\"}", tag,
             (int)getpid(), tag, tag);
    json_t *j = http_json(d, "POST", "/api/auth/register", NULL, body, 201);
    snprintf(u.id, sizeof(u.id), "%lld", (long long)json_integer_value(json_object_get(j, "id")));
    json_decref(j);
    snprintf(body, sizeof(body), "{\"email\":\"%s-%d@example.com\",\"password\":\"pw-%s-secret\"}",
             tag, (int)getpid(), tag);
    j = http_json(d, "POST", "/api/auth/login", NULL, body, 200);
    snprintf(u.token, sizeof(u.token), "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    ck_assert(u.id[0] != '0' && u.token[0]);
    return u;
}

static json_t *summary(const th_daemon *d, const user *u, int days)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/analytics/summary?days=%d", days);
    return http_json(d, "GET", path, u->token, NULL, 200);
}

static long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    return (long)json_integer_value(v);
}

/* A series of the daemon's /metrics without labels besides plugin, or -1. */
static double metric(const th_daemon *d, const char *name)
{
    return th_metric(d->url, th_fmt("%s{plugin=\"analytics\"}", name));
}

/* Waits until the group has recorded `want` of the test's event ids; returns the last count. */
static long wait_processed(long want, int timeout_s)
{
    double end = th_now_s() + timeout_s;
    long n;
    while (
        (n = th_pg_count(
             dburl, "SELECT count(*) FROM taskora_processed_events WHERE consumer_group = '" GROUP
                    "' AND event_id LIKE 'an-%'")) < want &&
        th_now_s() < end)
        usleep(50000);
    return n;
}

static double wait_metric(const th_daemon *d, const char *name, double want, int timeout_s)
{
    return th_wait_metric(d->url, th_fmt("%s{plugin=\"analytics\"}", name), want, timeout_s);
}

/* Checks one day of a summary. */
static void check_day(json_t *day, const char *date, const long want[5])
{
    static const char *const keys[] = {"created", "completed", "reopened", "deleted",
                                       "chat_messages"};
    ck_assert_str_eq(json_string_value(json_object_get(day, "date")), date);
    for (int k = 0; k < 5; k++)
        ck_assert_msg(jint(day, keys[k]) == want[k], "%s %s: %ld, expected %ld", date, keys[k],
                      jint(day, keys[k]), want[k]);
}

static void check_totals(json_t *s, const long want[5])
{
    static const char *const keys[] = {"created", "completed", "reopened", "deleted",
                                       "chat_messages"};
    json_t *t = json_object_get(s, "totals");
    for (int k = 0; k < 5; k++)
        ck_assert_msg(jint(t, keys[k]) == want[k], "totals.%s: %ld, expected %ld", keys[k],
                      jint(t, keys[k]), want[k]);
}

static double jnum(json_t *s, const char *key)
{
    json_t *v = json_object_get(s, key);
    ck_assert_msg(json_is_number(v), "%s is not a number", key);
    return json_number_value(v);
}

/* A dead-lettered message of this plugin whose x-taskora-error carries the needle. */
static int ours_with(const th_dlq_msg *m, void *needle)
{
    return strstr(m->error, needle) && strcmp(m->consumer, "analytics") == 0;
}

/* Reads the messages of one DLQ topic; returns how many (up to want) are ours_with(needle). */
static int dlq_count(const char *topic, const char *needle, int want)
{
    th_dlq_msg m[8];
    ck_assert_int_le(want, 8);
    return th_dlq_read(bootstrap, topic, m, want, 30, ours_with, (void *)needle);
}

/* ---- the burst ----------------------------------------------------------------------------- */

#define NUSERS 3
#define NEVENTS 1000
#define MAXTASKS 1000

enum { C_CREATED, C_COMPLETED, C_REOPENED, C_DELETED, C_CHAT };

typedef struct sent {
    char topic[16], key[16];
    char *value;
} sent;

/* What the test expects of one user. */
typedef struct expect {
    long day[NDAYS][5]; /* [0] = NDAYS-1 days ago ... [NDAYS-1] = today */
    long created_at[MAXTASKS];
    int state[MAXTASKS]; /* 0 none, 1 open, 2 completed, 3 deleted */
    int ntasks;
    double durations[NEVENTS];
    int ndurations;
} expect;

static unsigned rng_state = 12345;
static unsigned rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

START_TEST(test_burst_is_counted_exactly_once_in_few_transactions)
{
    th_daemon d;
    /* phase 1: real users and tokens through the API (its own events are ignored) */
    start_daemon(&d, "register");
    user u[NUSERS + 1];
    const char *tags[] = {"ada", "bob", "cyd", "dee"};
    for (int i = 0; i <= NUSERS; i++)
        u[i] = new_user(&d, tags[i]);
    th_daemon_stop(&d);

    /* phase 2: a backlog of 1,000 messages (duplicates included) and a poison message */
    static expect ex[NUSERS];
    memset(ex, 0, sizeof(ex));
    static sent log[NEVENTS];
    int nlog = 0, dups = 0, distinct = 0;
    time_t now = time(NULL);
    long start = (long)(now - now % 86400) - (NDAYS - 1) * 86400L; /* NDAYS-1 days ago, 00:00 */
    long step = (NDAYS * 86400L - 3600) / NEVENTS;                 /* ends before 23:00 today */
    static const char *const ignored_types[] = {"task.updated", "user.login",
                                                "chat.response_received", "task.recurred"};
    for (int i = 0; i < NEVENTS; i++) {
        if (i == NEVENTS / 2) /* poison halfway: the partition moves on after it */
            produce("task-events", u[0].id, "{this is not json");
        unsigned r = rng() % 100;
        if (nlog > 10 && r < 6) { /* a redelivery of an earlier message, sometimes right away */
            sent *s = &log[r < 2 ? nlog - 1 : (int)(rng() % (unsigned)nlog)];
            produce(s->topic, s->key, s->value);
            dups++;
            continue;
        }
        int ui = (int)(rng() % NUSERS);
        expect *e = &ex[ui];
        long at = start + i * step;
        int day = (int)((at - start) / 86400);
        char when[40];
        struct tm tm;
        time_t t = (time_t)at;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000000+00:00", &tm);
        /* what happens: pick an action that makes sense for the user's tasks */
        int open = -1, done = -1, alive = -1;
        for (int k = 0; k < e->ntasks; k++) {
            int kk = (k + (int)rng()) % e->ntasks;
            if (open < 0 && e->state[kk] == 1)
                open = kk;
            if (done < 0 && e->state[kk] == 2)
                done = kk;
            if (alive < 0 && (e->state[kk] == 1 || e->state[kk] == 2))
                alive = kk;
        }
        const char *type;
        json_t *payload;
        int kind = -1;
        unsigned a = rng() % 100;
        if (a < 8) {
            type = ignored_types[rng() % 4];
            payload = json_object();
        } else if (a < 23) {
            type = "chat.message_sent";
            payload = json_pack("{s:i,s:i,s:s}", "conversation_id", 1, "message_length", 5,
                                "message_preview", "hello");
            kind = C_CHAT;
        } else if (a < 50 && open >= 0) {
            type = "task.completed";
            payload = task_payload(open + 1, "completed");
            kind = C_COMPLETED;
            e->state[open] = 2;
            e->durations[e->ndurations++] = (double)(at - e->created_at[open]);
        } else if (a < 60 && done >= 0) {
            type = "task.completed";
            payload = task_payload(done + 1, "reopened");
            kind = C_REOPENED;
            e->state[done] = 1;
        } else if (a < 70 && alive >= 0) {
            type = "task.deleted";
            payload = json_pack("{s:i}", "task_id", alive + 1);
            kind = C_DELETED;
            e->state[alive] = 3;
        } else {
            type = "task.created";
            int k = e->ntasks++;
            payload = task_payload(k + 1, NULL);
            e->state[k] = 1;
            e->created_at[k] = at;
            kind = C_CREATED;
        }
        if (kind >= 0)
            e->day[day][kind]++;
        char id[32];
        int bare = rng() % 10 == 0 ? (int)(1 + rng() % 2) : 0;
        sent *s = &log[nlog++];
        snprintf(s->topic, sizeof(s->topic), "%s", topic_of(type));
        snprintf(s->key, sizeof(s->key), "%s", u[ui].id);
        s->value = event_value(type, u[ui].id, when, payload, bare, id);
        produce(s->topic, s->key, s->value);
        distinct++;
    }
    flush();
    ck_assert_int_gt(dups, 20);

    start_daemon(&d, "consume");
    ck_assert_int_eq(wait_processed(distinct, 120), distinct);
    /* the redeliveries of the last ones may still be on their way (asserted below, after the
     * numbers, so that a counting bug shows as wrong numbers first) */
    double dups_skipped = wait_metric(&d, "taskora_analytics_duplicates_skipped_total", dups, 60);

    /* exact numbers, per user and day */
    char dates[NDAYS][11];
    for (int k = 0; k < NDAYS; k++)
        utc_date(NDAYS - 1 - k, dates[k]);
    long applied_want = 0;
    for (int i = 0; i < NUSERS; i++) {
        json_t *s = summary(&d, &u[i], NDAYS);
        json_t *days = json_object_get(s, "days");
        ck_assert_int_eq(json_array_size(days), NDAYS);
        long tot[5] = {0};
        for (int k = 0; k < NDAYS; k++) {
            check_day(json_array_get(days, (size_t)k), dates[k], ex[i].day[k]);
            for (int c = 0; c < 5; c++)
                tot[c] += ex[i].day[k][c];
        }
        check_totals(s, tot);
        for (int c = 0; c < 5; c++)
            applied_want += tot[c];
        ck_assert_double_eq_tol(jnum(s, "completion_rate"),
                                tot[0] ? (double)tot[1] / (double)tot[0] : 0, 1e-9);
        ck_assert_int_gt(ex[i].ndurations, 2);
        ck_assert_double_eq_tol(jnum(s, "median_time_to_complete_s"),
                                median(ex[i].durations, ex[i].ndurations), 1e-6);
        json_decref(s);
    }
    /* the metrics follow the commits: wait for them rather than race them */
    ck_assert_double_eq(
        wait_metric(&d, "taskora_analytics_events_applied_total", (double)applied_want, 10),
        (double)applied_want);
    ck_assert_double_eq(dups_skipped, (double)dups);
    /* batched: the plugin's count of transactions, and the database's own view (processed_at
     * defaults to now(), the start of the transaction that recorded the event) */
    double batches = metric(&d, "taskora_analytics_batches_total");
    long txs =
        th_pg_count(dburl, "SELECT count(DISTINCT processed_at) FROM taskora_processed_events"
                           " WHERE consumer_group = '" GROUP "' AND event_id LIKE 'an-%'");
    fprintf(stderr,
            "check_analytics: %d events (%d distinct, %d duplicates): %.0f batches, %ld"
            " transactions recorded them\n",
            NEVENTS, distinct, dups, batches, txs);
    ck_assert_msg(batches > 0 && batches <= NEVENTS / 10.0,
                  "%.0f batches for %d events: not batched", batches, NEVENTS);
    ck_assert_msg(txs > 0 && txs <= NEVENTS / 10, "%ld transactions for %d events", txs, NEVENTS);
    /* a user without events sees zeros, not the others' numbers */
    json_t *s = summary(&d, &u[NUSERS], NDAYS);
    long zero[5] = {0};
    check_totals(s, zero);
    ck_assert(json_is_null(json_object_get(s, "median_time_to_complete_s")));
    json_decref(s);
    /* the poison message went to the DLQ; the events after it on its partition were counted */
    ck_assert_int_eq(dlq_count("task-events.dlq", "not JSON", 1), 1);
    th_daemon_stop(&d);
    for (int i = 0; i < nlog; i++)
        free(log[i].value);
}
END_TEST

/* ---- the hand-made case ---------------------------------------------------------------------- */

START_TEST(test_median_completion_rate_utc_days_validation_and_isolation)
{
    th_daemon d;
    start_daemon(&d, "a");
    user x = new_user(&d, "xena"), y = new_user(&d, "yuri"), z = new_user(&d, "zoe");
    char yday[11], today[11], when[64];
    utc_date(1, yday);
    utc_date(0, today);
#define AT(date, clock) (snprintf(when, sizeof(when), "%sT%s", date, clock), when)
    /* x, yesterday: 4 created, 3 completed after 100, 300 and 1000 s, one reopened, one
     * deleted, and a completion of a task whose creation was never seen (no duration) */
    for (int t = 1; t <= 4; t++)
        send_event("task.created", x.id, AT(yday, "10:00:00Z"), task_payload(t, NULL));
    send_event("task.completed", x.id, AT(yday, "10:01:40Z"), task_payload(1, "completed"));
    send_event("task.completed", x.id, AT(yday, "10:05:00.000000+00:00"),
               task_payload(2, "completed"));
    send_event("task.completed", x.id, AT(yday, "10:16:40Z"), task_payload(3, "completed"));
    send_event("task.completed", x.id, AT(yday, "11:00:00Z"), task_payload(3, "reopened"));
    send_event("task.deleted", x.id, AT(yday, "11:00:00Z"), json_pack("{s:i}", "task_id", 4));
    send_event("task.completed", x.id, AT(yday, "12:00:00Z"), task_payload(9, "completed"));
    /* x, today: one created, two chat messages, an event of another type, one without user */
    send_event("task.created", x.id, AT(today, "00:00:01Z"), task_payload(5, NULL));
    for (int i = 0; i < 2; i++)
        send_event("chat.message_sent", x.id, AT(today, "00:00:02Z"),
                   json_pack("{s:i,s:i}", "conversation_id", 1, "message_length", 3));
    send_event("chat.response_received", x.id, AT(today, "00:00:03Z"), json_object());
    char id[32];
    char *v = event_value("task.created", "", AT(today, "00:00:03Z"), task_payload(6, NULL), 0, id);
    produce("task-events", x.id, v);
    free(v);
    /* y: two tasks done after 10 and 20 s (an even count: the median is 15); the second one
     * created at 01:30 today in UTC+3, which is 22:30 yesterday in UTC */
    send_event("task.created", y.id, AT(yday, "12:00:00Z"), task_payload(1, NULL));
    send_event("task.completed", y.id, AT(yday, "12:00:10Z"), task_payload(1, "completed"));
    send_event("task.created", y.id, AT(today, "01:30:00+03:00"), task_payload(2, NULL));
    send_event("task.completed", y.id, AT(yday, "22:30:20Z"), task_payload(2, "completed"));
#undef AT
    flush();
    ck_assert_int_eq(wait_processed(event_seq, 60), event_seq);

    json_t *s = summary(&d, &x, 2);
    json_t *days = json_object_get(s, "days");
    ck_assert_int_eq(json_array_size(days), 2);
    check_day(json_array_get(days, 0), yday, (long[5]){4, 4, 1, 1, 0});
    check_day(json_array_get(days, 1), today, (long[5]){1, 0, 0, 0, 2});
    check_totals(s, (long[5]){5, 4, 1, 1, 2});
    ck_assert_double_eq_tol(jnum(s, "completion_rate"), 0.8, 1e-12);
    ck_assert_double_eq_tol(jnum(s, "median_time_to_complete_s"), 300, 1e-9);
    json_decref(s);
    /* today only: nothing completed, so no median and a rate of 0 over 1 created */
    s = summary(&d, &x, 1);
    check_totals(s, (long[5]){1, 0, 0, 0, 2});
    ck_assert_double_eq(jnum(s, "completion_rate"), 0);
    ck_assert(json_is_null(json_object_get(s, "median_time_to_complete_s")));
    json_decref(s);

    s = summary(&d, &y, 2);
    days = json_object_get(s, "days");
    check_day(json_array_get(days, 0), yday, (long[5]){2, 2, 0, 0, 0});
    check_day(json_array_get(days, 1), today, (long[5]){0, 0, 0, 0, 0});
    ck_assert_double_eq_tol(jnum(s, "completion_rate"), 1, 1e-12);
    ck_assert_double_eq_tol(jnum(s, "median_time_to_complete_s"), 15, 1e-9);
    json_decref(s);

    /* z has no events: 30 days (the default) of zeros, oldest first, rate 0, median null */
    s = http_json(&d, "GET", "/api/analytics/summary", z.token, NULL, 200);
    days = json_object_get(s, "days");
    ck_assert_int_eq(json_array_size(days), 30);
    char first[11];
    utc_date(29, first);
    check_day(json_array_get(days, 0), first, (long[5]){0});
    check_day(json_array_get(days, 29), today, (long[5]){0});
    check_totals(s, (long[5]){0});
    ck_assert_double_eq(jnum(s, "completion_rate"), 0);
    ck_assert(json_is_null(json_object_get(s, "median_time_to_complete_s")));
    json_decref(s);
    s = summary(&d, &z, 365);
    ck_assert_int_eq(json_array_size(json_object_get(s, "days")), 365);
    json_decref(s);

    /* days outside 1..365, or not a number: 422 in the API's shape, read as every route reads
     * an integer argument (an integer beyond 64 bits is out of range, bytes that are not UTF-8
     * are said to be so) */
    static const struct {
        const char *q, *type;
    } bad[] = {{"0", "greater_than_equal"}, {"-3", "greater_than_equal"},
               {"366", "less_than_equal"},  {"99999999999999999999", "less_than_equal"},
               {"abc", "int_parsing"},      {"", "int_parsing"},
               {"%FF", "string_unicode"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/analytics/summary?days=%s", bad[i].q);
        s = http_json(&d, "GET", path, x.token, NULL, 422);
        json_t *e = json_array_get(json_object_get(s, "detail"), 0);
        json_t *loc = json_object_get(e, "loc");
        ck_assert_str_eq(json_string_value(json_array_get(loc, 0)), "query");
        ck_assert_str_eq(json_string_value(json_array_get(loc, 1)), "days");
        ck_assert_str_eq(json_string_value(json_object_get(e, "type")), bad[i].type);
        ck_assert(json_is_string(json_object_get(e, "msg")));
        json_decref(s);
    }
    /* no token, or a bad one: 401 */
    json_decref(http_json(&d, "GET", "/api/analytics/summary", NULL, NULL, 401));
    json_decref(http_json(&d, "GET", "/api/analytics/summary", "garbage", NULL, 401));
    th_daemon_stop(&d);
}
END_TEST

/* ---- the database goes away --------------------------------------------------------------------
 */

START_TEST(test_terminated_database_connections_lose_and_double_nothing)
{
    th_daemon d;
    start_daemon(&d, "a");
    user w = new_user(&d, "walt");
    char today[11], when[40];
    utc_date(0, today);
    snprintf(when, sizeof(when), "%sT00:00:05Z", today);
    static char *first[50];
    for (int i = 0; i < 50; i++) {
        char id[32];
        first[i] = event_value("task.created", w.id, when, task_payload(i + 1, NULL), 0, id);
        produce("task-events", w.id, first[i]);
    }
    flush();
    ck_assert_int_eq(wait_processed(50, 60), 50);

    /* every backend of the test database but this one ends: the daemon's pool connections */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
             " AND pid <> pg_backend_pid()",
             dbname);
    ck_assert_int_gt(th_pg_count(dburl, sql), 0);

    /* after recovery: new events and redeliveries of the first ones */
    for (int i = 0; i < 50; i++) {
        char id[32];
        char *v = event_value("chat.message_sent", w.id, when, json_object(), 0, id);
        produce("chat-events", w.id, v);
        free(v);
        if (i % 5 == 0)
            produce("task-events", w.id, first[i]);
    }
    flush();
    ck_assert_int_eq(wait_processed(100, 60), 100);
    double dups_skipped = wait_metric(&d, "taskora_analytics_duplicates_skipped_total", 10, 60);
    json_t *s = summary(&d, &w, 1);
    check_totals(s, (long[5]){50, 0, 0, 0, 50});
    json_decref(s);
    ck_assert_double_eq(dups_skipped, 10);
    ck_assert_double_eq(wait_metric(&d, "taskora_analytics_events_applied_total", 100, 10), 100);

    /* a batch whose transaction fails changes nothing; its events are retried one by one:
     * the good ones count once, the one that keeps failing ends in the DLQ */
    th_pg_exec(dburl, "CREATE FUNCTION analytics_test_fail() RETURNS trigger LANGUAGE plpgsql AS"
                      " $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$");
    th_pg_exec(dburl, "CREATE TRIGGER analytics_test_fail BEFORE INSERT ON analytics_daily"
                      " FOR EACH ROW WHEN (NEW.user_id = 'refused') EXECUTE FUNCTION"
                      " analytics_test_fail()");
    for (int i = 0; i < 10; i++) {
        char id[32];
        char *v =
            event_value("chat.message_sent", i == 5 ? "refused" : w.id, when, json_object(), 0, id);
        produce("chat-events", w.id, v); /* one partition: the refused event shares a batch */
        free(v);
    }
    flush();
    ck_assert_int_eq(dlq_count("chat-events.dlq", "attempts exhausted", 1), 1);
    ck_assert_int_eq(wait_processed(109, 30), 109);
    s = summary(&d, &w, 1);
    check_totals(s, (long[5]){50, 0, 0, 0, 59});
    json_decref(s);
    ck_assert_int_eq(
        th_pg_count(dburl, "SELECT count(*) FROM analytics_daily WHERE user_id = 'refused'"), 0);
    char *log = th_read(d.log_path);
    ck_assert_msg(strstr(log, "refused by the test") != NULL, "the failure was not logged");
    free(log);
    th_daemon_stop(&d);
    for (int i = 0; i < 50; i++)
        free(first[i]);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_analytics");
    Suite *s = suite_create("analytics");
    TCase *tc = tcase_create("analytics");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_median_completion_rate_utc_days_validation_and_isolation);
    tcase_add_test(tc, test_burst_is_counted_exactly_once_in_few_transactions);
    tcase_add_test(tc, test_terminated_database_connections_lose_and_double_nothing);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}

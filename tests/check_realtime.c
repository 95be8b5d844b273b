/*
 * Real-time push across API processes: two taskorad processes (http_api + realtime, a broadcast
 * consumer group each) on one PostgreSQL and one Kafka-protocol cluster owned by the test; event
 * streams read over real sockets. Process a has the Dapr app token configured (core and realtime),
 * process b has none.
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"
#include "th_kafka.h"

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */
static th_daemon a, b;
static int tcases_left, daemon_exit[2];

typedef struct user {
    int id;
    char token[1024];
} user;
static user u1, u2, u3;

#define DAPR_TOKEN "rt-dapr-token-4f1d2c"
#define MAX_STREAMS 4

/* The time a user may wait for a pushed event (the requirement is 1 s; sanitizers are slower). */
static double push_deadline_s(void)
{
    const char *san = getenv("TK_SANITIZERS");
    return san && strcmp(san, "yes") == 0 ? 3.0 : 1.0;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

/* A request with extra headers (NULL-terminated, or NULL); *json gets the parsed body. */
static long http_h(const th_daemon *d, const char *method, const char *path, const char *body,
                   const char *const *headers, json_t **json)
{
    const char *h[8] = {"Content-Type: application/json"};
    for (int i = 0; headers && headers[i] && i < 6; i++)
        h[i + 1] = headers[i];
    th_response r;
    ck_assert_int_eq(
        th_http(method, th_fmt("%s%s", d->url, path), body, body ? strlen(body) : 0, h, &r), 0);
    if (json)
        *json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    long st = r.status;
    th_response_free(&r);
    return st;
}

/* A Dapr delivery with the given dapr-api-token (NULL: no header). */
static long deliver(const th_daemon *d, const char *path, const char *body, const char *token,
                    json_t **json)
{
    const char *h[] = {token ? th_fmt("dapr-api-token: %s", token) : NULL, NULL};
    return http_h(d, "POST", path, body, h, json);
}

static long http(const th_daemon *d, const char *method, const char *path, const char *body,
                 const char *token, json_t **json)
{
    char auth[1100];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    const char *h[] = {"Content-Type: application/json", token ? auth : NULL, NULL};
    th_response r;
    ck_assert_int_eq(
        th_http(method, th_fmt("%s%s", d->url, path), body, body ? strlen(body) : 0, h, &r), 0);
    if (json)
        *json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    long st = r.status;
    th_response_free(&r);
    return st;
}

static user make_user(const char *tag)
{
    user u = {0};
    char email[128];
    snprintf(email, sizeof(email), "%s-%d@example.com", tag, (int)getpid());
    json_t *j = NULL;
    ck_assert_int_eq(
        http(&a, "POST", "/api/auth/register",
             th_fmt("{\"email\":\"%s\",\"name\":\"%s\",\"password\":\"pw\"}", email, tag), NULL,
             &j),
        201);
    u.id = (int)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    ck_assert_int_eq(http(&a, "POST", "/api/auth/login",
                          th_fmt("{\"email\":\"%s\",\"password\":\"pw\"}", email), NULL, &j),
                     200);
    snprintf(u.token, sizeof(u.token), "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    return u;
}

/* Creates a task through process d; returns its id. */
static int create_task(const th_daemon *d, const user *u, const char *title)
{
    json_t *j = NULL;
    ck_assert_int_eq(
        http(d, "POST", "/api/tasks", th_fmt("{\"title\":\"%s\"}", title), u->token, &j), 201);
    int id = (int)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

/* ---- an event-stream client over a plain socket ---------------------------------------------- */

typedef struct sse_client {
    int fd;
    char buf[65536];
    size_t len;
} sse_client;

/* sse_connect with one more request header line (NULL: none), e.g. "Last-Event-ID: x". */
static void sse_connect_h(sse_client *c, const th_daemon *d, const char *path, const char *token,
                          const char *header);

/* Connects and sends the request; the status line is checked by sse_wait. */
static void sse_connect(sse_client *c, const th_daemon *d, const char *path, const char *token)
{
    sse_connect_h(c, d, path, token, NULL);
}

static void sse_connect_h(sse_client *c, const th_daemon *d, const char *path, const char *token,
                          const char *header)
{
    memset(c, 0, sizeof(*c));
    int port = atoi(strrchr(d->url, ':') + 1);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char *req = th_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                             "%s%s%s%s%s\r\n",
                             path, token ? "Authorization: Bearer " : "", token ? token : "",
                             token ? "\r\n" : "", header ? header : "", header ? "\r\n" : "");
    ck_assert_int_eq(write(c->fd, req, strlen(req)), (ssize_t)strlen(req));
}

/* Reads until needle appears in what arrived; 1 found, 0 on timeout or close. */
static int sse_wait(sse_client *c, const char *needle, double timeout_s)
{
    double end = th_now_s() + timeout_s;
    for (;;) {
        c->buf[c->len] = '\0';
        if (strstr(c->buf, needle))
            return 1;
        double left = end - th_now_s();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (n <= 0)
            return 0;
        c->len += (size_t)n;
    }
}

static void sse_disconnect(sse_client *c) { close(c->fd); }

/* ---- the two processes -------------------------------------------------------------------------
 */

/* with_token: the Dapr app token in the core's dapr section and in realtime's config;
 * rt_extra: more of realtime's config ("" or ", \"key\": value") */
static char *config_x(const char *name, int with_token, const char *rt_extra)
{
    const char *tok = with_token ? DAPR_TOKEN : "";
    return th_write(
        dir, th_fmt("%s.json", name),
        th_fmt(
            "{\"app_id\": \"rt-%s\", \"log\": {\"format\": \"text\"},"
            " \"postgres\": {\"url\": \"%s\", \"pool_size\": 4},"
            " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\","
            "   \"heartbeat.interval.ms\": \"500\", \"fetch.wait.max.ms\": \"10\"}},"
            " \"outbox\": {\"poll_ms\": 200},"
            " \"http\": {\"listen\": \"127.0.0.1:0\", \"sse_keepalive_s\": 1},"
            " \"dapr\": {\"enabled\": true, \"app_token\": \"%s\"},"
            " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/realtime/.libs\","
            " \"plugins\": ["
            "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
            "   \"rt-secret-0123456789abcdef0123456789abcd\", \"bcrypt_cost\": 4}},"
            "  {\"name\": \"realtime\", \"load\": \"realtime\","
            "   \"config\": {\"dapr_token\": \"%s\", \"max_streams_per_user\": %d%s},"
            "   \"consume\": {\"topics\":"
            "   [\"task-events\"], \"broadcast\": true, \"dapr_route\": \"/api/events/task-event\","
            "   \"workers\": 2}}]}",
            name, dburl, bootstrap, tok, th_builddir(), th_builddir(), tok, MAX_STREAMS, rt_extra));
}

static char *config(const char *name, int with_token) { return config_x(name, with_token, ""); }

/* Waits until the process is ready and its broadcast consumer has its partitions. */
static void wait_ready(const th_daemon *d)
{
    double end = th_now_s() + 30;
    json_t *j = NULL;
    long st = 0;
    int assigned = 0;
    while (th_now_s() < end) {
        st = http(d, "GET", "/ready", NULL, NULL, &j);
        /* a broadcast group does not take part in /ready: an API pod serves while Kafka is
         * down */
        int kafka_probe = json_object_get(j, "kafka") != NULL;
        json_decref(j);
        assigned = th_metric(d->url, "taskora_consumer_rebalances_total{plugin=\"realtime\","
                                     "kind=\"assign\"}") == 1;
        ck_assert_msg(!kafka_probe, "/ready of an API pod waits for Kafka");
        if (st == 200 && assigned)
            return;
        usleep(50000);
    }
    ck_abort_msg("%s never became ready (last status %ld, assigned %d)", d->url, st, assigned);
}

static void start(th_daemon *d, const char *name, int with_token)
{
    char *cfg = config(name, with_token);
    th_daemon_start_named(d, dir, cfg, name);
    free(cfg);
}

/* A directory, a migrated database and a Kafka-protocol cluster of this process, named after
 * `tag`. */
static void env_up(const char *tag)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_rt%s_%d", tag, (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    static const th_topic topics[] = {
        {"task-events", 2}, {"task-events.dlq", 2}, {"user-events", 2}, {"chat-events", 2}, {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
    char *cfg = config(th_fmt("migrate%s", tag), 0);
    th_migrate(cfg);
    free(cfg);
}

static void env_down(void)
{
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

static void suite_up(void)
{
    if (a.pid)
        return;
    env_up("");
    start(&a, "a", 1);
    start(&b, "b", 0);
    wait_ready(&a);
    wait_ready(&b);
    u1 = make_user("rt-one");
    u2 = make_user("rt-two");
    u3 = make_user("rt-three");
}

static void suite_down(void)
{
    if (--tcases_left > 0)
        return;
    th_daemon *ds[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        if (ds[i]->pid <= 0)
            continue;
        kill(ds[i]->pid, SIGINT); /* stops without the drain delay */
        daemon_exit[i] = th_daemon_wait(ds[i], 30000);
        if (daemon_exit[i] != 0) {
            char *text = th_read(ds[i]->log_path);
            fprintf(stderr, "taskorad %s exited %d:\n%s\n", ds[i]->url, daemon_exit[i], text);
            free(text);
        }
        th_daemon_cleanup(ds[i]);
    }
    env_down();
}

/* ---- tests
 * ---------------------------------------------------------------------------------------- */

START_TEST(test_a_change_through_one_process_reaches_the_users_stream_on_another)
{
    sse_client s1, s2;
    sse_connect(&s1, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    sse_connect(&s2, &a, "/api/events/stream", u2.token); /* a header works as well */
    ck_assert_msg(sse_wait(&s1, "event: connected", 5), "%s", s1.buf);
    ck_assert_ptr_nonnull(strstr(s1.buf, "HTTP/1.1 200"));
    ck_assert_ptr_nonnull(strstr(s1.buf, "text/event-stream"));
    ck_assert_ptr_nonnull(strstr(s1.buf, th_fmt("\"user_id\":\"%d\"", u1.id)));
    ck_assert_ptr_nonnull(strstr(s1.buf, "\"connection_id\":"));
    ck_assert(sse_wait(&s2, "event: connected", 5));

    int t1 = create_task(&b, &u1, "pushed across processes");
    double t0 = th_now_s();
    const char *frame = th_fmt("\"task_id\":%d", t1);
    ck_assert_msg(sse_wait(&s1, frame, push_deadline_s()),
                  "no task.created for task %d within %.0f s on the other process: %s", t1,
                  push_deadline_s(), s1.buf);
    double took = th_now_s() - t0;
    ck_assert_ptr_nonnull(strstr(s1.buf, "event: task.created\ndata: {"));

    /* the other user's stream gets its own events, never this one's */
    int t2 = create_task(&b, &u2, "someone else's");
    ck_assert(sse_wait(&s2, th_fmt("\"task_id\":%d", t2), 5));
    ck_assert_msg(!strstr(s2.buf, th_fmt("\"task_id\":%d,", t1)) &&
                      !strstr(s2.buf, th_fmt("\"task_id\":%d}", t1)),
                  "user 2 saw user 1's task: %s", s2.buf);
    ck_assert(!sse_wait(&s1, th_fmt("\"task_id\":%d", t2), 0.5));
    fprintf(stderr, "pushed across processes in %.3f s\n", took);

    sse_disconnect(&s1);
    sse_disconnect(&s2);
}
END_TEST

START_TEST(test_a_stream_needs_a_valid_token)
{
    json_t *j = NULL;
    ck_assert_int_eq(http(&a, "GET", "/api/events/stream", NULL, NULL, &j), 401);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")), "Not authenticated");
    json_decref(j);
    ck_assert_int_eq(http(&a, "GET", "/api/events/stream?token=not.a.token", NULL, NULL, &j), 401);
    json_decref(j);
}
END_TEST

/* The detail of a 401 body. */
static void expect_refused(long st, json_t *j, const char *what)
{
    ck_assert_msg(st == 401, "%s: expected 401, got %ld", what, st);
    const char *d = json_string_value(json_object_get(j, "detail"));
    ck_assert_msg(d && strcmp(d, "Could not validate credentials") == 0, "%s: detail %s", what,
                  d ? d : "(none)");
    json_decref(j);
}

START_TEST(test_a_logged_out_or_deleted_users_token_opens_no_stream_on_any_process)
{
    user out = make_user("rt-logout"), gone = make_user("rt-deleted");
    const th_daemon *ds[] = {&a, &b};
    /* before: each token opens a stream on either process */
    for (int i = 0; i < 2; i++) {
        sse_client s;
        sse_connect(&s, ds[i], th_fmt("/api/events/stream?token=%s", out.token), NULL);
        ck_assert_msg(sse_wait(&s, "event: connected", 5), "%s", s.buf);
        sse_disconnect(&s);
    }
    json_t *j = NULL;
    /* logged out through one process, deleted through the other */
    ck_assert_int_eq(http(&a, "POST", "/api/auth/logout", NULL, out.token, &j), 200);
    json_decref(j);
    ck_assert_int_eq(http(&b, "DELETE", "/api/auth/delete-account", NULL, gone.token, &j), 200);
    json_decref(j);
    const user *us[] = {&out, &gone};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 2; k++) {
            const char *tok = us[k]->token;
            for (int header = 0; header < 2; header++) {
                sse_client s;
                if (header)
                    sse_connect(&s, ds[i], "/api/events/stream", tok);
                else
                    sse_connect(&s, ds[i], th_fmt("/api/events/stream?token=%s", tok), NULL);
                sse_wait(&s, "Could not validate credentials", 5);
                ck_assert_msg(strstr(s.buf, "HTTP/1.1 401") &&
                                  strstr(s.buf, "Could not validate credentials"),
                              "stream (%s) on process %d, user %d: %s",
                              header ? "Bearer" : "?token=", i, k, s.buf);
                sse_disconnect(&s);
            }
            long st = http(ds[i], "GET", "/api/tasks", NULL, tok, &j);
            expect_refused(st, j, th_fmt("GET /api/tasks on process %d, user %d", i, k));
        }
    }
}
END_TEST

START_TEST(test_idle_streams_get_keepalives_and_closing_a_client_is_noticed)
{
    sse_client s;
    sse_connect(&s, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    ck_assert(sse_wait(&s, "event: connected", 5));
    ck_assert_msg(sse_wait(&s, ": keepalive", 5), "%s", s.buf); /* every second in this config */
    sse_disconnect(&s);
    /* the server notices the client is gone at its next write and forgets the stream */
    ck_assert_msg(th_wait_metric(a.url, "taskora_realtime_streams{plugin=\"realtime\"}", 0, 10) ==
                      0,
                  "the closed stream is still counted as open");
}
END_TEST

START_TEST(test_dapr_subscription_and_delivery)
{
    json_t *j = NULL;
    ck_assert_int_eq(http(&a, "GET", "/dapr/subscribe", NULL, NULL, &j), 200);
    ck_assert_int_eq(json_array_size(j), 1);
    json_t *sub = json_array_get(j, 0);
    ck_assert_str_eq(json_string_value(json_object_get(sub, "topic")), "task-events");
    ck_assert_str_eq(json_string_value(json_object_get(sub, "route")), "/api/events/task-event");
    ck_assert_str_eq(json_string_value(json_object_get(sub, "pubsubname")), "pubsub");
    json_decref(j);

    sse_client s;
    sse_connect(&s, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    ck_assert(sse_wait(&s, "event: connected", 5));
    /* what a Dapr sidecar delivers: a CloudEvent whose data is the app's event */
    const char *ce =
        th_fmt("{\"specversion\":\"1.0\",\"id\":\"d1\",\"source\":\"taskora-backend\","
               "\"type\":\"task.reminder\",\"topic\":\"task-events\",\"pubsubname\":\"pubsub\","
               "\"datacontenttype\":\"application/json\",\"data\":{\"event_id\":\"d1\","
               "\"event_type\":\"task.reminder\",\"timestamp\":\"2026-02-04T12:00:00+00:00\","
               "\"user_id\":\"%d\",\"payload\":{\"task_id\":77,\"title\":\"dapr says hi\"}}}",
               u1.id);
    ck_assert_int_eq(deliver(&a, "/api/events/reminder-event", ce, DAPR_TOKEN, &j), 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "SUCCESS");
    json_decref(j);
    ck_assert_msg(sse_wait(&s, "event: task.reminder", 5), "%s", s.buf);
    ck_assert_ptr_nonnull(strstr(s.buf, "dapr says hi"));
    /* the core's generic delivery route hands an event to the instance's consume handler */
    const char *ev = th_fmt("{\"specversion\":\"1.0\",\"id\":\"d2\",\"source\":\"s\","
                            "\"type\":\"task.updated\",\"data\":{\"event_id\":\"d2\","
                            "\"event_type\":\"task.updated\",\"user_id\":\"%d\","
                            "\"payload\":{\"task_id\":78,\"title\":\"via the core\"}}}",
                            u1.id);
    ck_assert_int_eq(deliver(&a, "/dapr/events/realtime", ev, DAPR_TOKEN, &j), 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "SUCCESS");
    json_decref(j);
    ck_assert_msg(sse_wait(&s, "via the core", 5), "%s", s.buf);
    ck_assert_int_eq(deliver(&a, "/dapr/events/nobody", ev, DAPR_TOKEN, &j), 404);
    json_decref(j);
    sse_disconnect(&s);
}
END_TEST

START_TEST(test_dapr_deliveries_need_the_app_token_and_without_one_are_not_served)
{
    char ev[256];
    snprintf(ev, sizeof(ev),
             "{\"event_id\":\"t1\",\"event_type\":\"task.deleted\",\"user_id\":\"%d\","
             "\"payload\":{\"task_id\":1}}",
             u1.id);
    const char *routes[] = {"/api/events/task-event", "/api/events/reminder-event",
                            "/dapr/events/realtime"};
    const char *wrong[] = {NULL,
                           "",
                           "rt-dapr-token-4f1d2d",
                           "rt-dapr-token",
                           DAPR_TOKEN "x",
                           DAPR_TOKEN DAPR_TOKEN,
                           "RT-DAPR-TOKEN-4F1D2C"};
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
        json_t *j = NULL;
        /* b has no token configured: the routes do not exist, whatever the header says */
        ck_assert_int_eq(deliver(&b, routes[r], ev, NULL, &j), 404);
        ck_assert_str_eq(json_string_value(json_object_get(j, "detail")), "Not Found");
        json_decref(j);
        ck_assert_int_eq(deliver(&b, routes[r], ev, "anything", &j), 404);
        json_decref(j);
        /* a has one: a missing, shorter, longer or different token is 401 */
        for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
            ck_assert_msg(deliver(&a, routes[r], ev, wrong[w], &j) == 401, "%s with token %s",
                          routes[r], wrong[w] ? wrong[w] : "(none)");
            ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                             "Invalid dapr-api-token");
            json_decref(j);
        }
    }
    /* the subscription list stays readable (it names topics and routes only) */
    json_t *j = NULL;
    ck_assert_int_eq(http(&b, "GET", "/dapr/subscribe", NULL, NULL, &j), 200);
    json_decref(j);
}
END_TEST

START_TEST(test_delivered_events_are_validated_and_cannot_inject_stream_fields)
{
    sse_client s;
    sse_connect(&s, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    ck_assert(sse_wait(&s, "event: connected", 5));
    const char *route = "/api/events/task-event";
    /* each a format for the user id (those without %d do not use it) */
    const char *bad[] = {
        "not json",
        "[1,2]",
        "{\"x\":1}",
        "{\"event_type\":\"task.deleted\",\"payload\":{}}",
        "{\"event_type\":\"task.deleted\",\"user_id\":\"abc\"}",
        "{\"event_type\":\"task.deleted\",\"user_id\":0}",
        "{\"event_type\":\"task.deleted\",\"user_id\":-3}",
        "{\"event_type\":\"task.deleted\",\"user_id\":\"-3\"}",
        "{\"event_type\":\"task.deleted\",\"user_id\":\"0%d\"}",
        "{\"event_type\":\"task.deleted\",\"user_id\":\"%d \"}",
        "{\"event_type\":\"task.deleted\",\"user_id\":\"99999999999999999999\"}",
        "{\"event_type\":\"task.deleted\",\"user_id\":1.5}",
        "{\"event_type\":\"task.deleted\",\"user_id\":[%d]}",
        "{\"event_type\":\"user.deleted\",\"user_id\":%d}",
        "{\"event_type\":\"connected\",\"user_id\":%d}",
        "{\"event_type\":\"task.deleted\\nevent: x\",\"user_id\":%d}",
        "{\"event_type\":\"task.deleted\",\"user_id\":%d,\"user_id\":1}",
        "{\"user_id\":%d}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), bad[i], u1.id);
        json_t *j = NULL;
        ck_assert_msg(deliver(&a, route, body, DAPR_TOKEN, &j) == 422, "%s", body);
        ck_assert_msg(json_is_string(json_object_get(j, "detail")), "%s", body);
        json_decref(j);
    }
    /* 100 KB for one user: refused, and the user's stream is not ended by it */
    size_t big = 100 * 1024;
    char *huge = malloc(big + 256);
    int n =
        snprintf(huge, 256, "{\"event_type\":\"task.updated\",\"user_id\":%d,\"msg\":\"", u1.id);
    memset(huge + n, 'A', big);
    strcpy(huge + n + big, "\"}");
    json_t *j = NULL;
    ck_assert_int_eq(deliver(&a, route, huge, DAPR_TOKEN, &j), 413);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")), "Event too large");
    json_decref(j);
    free(huge);
    ck_assert_msg(!sse_wait(&s, "event: task.", 0.5), "a refused event reached the stream: %s",
                  s.buf);

    /* a string that tries to end the data: line and start its own event stays inside the JSON */
    char evil[512];
    snprintf(evil, sizeof(evil),
             "{\"event_id\":\"e1\",\"event_type\":\"task.updated\",\"user_id\":%d,"
             "\"msg\":\"<script>alert(1)</script>\\n\\nevent: task.deleted\\r\\ndata: {}\\n\\n\","
             "\"payload\":{\"task_id\":5}}",
             u1.id);
    ck_assert_int_eq(deliver(&a, route, evil, DAPR_TOKEN, &j), 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "SUCCESS");
    json_decref(j);
    ck_assert_msg(sse_wait(&s, "event: task.updated\ndata: {", 5), "%s", s.buf);
    ck_assert_msg(sse_wait(&s, "}\n\n", 5), "%s", s.buf);
    ck_assert_msg(!strstr(s.buf, "\nevent: task.deleted") && !strstr(s.buf, "\ndata: {}"),
                  "an injected field: %s", s.buf);
    /* the frame's one data line parses as the event that was sent */
    char *line =
        strstr(s.buf, "event: task.updated\ndata: ") + strlen("event: task.updated\ndata: ");
    char *eol = strchr(line, '\n');
    *eol = '\0';
    json_t *got = json_loads(line, 0, NULL);
    ck_assert_msg(got != NULL, "data line is not JSON: %s", line);
    ck_assert_str_eq(json_string_value(json_object_get(got, "msg")),
                     "<script>alert(1)</script>\n\nevent: task.deleted\r\ndata: {}\n\n");
    json_decref(got);
    sse_disconnect(&s);
}
END_TEST

START_TEST(test_a_user_has_a_limited_number_of_streams_and_closing_one_frees_a_slot)
{
    sse_client s[MAX_STREAMS + 1];
    for (int i = 0; i < MAX_STREAMS; i++) {
        sse_connect(&s[i], &a, "/api/events/stream", u3.token);
        ck_assert_msg(sse_wait(&s[i], "event: connected", 5), "stream %d: %s", i, s[i].buf);
    }
    /* another user is not affected */
    sse_client other;
    sse_connect(&other, &a, "/api/events/stream", u2.token);
    ck_assert(sse_wait(&other, "event: connected", 5));
    sse_disconnect(&other);

    sse_client extra;
    sse_connect(&extra, &a, "/api/events/stream", u3.token);
    ck_assert_msg(sse_wait(&extra, "\"}", 5), "%s", extra.buf);
    ck_assert_msg(strstr(extra.buf, "HTTP/1.1 429"), "%s", extra.buf);
    ck_assert_msg(strstr(extra.buf, "Retry-After: 30\r\n"), "%s", extra.buf);
    ck_assert_msg(strstr(extra.buf, "application/json"), "%s", extra.buf);
    ck_assert_msg(strstr(extra.buf, th_fmt("{\"detail\":\"Too many open event streams (at most %d "
                                           "per user)\"}",
                                           MAX_STREAMS)),
                  "%s", extra.buf);
    ck_assert(!strstr(extra.buf, "event: connected"));
    sse_disconnect(&extra);
    /* the streams still open are unaffected by the refusal */
    int t = create_task(&a, &u3, "for every open stream");
    for (int i = 0; i < MAX_STREAMS; i++)
        ck_assert_msg(sse_wait(&s[i], th_fmt("\"task_id\":%d", t), 10), "%s", s[i].buf);

    /* a closed stream frees its slot once the server notices (its next keepalive, 1 s here) */
    sse_disconnect(&s[0]);
    int ok = 0;
    double end = th_now_s() + 10;
    while (!ok && th_now_s() < end) {
        sse_connect(&s[MAX_STREAMS], &a, "/api/events/stream", u3.token);
        ck_assert(sse_wait(&s[MAX_STREAMS], "\r\n\r\n", 5));
        ok = strstr(s[MAX_STREAMS].buf, "HTTP/1.1 200") != NULL;
        if (!ok) {
            ck_assert_msg(strstr(s[MAX_STREAMS].buf, "HTTP/1.1 429"), "%s", s[MAX_STREAMS].buf);
            sse_disconnect(&s[MAX_STREAMS]);
            usleep(200000);
        }
    }
    ck_assert_msg(ok, "closing a stream did not free its slot");
    ck_assert(sse_wait(&s[MAX_STREAMS], "event: connected", 5));
    for (int i = 1; i <= MAX_STREAMS; i++)
        sse_disconnect(&s[i]);
}
END_TEST

START_TEST(test_a_poison_event_goes_to_the_dlq_and_pushing_goes_on)
{
    sse_client s;
    sse_connect(&s, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    ck_assert(sse_wait(&s, "event: connected", 5));
    /* produced with kcat: this process is a fork of the one running the cluster, and
     * librdkafka does not survive fork() */
    char *poison = th_write(dir, th_fmt("poison-%d", (int)getpid()), "this is not an event");
    for (int part = 0; part < 2; part++) {
        char pp[8];
        snprintf(pp, sizeof(pp), "%d", part);
        char *argv[] = {
            "/usr/bin/kcat", "-P", "-b", (char *)bootstrap, "-t", "task-events", "-p", pp,
            poison,          NULL};
        char *err = NULL;
        ck_assert_msg(th_run(argv, NULL, &err, 20000) == 0, "kcat: %s", err);
        free(err);
    }
    free(poison);
    int t = create_task(&b, &u1, "after the poison");
    ck_assert_msg(sse_wait(&s, th_fmt("\"task_id\":%d", t), 10), "%s", s.buf);
    /* the partitions of the poison are not the task's: their counts may come a moment later */
    const char *dlq =
        "taskora_consumer_dead_lettered_total{plugin=\"realtime\",reason=\"undecodable\"}";
    ck_assert_double_eq(th_wait_metric(a.url, dlq, 2, 10), 2);
    sse_disconnect(&s);
}
END_TEST

START_TEST(test_pushing_goes_on_after_the_database_drops_every_connection)
{
    sse_client s;
    sse_connect(&s, &a, th_fmt("/api/events/stream?token=%s", u1.token), NULL);
    ck_assert(sse_wait(&s, "event: connected", 5));
    /* as during a database restart: every connection of both processes is cut */
    char *n =
        th_pg_query1(dburl, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    ck_assert_int_gt(atoi(n), 0);
    free(n);
    /* the pool replaces dead connections (a request may see 503 while it does) */
    int t = 0;
    double end = th_now_s() + 20;
    while (!t && th_now_s() < end) {
        json_t *j = NULL;
        long st = http(&b, "POST", "/api/tasks", "{\"title\":\"after the restart\"}", u1.token, &j);
        if (st == 201)
            t = (int)json_integer_value(json_object_get(j, "id"));
        else
            ck_assert_msg(st == 503, "POST /api/tasks answered %ld during the outage", st);
        json_decref(j);
        if (!t)
            usleep(100000);
    }
    ck_assert_msg(t > 0, "the API did not recover");
    ck_assert_msg(sse_wait(&s, th_fmt("\"task_id\":%d", t), 10), "%s", s.buf);
    sse_disconnect(&s);
}
END_TEST

/* ---- resume and start-up ------------------------------------------------------------------- */

/* How many frames carry task t (its "task_id" followed by a non-digit). */
static int frames_of(const sse_client *c, int t)
{
    const char *needle = th_fmt("\"task_id\":%d", t);
    int n = 0;
    for (const char *p = c->buf; (p = strstr(p, needle)); p += strlen(needle))
        n += p[strlen(needle)] < '0' || p[strlen(needle)] > '9';
    return n;
}

/* Where task t's frame starts in what arrived (NULL: not there). */
static const char *frame_at(const sse_client *c, int t)
{
    const char *needle = th_fmt("\"task_id\":%d", t);
    for (const char *p = c->buf; (p = strstr(p, needle)); p += strlen(needle))
        if (p[strlen(needle)] < '0' || p[strlen(needle)] > '9')
            return p;
    return NULL;
}

/* The SSE id of task t's frame: the last "id: " line before it. */
static void frame_id(const sse_client *c, int t, char *out, size_t len)
{
    const char *at = frame_at(c, t), *id = NULL;
    ck_assert_msg(at != NULL, "no frame for task %d: %s", t, c->buf);
    for (const char *p = c->buf; (p = strstr(p, "\nid: ")) && p < at; p++)
        id = p + 5;
    ck_assert_msg(id != NULL, "task %d's frame has no id: %s", t, c->buf);
    snprintf(out, len, "%.*s", (int)(strchr(id, '\n') - id), id);
}

START_TEST(test_a_client_that_reconnects_with_last_event_id_gets_what_it_missed_once_in_order)
{
    sse_client s;
    sse_connect(&s, &a, "/api/events/stream", u2.token);
    ck_assert(sse_wait(&s, "event: connected", 5));
    ck_assert_msg(strstr(s.buf, "\"resume\":\"none\""), "%s", s.buf);
    int t1 = create_task(&b, &u2, "seen before the drop");
    ck_assert(sse_wait(&s, th_fmt("\"task_id\":%d", t1), 5));
    char last[320];
    frame_id(&s, t1, last, sizeof(last));
    char topic[64];
    long part, off;
    long long ms;
    ck_assert_msg(sscanf(last, "%63[^:]:%ld:%ld:%lld", topic, &part, &off, &ms) == 4, "id %s",
                  last);
    ck_assert_str_eq(topic, "task-events");
    sse_disconnect(&s);

    /* missed while away, through either process */
    int t2 = create_task(&b, &u2, "missed one");
    int t3 = create_task(&a, &u2, "missed two");
    /* the other process resumes it: ids are the same everywhere */
    sse_client r;
    sse_connect_h(&r, &b, "/api/events/stream", u2.token, th_fmt("Last-Event-ID: %s", last));
    ck_assert_msg(sse_wait(&r, th_fmt("\"task_id\":%d", t3), 5), "%s", r.buf);
    ck_assert_msg(strstr(r.buf, "\"resume\":\"resumed\""), "%s", r.buf);
    ck_assert_msg(!strstr(r.buf, "event: resync"), "%s", r.buf);
    int t4 = create_task(&a, &u2, "after the resume");
    ck_assert(sse_wait(&r, th_fmt("\"task_id\":%d", t4), 5));
    /* a moment for anything doubled to arrive */
    ck_assert(!sse_wait(&r, "never sent", 0.3));
    ck_assert_int_eq(frames_of(&r, t1), 0);
    ck_assert_int_eq(frames_of(&r, t2), 1);
    ck_assert_int_eq(frames_of(&r, t3), 1);
    ck_assert_int_eq(frames_of(&r, t4), 1);
    ck_assert(frame_at(&r, t2) < frame_at(&r, t3) && frame_at(&r, t3) < frame_at(&r, t4));
    sse_disconnect(&r);

    /* the same with the query parameter a page passes when it opens a new EventSource */
    sse_client q;
    sse_connect(&q, &a, th_fmt("/api/events/stream?last_event_id=%s", last), u2.token);
    ck_assert_msg(sse_wait(&q, th_fmt("\"task_id\":%d", t4), 5), "%s", q.buf);
    ck_assert(strstr(q.buf, "\"resume\":\"resumed\""));
    ck_assert_int_eq(frames_of(&q, t1), 0);
    ck_assert_int_eq(frames_of(&q, t2) + frames_of(&q, t3) + frames_of(&q, t4), 3);
    sse_disconnect(&q);
    /* another user's id resumes nothing of this user's */
    sse_client o;
    sse_connect_h(&o, &b, "/api/events/stream", u1.token, th_fmt("Last-Event-ID: %s", last));
    ck_assert(sse_wait(&o, "event: connected", 5));
    ck_assert(!sse_wait(&o, "task_id", 0.3));
    sse_disconnect(&o);
}
END_TEST

START_TEST(test_a_fresh_process_is_ready_once_positioned_and_resyncs_gaps_older_than_its_window)
{
    /* a third process, with a window of a few events */
    th_daemon c = {0};
    char *cfg = config_x("c", 0, ", \"resume_max_bytes\": 4096");
    /* returns once it serves HTTP, which is before its consumer may have read up to the end */
    th_daemon_start_named(&c, dir, cfg, "c");
    free(cfg);
    /* /ready says 503 "positioning" until the broadcast consumer has read up to the end */
    double end = th_now_s() + 30, ready_at = 0;
    long st = 0;
    while (!ready_at && th_now_s() < end) {
        json_t *j = NULL;
        st = http(&c, "GET", "/ready", NULL, NULL, &j);
        const char *push = json_string_value(json_object_get(j, "event_push"));
        if (st == 200) {
            ck_assert_str_eq(push, "positioned");
            ready_at = th_now_s();
        } else if (push) {
            ck_assert_str_eq(push, "positioning");
        }
        json_decref(j);
        if (!ready_at)
            usleep(5000);
    }
    ck_assert_msg(ready_at > 0, "never ready (last %ld)", st);
    /* a task created through a 100 ms after c turned ready reaches c's stream */
    sse_client s;
    sse_connect(&s, &c, "/api/events/stream", u3.token);
    ck_assert(sse_wait(&s, "event: connected", 5));
    while (th_now_s() < ready_at + 0.1)
        usleep(1000);
    int t1 = create_task(&a, &u3, "right after the new process turned ready");
    ck_assert_msg(sse_wait(&s, th_fmt("\"task_id\":%d", t1), push_deadline_s() + 1),
                  "the fresh process's stream missed a task: %s", s.buf);
    char last[320];
    frame_id(&s, t1, last, sizeof(last));
    sse_disconnect(&s);

    /* more than the window holds happens meanwhile */
    sse_client w;
    sse_connect(&w, &c, "/api/events/stream", u2.token);
    ck_assert(sse_wait(&w, "event: connected", 5));
    int tn = 0;
    for (int i = 0; i < 12; i++)
        tn = create_task(&a, &u2, "filling the window");
    ck_assert(sse_wait(&w, th_fmt("\"task_id\":%d", tn), 5));
    sse_disconnect(&w);
    sse_client r;
    sse_connect_h(&r, &c, "/api/events/stream", u3.token, th_fmt("Last-Event-ID: %s", last));
    ck_assert_msg(sse_wait(&r, "event: resync", 5), "%s", r.buf);
    ck_assert_msg(strstr(r.buf, "\"resume\":\"resync\""), "%s", r.buf);
    ck_assert_msg(strstr(r.buf, "event: connected") < strstr(r.buf, "event: resync"), "%s", r.buf);
    sse_disconnect(&r);
    /* so does an id that is not one of ours */
    sse_connect_h(&r, &c, "/api/events/stream", u3.token, "Last-Event-ID: 12345");
    ck_assert_msg(sse_wait(&r, "event: resync", 5), "%s", r.buf);
    sse_disconnect(&r);
    /* and the stream goes on live after a resync */
    sse_connect_h(&r, &c, "/api/events/stream", u3.token, "Last-Event-ID: nonsense");
    ck_assert(sse_wait(&r, "event: resync", 5));
    int t2 = create_task(&b, &u3, "after the resync");
    ck_assert(sse_wait(&r, th_fmt("\"task_id\":%d", t2), 5));
    sse_disconnect(&r);
    kill(c.pid, SIGINT);
    ck_assert_int_eq(th_daemon_wait(&c, 30000), 0);
    th_daemon_cleanup(&c);
}
END_TEST

/* Runs in its own tcase after the shared processes are gone: the cluster it stops is made here,
 * in the test's process (librdkafka does not survive fork(), so the shared cluster cannot be
 * driven from a test). */
START_TEST(test_a_kafka_outage_leaves_api_processes_ready_and_pushing_resumes_after_it)
{
    env_up("_out");
    start(&a, "outage", 0);
    wait_ready(&a);
    user u = make_user("rt-outage");

    sse_client s;
    sse_connect(&s, &a, "/api/events/stream", u.token);
    ck_assert(sse_wait(&s, "event: connected", 5));
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(th_mock_cluster(mock), 1), 0);
    int t = create_task(&a, &u, "during the outage");
    /* the event waits in the outbox: Kafka is down for this process; it stays ready */
    double end = th_now_s() + 3, outage = 0;
    while (th_now_s() < end) {
        json_t *j = NULL;
        ck_assert_int_eq(http(&a, "GET", "/ready", NULL, NULL, &j), 200);
        ck_assert_str_eq(json_string_value(json_object_get(j, "event_push")), "positioned");
        json_decref(j);
        if (th_pg_count(dburl, "SELECT count(*) FROM taskora_outbox WHERE sent_at IS NULL"
                               " AND created_at < now() - interval '1 second'") > 0)
            outage = th_now_s();
        usleep(100000);
    }
    ck_assert_msg(outage > 0, "the event did not wait in the outbox: was Kafka down?");
    ck_assert(!sse_wait(&s, th_fmt("\"task_id\":%d", t), 0));
    ck_assert_int_eq(rd_kafka_mock_broker_set_up(th_mock_cluster(mock), 1), 0);
    ck_assert_msg(sse_wait(&s, th_fmt("\"task_id\":%d", t), 30), "%s", s.buf);
    sse_disconnect(&s);
    kill(a.pid, SIGINT);
    ck_assert_int_eq(th_daemon_wait(&a, 30000), 0);
    th_daemon_cleanup(&a);
    env_down();
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_realtime");
    Suite *s = suite_create("realtime");
    TCase *tc = tcase_create("realtime");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, test_a_change_through_one_process_reaches_the_users_stream_on_another);
    tcase_add_test(tc, test_a_stream_needs_a_valid_token);
    tcase_add_test(tc, test_a_logged_out_or_deleted_users_token_opens_no_stream_on_any_process);
    tcase_add_test(tc, test_idle_streams_get_keepalives_and_closing_a_client_is_noticed);
    tcase_add_test(tc, test_dapr_subscription_and_delivery);
    tcase_add_test(tc, test_dapr_deliveries_need_the_app_token_and_without_one_are_not_served);
    tcase_add_test(tc, test_delivered_events_are_validated_and_cannot_inject_stream_fields);
    tcase_add_test(tc, test_a_user_has_a_limited_number_of_streams_and_closing_one_frees_a_slot);
    tcase_add_test(tc, test_a_poison_event_goes_to_the_dlq_and_pushing_goes_on);
    tcase_add_test(tc, test_pushing_goes_on_after_the_database_drops_every_connection);
    tcase_add_test(
        tc, test_a_client_that_reconnects_with_last_event_id_gets_what_it_missed_once_in_order);
    tcase_add_test(
        tc, test_a_fresh_process_is_ready_once_positioned_and_resyncs_gaps_older_than_its_window);
    suite_add_tcase(s, tc);
    TCase *outage = tcase_create("outage");
    tcase_set_timeout(outage, 120);
    tcase_add_test(outage,
                   test_a_kafka_outage_leaves_api_processes_ready_and_pushing_resumes_after_it);
    suite_add_tcase(s, outage);
    tcases_left = 1;
    int rc = th_run_suite(s);
    return rc != 0 ? rc : (daemon_exit[0] || daemon_exit[1]) ? 1 : 0;
}

/*
 * A rolling deploy that nobody notices: two API replicas (http_api + realtime) on one PostgreSQL
 * and one Kafka-protocol cluster owned by the test, a writer creating a task every 50 ms through
 * whichever replica is ready (as a load balancer would route), and a client that follows its event
 * stream the way EventSource does (on a closed stream it reconnects, to either ready replica, with
 * Last-Event-ID). Both replicas are restarted one after the other while the writes go on. Every
 * write must get an answer and the client must end with every task's event exactly once.
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testhelp.h"
#include "th_kafka.h"

#define RUN_S 20.0  /* how long the writes go on */
#define WRITE_MS 50 /* one task every 50 ms */
#define MAX_TASKS 1024
#define DRAIN_MS 1500 /* the replicas' drain delay: longer than the balancer's 50 ms polling */

static char *dir;
static char dbname[64], dburl[1024], token[1024];
static const char *bootstrap; /* the test's mock cluster's */

/* A replica as the balancer sees it. */
typedef struct replica {
    th_daemon d;
    char name[8];
    pthread_mutex_t lock; /* guards url */
    char url[128];        /* "" while it is not running */
    atomic_int ready;
} replica;
static replica reps[2];

static atomic_int stopping, following; /* following: the client's first stream is open */

/* What the writer created and what the client saw, by task id. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static double created_at[MAX_TASKS + 1]; /* monotonic time of the 201 */
static double seen_at[MAX_TASKS + 1];
static int seen_count[MAX_TASKS + 1];
static int created_ids[MAX_TASKS];
static int ncreated, unanswered, not_created, resyncs, reconnects, resumed;

/* ---- the balancer: /ready of each replica every 50 ms ---------------------------------------- */

static void url_of(replica *r, char *out, size_t len)
{
    pthread_mutex_lock(&r->lock);
    snprintf(out, len, "%s", r->url);
    pthread_mutex_unlock(&r->lock);
}

static void *balancer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        for (int i = 0; i < 2; i++) {
            char url[160];
            url_of(&reps[i], url, sizeof(url));
            int ok = 0;
            if (*url) {
                th_response r;
                char u[200];
                snprintf(u, sizeof(u), "%s/ready", url);
                ok = th_http("GET", u, NULL, 0, NULL, &r) == 0 && r.status == 200;
                th_response_free(&r);
            }
            atomic_store(&reps[i].ready, ok);
        }
        usleep(WRITE_MS * 1000);
    }
    return NULL;
}

/* The url of a ready replica, taking turns (0 when none is). */
static int pick(char *url, size_t len)
{
    static atomic_int turn;
    int t = atomic_fetch_add(&turn, 1);
    for (int k = 0; k < 2; k++) {
        replica *r = &reps[(t + k) % 2];
        if (atomic_load(&r->ready)) {
            url_of(r, url, len);
            if (*url)
                return 1;
        }
    }
    return 0;
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void *writer(void *arg)
{
    double end = *(double *)arg;
    char auth[1100];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *h[] = {"Content-Type: application/json", auth, NULL};
    for (int n = 0; th_now_s() < end && n < MAX_TASKS; n++) {
        double next = th_now_s() + WRITE_MS / 1000.0;
        char url[200], body[64];
        if (pick(url, sizeof(url) - 16)) {
            strcat(url, "/api/tasks");
            snprintf(body, sizeof(body), "{\"title\":\"rolling %d\"}", n);
            th_response r;
            int rc = th_http("POST", url, body, strlen(body), h, &r);
            json_t *j = rc == 0 ? json_loads(r.body ? r.body : "", 0, NULL) : NULL;
            int id = (int)json_integer_value(json_object_get(j, "id"));
            pthread_mutex_lock(&seen_lock);
            if (rc != 0)
                unanswered++;
            else if (r.status != 201 || id <= 0 || id > MAX_TASKS)
                not_created++;
            else {
                created_at[id] = th_now_s();
                created_ids[ncreated++] = id;
            }
            pthread_mutex_unlock(&seen_lock);
            json_decref(j);
            th_response_free(&r);
        }
        while (th_now_s() < next)
            usleep(2000);
    }
    return NULL;
}

/* ---- the client: an EventSource ------------------------------------------------------------ */

/* Opens a stream on url with Last-Event-ID (when last is not empty). -1 when it cannot connect. */
static int open_stream(const char *url, const char *last)
{
    int port = atoi(strrchr(url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Accept: text/event-stream\r\nAuthorization: Bearer %s\r\n%s%s%s\r\n",
                     token, *last ? "Last-Event-ID: " : "", last, *last ? "\r\n" : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One frame's fields (event, data, id), dispatched as EventSource does. */
static void dispatch(const char *event, const char *data, const char *id, char *last)
{
    if (*id)
        snprintf(last, 320, "%s", id); /* the last event id: sent back on reconnect */
    if (strcmp(event, "resync") == 0)
        resyncs++;
    if (strcmp(event, "connected") == 0 && strstr(data, "\"resume\":\"resumed\""))
        resumed++;
    if (strcmp(event, "connected") == 0)
        atomic_store(&following, 1);
    if (strcmp(event, "task.created") != 0)
        return;
    json_t *j = json_loads(data, 0, NULL);
    int t = (int)json_integer_value(json_object_get(json_object_get(j, "payload"), "task_id"));
    json_decref(j);
    if (t > 0 && t <= MAX_TASKS) {
        pthread_mutex_lock(&seen_lock);
        if (seen_count[t]++ == 0)
            seen_at[t] = th_now_s();
        pthread_mutex_unlock(&seen_lock);
    }
}

/* Dispatches the complete frames at the start of body (len bytes); returns the bytes used. */
static size_t frames(char *body, size_t len, char *last)
{
    size_t used = 0;
    char *frame_end;
    body[len] = '\0';
    while ((frame_end = strstr(body + used, "\n\n"))) {
        *frame_end = '\0';
        char event[64] = "message", id[320] = "", *data = "", *save = NULL;
        for (char *line = strtok_r(body + used, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "event: ", 7) == 0)
                snprintf(event, sizeof(event), "%s", line + 7);
            else if (strncmp(line, "id: ", 4) == 0)
                snprintf(id, sizeof(id), "%s", line + 4);
            else if (strncmp(line, "data: ", 6) == 0)
                data = line + 6;
        }
        dispatch(event, data, id, last);
        used = (size_t)(frame_end + 2 - body);
    }
    return used;
}

/* Reads the stream (HTTP/1.1 chunked) from fd until it closes or the run stops. */
static void follow(int fd, char *last)
{
    static char raw[1 << 20], body[1 << 20];
    size_t rlen = 0, blen = 0, at = 0; /* at: where the next chunk starts in raw */
    int head = 0;
    while (!atomic_load(&stopping)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, raw + rlen, sizeof(raw) - 1 - rlen);
        if (n <= 0) {
            fprintf(stderr, "client: closed (%zd)\n", n);
            return; /* closed: EventSource reconnects */
        }
        rlen += (size_t)n;
        raw[rlen] = '\0';
        if (!head) {
            char *head_end = strstr(raw, "\r\n\r\n");
            if (!head_end)
                continue;
            if (strncmp(raw, "HTTP/1.1 200", 12) != 0)
                return; /* refused: try again */
            at = (size_t)(head_end + 4 - raw);
            head = 1;
        }
        for (;;) { /* chunks: "<hex size>\r\n<data>\r\n" */
            char *eol = strstr(raw + at, "\r\n");
            if (!eol)
                break;
            size_t size = strtoul(raw + at, NULL, 16), start = (size_t)(eol + 2 - raw);
            if (size == 0) {
                fprintf(stderr, "client: last chunk\n");
                return; /* the last chunk: the server ended the stream */
            }
            if (start + size + 2 > rlen)
                break;
            memcpy(body + blen, raw + start, size);
            blen += size;
            at = start + size + 2;
        }
        size_t used = frames(body, blen, last);
        memmove(body, body + used, blen - used);
        blen -= used;
        memmove(raw, raw + at, rlen - at); /* raw now starts at a chunk */
        rlen -= at;
        at = 0;
    }
}

static void *client(void *arg)
{
    (void)arg;
    char last[320] = "";
    while (!atomic_load(&stopping)) {
        char url[160];
        int fd = pick(url, sizeof(url)) ? open_stream(url, last) : -1;
        if (fd >= 0) {
            fprintf(stderr, "client: stream on %s, Last-Event-ID %s\n", url, *last ? last : "-");
            follow(fd, last);
            close(fd);
            pthread_mutex_lock(&seen_lock);
            reconnects++;
            pthread_mutex_unlock(&seen_lock);
        }
        usleep(100000); /* EventSource waits its retry time */
    }
    return NULL;
}

/* ---- the replicas --------------------------------------------------------------------------- */

static char *config(const char *name)
{
    return th_write(
        dir, th_fmt("%s.json", name),
        th_fmt("{\"app_id\": \"roll-%s\", \"log\": {\"format\": \"text\"},"
               " \"postgres\": {\"url\": \"%s\", \"pool_size\": 4},"
               " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"fetch.wait.max.ms\": \"10\"}},"
               " \"outbox\": {\"poll_ms\": 50},"
               " \"drain_delay_ms\": %d, \"shutdown_timeout_ms\": 10000,"
               " \"http\": {\"listen\": \"127.0.0.1:0\", \"sse_keepalive_s\": 1},"
               " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/realtime/.libs\","
               " \"plugins\": ["
               "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
               "   \"roll-secret-0123456789abcdef0123456789abc\", \"bcrypt_cost\": 4}},"
               "  {\"name\": \"realtime\", \"load\": \"realtime\","
               "   \"consume\": {\"topics\": [\"task-events\"], \"broadcast\": true}}]}",
               name, dburl, bootstrap, DRAIN_MS, th_builddir(), th_builddir()));
}

static void start_replica(replica *r, int generation)
{
    char name[16];
    snprintf(name, sizeof(name), "%s%d", r->name, generation);
    char *cfg = config(name);
    th_daemon_start_named(&r->d, dir, cfg, name);
    free(cfg);
    pthread_mutex_lock(&r->lock);
    snprintf(r->url, sizeof(r->url), "%s", r->d.url);
    pthread_mutex_unlock(&r->lock);
}

/* SIGTERM, as Kubernetes sends it; the replica drains and exits; a new one takes its place. */
static void restart(replica *r, int generation)
{
    double t0 = th_now_s();
    ck_assert_int_eq(kill(r->d.pid, SIGTERM), 0);
    int code = th_daemon_wait(&r->d, 30000);
    if (code != 0)
        ck_abort_msg("%s exited %d on SIGTERM: %s", r->name, code, th_read(r->d.log_path));
    fprintf(stderr, "replica %s drained and stopped in %.2f s\n", r->name, th_now_s() - t0);
    pthread_mutex_lock(&r->lock);
    r->url[0] = '\0';
    pthread_mutex_unlock(&r->lock);
    th_daemon_cleanup(&r->d);
    start_replica(r, generation);
    double end = th_now_s() + 30;
    while (!atomic_load(&r->ready) && th_now_s() < end)
        usleep(10000);
    ck_assert_msg(atomic_load(&r->ready), "the new %s never became ready", r->name);
}

START_TEST(test_a_rolling_restart_of_both_replicas_loses_no_write_and_no_event)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_roll_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    static const th_topic topics[] = {
        {"task-events", 3}, {"task-events.dlq", 3}, {"user-events", 3}, {"chat-events", 3}, {0}};
    th_mock *mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);
    char *cfg = config("migrate");
    th_migrate(cfg);
    free(cfg);
    for (int i = 0; i < 2; i++) {
        snprintf(reps[i].name, sizeof(reps[i].name), "%c", 'a' + i);
        pthread_mutex_init(&reps[i].lock, NULL);
        start_replica(&reps[i], 0);
    }
    /* one user */
    th_response r;
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *reg = "{\"email\":\"roll@example.com\",\"name\":\"roll\",\"password\":\"pw\"}";
    ck_assert_int_eq(
        th_http("POST", th_fmt("%s/api/auth/register", reps[0].url), reg, strlen(reg), h, &r), 0);
    ck_assert_int_eq(r.status, 201);
    th_response_free(&r);
    const char *login = "{\"email\":\"roll@example.com\",\"password\":\"pw\"}";
    ck_assert_int_eq(
        th_http("POST", th_fmt("%s/api/auth/login", reps[0].url), login, strlen(login), h, &r), 0);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    th_response_free(&r);

    pthread_t tb, tw, tc;
    pthread_create(&tb, NULL, balancer, NULL);
    double t0 = th_now_s(), end = t0 + RUN_S;
    while ((!atomic_load(&reps[0].ready) || !atomic_load(&reps[1].ready)) && th_now_s() < t0 + 30)
        usleep(10000);
    ck_assert(atomic_load(&reps[0].ready) && atomic_load(&reps[1].ready));
    t0 = th_now_s();
    end = t0 + RUN_S;
    pthread_create(&tc, NULL, client, NULL);
    while (!atomic_load(&following) && th_now_s() < t0 + 10)
        usleep(1000);
    ck_assert_msg(atomic_load(&following), "the client's stream did not open");
    t0 = th_now_s();
    end = t0 + RUN_S;
    pthread_create(&tw, NULL, writer, &end);

    /* a quarter in, replica a is replaced; halfway through, replica b */
    while (th_now_s() < t0 + RUN_S / 4)
        usleep(10000);
    restart(&reps[0], 1);
    while (th_now_s() < t0 + RUN_S / 2)
        usleep(10000);
    restart(&reps[1], 1);
    pthread_join(tw, NULL);

    /* the client ends with every created task's event, once */
    double wait_end = th_now_s() + 15;
    int missing = 1;
    while (missing && th_now_s() < wait_end) {
        missing = 0;
        pthread_mutex_lock(&seen_lock);
        for (int i = 0; i < ncreated; i++)
            missing += seen_count[created_ids[i]] == 0;
        pthread_mutex_unlock(&seen_lock);
        if (missing)
            usleep(20000);
    }
    usleep(300000); /* room for a doubled event to show */
    atomic_store(&stopping, 1);
    pthread_join(tc, NULL);
    pthread_join(tb, NULL);

    double worst = 0;
    int doubled = 0;
    for (int i = 0; i < ncreated; i++) {
        int t = created_ids[i];
        if (seen_count[t] != 1)
            fprintf(stderr, "task %d (created %.3f s in) seen %d time(s)\n", t, created_at[t] - t0,
                    seen_count[t]);
        doubled += seen_count[t] > 1;
        if (seen_count[t] && seen_at[t] - created_at[t] > worst)
            worst = seen_at[t] - created_at[t];
    }
    fprintf(stderr,
            "rolling restart: %d writes answered 201, %d without an answer, %d not created; "
            "%d events received, %d missing, %d doubled; %d reconnects (%d resumed, %d resync); "
            "worst delay from a 201 to its event on the client %.3f s\n",
            ncreated, unanswered, not_created, ncreated - missing, missing, doubled, reconnects,
            resumed, resyncs, worst);
    ck_assert_int_gt(ncreated, (int)(RUN_S * 1000 / WRITE_MS) / 2);
    ck_assert_int_eq(unanswered, 0);
    ck_assert_int_eq(not_created, 0);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(doubled, 0);
    ck_assert_int_eq(resyncs, 0);
    ck_assert_int_ge(reconnects, 2); /* both replicas it followed were replaced */
    ck_assert_int_ge(resumed, 2);
    /* every 201 is stored */
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM tasks"), ncreated);

    for (int i = 0; i < 2; i++) {
        kill(reps[i].d.pid, SIGINT);
        ck_assert_int_eq(th_daemon_wait(&reps[i].d, 30000), 0);
        th_daemon_cleanup(&reps[i].d);
    }
    th_mock_stop(mock);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_rolling");
    Suite *s = suite_create("rolling");
    TCase *tc = tcase_create("rolling");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_a_rolling_restart_of_both_replicas_loses_no_write_and_no_event);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}

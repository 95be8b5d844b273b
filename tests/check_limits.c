/*
 * The HTTP server under abuse, over real sockets: one client address holding hundreds of slow
 * or idle connections and event streams does not deny service to another address; deadlines
 * cut slow requests; oversized bodies get a readable 413; malformed framing gets a JSON 4xx;
 * security headers; /metrics on the admin listener. taskorad runs http_api and realtime on
 * the suite's PostgreSQL and its embedded Kafka-protocol cluster. The attacker is 127.0.0.1,
 * the legitimate client 127.0.0.2 (both loopback).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testhelp.h"

#define ATTACK 600
#define READ_TIMEOUT_S 2
#define IDLE_TIMEOUT_S 4
#define KEEPALIVE_S 1

static char *dir;
static char dbname[64], dburl[1024];
static th_daemon d;
static int port, admin_port;
static char admin_url[64];
static char token[1024];
static int tcases_left;

/* What a legitimate client may wait; sanitizers make everything slower. */
static double answer_deadline_s(void)
{
    const char *san = getenv("TK_SANITIZERS");
    return san && strcmp(san, "yes") == 0 ? 3.0 : 1.0;
}

/* ---- raw sockets ------------------------------------------------------------------------ */

/* A connected socket from src (e.g. "127.0.0.2") to 127.0.0.1:p, or -1 (refused, reset). */
static int dial(const char *src, int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the peer closes, `until` appears, or timeout_s pass; returns bytes read. */
static size_t read_until(int fd, char *buf, size_t cap, const char *until, double timeout_s)
{
    size_t len = 0;
    double end = th_now_s() + timeout_s;
    buf[0] = '\0';
    while (len + 1 < cap && th_now_s() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (until && strstr(buf, until))
            break;
    }
    return len;
}

/* One request from src with Connection: close; returns the status (0: no answer). */
static int exchange(const char *src, int p, const char *req, char *buf, size_t cap, double *secs)
{
    double t0 = th_now_s();
    int fd = dial(src, p);
    int status = 0;
    buf[0] = '\0';
    if (fd >= 0 && send_all(fd, req, strlen(req)) == 0) {
        read_until(fd, buf, cap, NULL, 10);
        sscanf(buf, "HTTP/1.1 %d", &status);
    }
    if (fd >= 0)
        close(fd);
    if (secs)
        *secs = th_now_s() - t0;
    return status;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* ---- the suite's taskorad ------------------------------------------------------------------ */

static long api(const char *method, const char *path, const char *body, json_t **json)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    th_response r;
    ck_assert_int_eq(
        th_http(method, th_fmt("%s%s", d.url, path), body, body ? strlen(body) : 0, h, &r), 0);
    if (json)
        *json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    long st = r.status;
    th_response_free(&r);
    return st;
}

static void suite_up(void)
{
    if (d.pid)
        return;
    /* the attack opens over a thousand sockets on each side */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_limits_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    char *cfg = th_write(
        dir, "limits.json",
        th_fmt("{\"app_id\": \"limits\", \"log\": {\"format\": \"text\"},"
               " \"postgres\": {\"url\": \"%s\", \"pool_size\": 4},"
               " \"kafka\": {\"brokers\": \"embedded\", \"partitions\": 2},"
               " \"http\": {\"listen\": \"127.0.0.1:0\", \"admin_listen\": \"127.0.0.1:0\","
               "   \"read_timeout_s\": %d, \"timeout_s\": %d, \"sse_keepalive_s\": %d,"
               "   \"max_connections\": 4000},"
               " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/realtime/.libs\","
               " \"plugins\": ["
               "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
               "   \"limits-secret-0123456789abcdef0123456789\", \"bcrypt_cost\": 4}},"
               "  {\"name\": \"realtime\", \"load\": \"realtime\","
               "   \"config\": {\"max_streams_per_user\": 1000}, \"consume\": {\"topics\":"
               "   [\"task-events\"], \"broadcast\": true}}]}",
               dburl, READ_TIMEOUT_S, IDLE_TIMEOUT_S, KEEPALIVE_S, th_builddir(), th_builddir()));
    th_migrate(cfg);
    th_daemon_start_named(&d, dir, cfg, "limits");
    free(cfg);
    port = atoi(strrchr(d.url, ':') + 1);
    /* the admin listener's URL is in the log */
    ck_assert(th_wait_file_contains(d.log_path, "http admin listener", 10000));
    char *log = th_read(d.log_path);
    const char *u = strstr(strstr(log, "http admin listener"), "url=http://127.0.0.1:");
    ck_assert_ptr_nonnull(u);
    admin_port = atoi(u + strlen("url=http://127.0.0.1:"));
    snprintf(admin_url, sizeof(admin_url), "http://127.0.0.1:%d", admin_port);
    free(log);

    json_t *j = NULL;
    ck_assert_int_eq(api("POST", "/api/auth/register",
                         "{\"email\":\"victim@example.com\",\"name\":\"V\",\"password\":\"pw\"}",
                         NULL),
                     201);
    ck_assert_int_eq(api("POST", "/api/auth/login",
                         "{\"email\":\"victim@example.com\",\"password\":\"pw\"}", &j),
                     200);
    snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
}

static void suite_down(void)
{
    if (--tcases_left > 0)
        return;
    if (d.pid > 0) {
        kill(d.pid, SIGINT); /* stops without the drain delay */
        int ex = th_daemon_wait(&d, 30000);
        char *text = th_read(d.log_path);
        if (ex != 0 || strstr(text, "Sanitizer") || strstr(text, "runtime error"))
            fprintf(stderr, "check_limits: taskorad exited %d; log:\n%s\n", ex, text);
        free(text);
    }
    th_daemon_cleanup(&d);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

/* ---- the attacker ------------------------------------------------------------------------ */

typedef struct attack {
    int fds[2 * ATTACK];
    int n, accepted_streams;
} attack;

/* 600 connections that send half a request and never finish it. */
static void open_slow_headers(attack *a)
{
    for (int i = 0; i < ATTACK; i++) {
        int fd = dial("127.0.0.1", port);
        if (fd < 0)
            continue;
        send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", 31);
        a->fds[a->n++] = fd;
    }
}

/* 600 event streams of one user, left open and never read. */
static void open_idle_streams(attack *a)
{
    const char *req = th_fmt("GET /api/events/stream?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", token);
    for (int i = 0; i < ATTACK; i++) {
        int fd = dial("127.0.0.1", port);
        if (fd < 0)
            continue;
        send_all(fd, req, strlen(req));
        a->fds[a->n++] = fd;
    }
}

static void close_attack(attack *a)
{
    for (int i = 0; i < a->n; i++)
        close(a->fds[i]);
    a->n = 0;
}

static double slowest; /* the longest a legitimate request took during the attack */

/* Threads of the suite's taskorad (/proc/PID/status). */
static int daemon_threads(void)
{
    char *st = th_read(th_fmt("/proc/%d/status", (int)d.pid));
    const char *t = strstr(st, "\nThreads:");
    int n = t ? atoi(t + 9) : -1;
    free(st);
    return n;
}

/* The legitimate client: /health and GET /api/tasks from 127.0.0.2, each within the deadline. */
static void assert_served(const char *when)
{
    char buf[65536];
    double secs;
    int st =
        exchange("127.0.0.2", port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 buf, sizeof(buf), &secs);
    ck_assert_msg(st == 200 && secs < answer_deadline_s(), "%s: /health gave %d after %.3f s", when,
                  st, secs);
    slowest = secs > slowest ? secs : slowest;
    st = exchange("127.0.0.2", port,
                  th_fmt("GET /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         "Connection: close\r\n\r\n",
                         token),
                  buf, sizeof(buf), &secs);
    ck_assert_msg(st == 200 && secs < answer_deadline_s(),
                  "%s: GET /api/tasks gave %d after %.3f s", when, st, secs);
    slowest = secs > slowest ? secs : slowest;
}

START_TEST(test_one_address_cannot_exhaust_connections)
{
    static attack a;
    memset(&a, 0, sizeof(a));
    int threads_before = daemon_threads();
    double t0 = th_now_s();
    open_slow_headers(&a);
    assert_served("during 600 slow-header connections");
    open_idle_streams(&a);
    assert_served("during 600 more idle event streams");
    double refused =
        th_metric(admin_url, "taskora_http_refused_total{reason=\"connections_per_client\"}");
    int threads = daemon_threads();
    fprintf(stderr,
            "check_limits: %d attack sockets in %.2f s, %.0f refused at accept; taskorad's threads "
            "%d before, %d during\n",
            2 * ATTACK, th_now_s() - t0, refused, threads_before, threads);
    /* slow and idle connections and open streams hold no thread */
    ck_assert_msg(threads <= threads_before + 2, "threads grew from %d to %d", threads_before,
                  threads);
    /* the attacker was held to its share */
    ck_assert(refused > 0);
    /* keep the attack up past the read timeout: service goes on while deadlines cut it */
    double until = th_now_s() + READ_TIMEOUT_S + 1;
    while (th_now_s() < until) {
        assert_served("while the attack lasts");
        usleep(200000);
    }
    ck_assert(th_metric(admin_url, "taskora_http_refused_total{reason=\"read_timeout\"}") > 0);
    fprintf(stderr, "check_limits: slowest legitimate request during the attack: %.1f ms\n",
            slowest * 1000);
    close_attack(&a);
    /* capacity is back within the keep-alive interval: 127.0.0.1 can open streams again */
    double back = th_now_s() + KEEPALIVE_S + 2;
    int ok = 0;
    char buf[4096];
    while (!ok && th_now_s() < back) {
        int fd = dial("127.0.0.1", port);
        if (fd >= 0) {
            const char *req =
                th_fmt("GET /api/events/stream?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", token);
            send_all(fd, req, strlen(req));
            read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
            ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
            close(fd);
        }
        if (!ok)
            usleep(100000);
    }
    ck_assert_msg(ok, "127.0.0.1 still refused %d s after it left: %s", KEEPALIVE_S + 2, buf);
    /* the cut connections do not flood the log: libmicrohttpd's messages are rationed */
    char *log = th_read(d.log_path);
    int lines = 0;
    for (const char *p = log; (p = strstr(p, "source=libmicrohttpd")); p++)
        lines++;
    free(log);
    ck_assert_msg(lines <= 20, "%d libmicrohttpd lines in the log after the attack", lines);
}
END_TEST

START_TEST(test_slow_request_is_cut_at_the_read_deadline)
{
    /* one header line every 500 ms keeps an idle timer alive, not the read deadline */
    int fd = dial("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    double t0 = th_now_s();
    send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", 31);
    int closed = 0;
    while (!closed && th_now_s() - t0 < READ_TIMEOUT_S + 3) {
        if (send_all(fd, "X-Slow: 1\r\n", 11) != 0)
            closed = 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) > 0) {
            char c;
            if (recv(fd, &c, 1, MSG_DONTWAIT) <= 0)
                closed = 1;
        }
    }
    double took = th_now_s() - t0;
    close(fd);
    ck_assert_msg(closed, "a request dribbled for %.1f s was not cut", took);
    ck_assert_msg(took >= READ_TIMEOUT_S - 0.5, "cut after %.2f s, before its deadline", took);
}
END_TEST

START_TEST(test_streams_per_address_are_limited)
{
    int fds[17];
    char buf[4096];
    const char *req = th_fmt("GET /api/events/stream?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", token);
    for (int i = 0; i < 16; i++) {
        fds[i] = dial("127.0.0.1", port);
        ck_assert_int_ge(fds[i], 0);
        send_all(fds[i], req, strlen(req));
        read_until(fds[i], buf, sizeof(buf), "\r\n\r\n", 5);
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "stream %d: %s", i, buf);
    }
    /* the connection id keeps the whole request id */
    char rid[101];
    memset(rid, 'r', 100);
    rid[100] = '\0';
    int other = dial("127.0.0.2", port);
    const char *named = th_fmt("GET /api/events/stream?token=%s HTTP/1.1\r\nHost: x\r\n"
                               "X-Request-ID: %s\r\n\r\n",
                               token, rid);
    send_all(other, named, strlen(named));
    read_until(other, buf, sizeof(buf), "user_id", 5);
    ck_assert_msg(strstr(buf, th_fmt("\"connection_id\":\"%s-", rid)), "%s", buf);
    close(other);
    fds[16] = dial("127.0.0.1", port);
    send_all(fds[16], req, strlen(req));
    read_until(fds[16], buf, sizeof(buf), "}", 5);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 429", 12) == 0, "the 17th stream: %s", buf);
    ck_assert(strcasestr(buf, "\r\nRetry-After: "));
    ck_assert(strstr(body_of(buf), "{\"detail\":"));
    /* another address still gets its own */
    other = dial("127.0.0.2", port);
    send_all(other, req, strlen(req));
    read_until(other, buf, sizeof(buf), "\r\n\r\n", 5);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "127.0.0.2's stream: %s", buf);
    close(other);
    for (int i = 0; i < 17; i++)
        close(fds[i]);
}
END_TEST

/* Sends headers and the whole body at once, as urllib does, then reads the answer. */
static int post_without_expect(size_t len, char *buf, size_t cap)
{
    int fd = dial("127.0.0.2", port);
    ck_assert_int_ge(fd, 0);
    const char *head = th_fmt("POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                              token, len);
    char *body = malloc(len);
    memset(body, ' ', len);
    int sent = send_all(fd, head, strlen(head)) == 0 && send_all(fd, body, len) == 0;
    free(body);
    read_until(fd, buf, cap, NULL, 10);
    close(fd);
    return sent;
}

START_TEST(test_oversized_body_without_expect_reads_413)
{
    char buf[8192];
    int sent = post_without_expect(3 * 1024 * 1024, buf, sizeof(buf));
    ck_assert_msg(sent, "sending the body failed (reset before the client could read): %s", buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
    ck_assert_str_eq(body_of(buf), "{\"detail\":\"Request body too large\"}");
    ck_assert(strcasestr(buf, "content-type: application/json"));
}
END_TEST

START_TEST(test_malformed_framing_gets_json_4xx)
{
    struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         400},
        {"GET /api/tasks/1%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /api/tasks?search=a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 422},
        {"GET /api/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /api/tasks/1%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {NULL, 414},
        {NULL, 431},
    };
    char *longuri = malloc(10000), *bighdr = malloc(50000);
    snprintf(longuri, 10000, "GET /%09000d HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    snprintf(bighdr, 50000, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %040000d\r\n\r\n", 1);
    cases[5].req = longuri;
    cases[6].req = bighdr;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[8192];
        int st = exchange("127.0.0.2", port, cases[i].req, buf, sizeof(buf), NULL);
        ck_assert_msg(st == cases[i].status, "case %zu: %.200s", i, buf);
        ck_assert_msg(strcasestr(buf, "content-type: application/json") &&
                          strncmp(body_of(buf), "{\"detail\":", 10) == 0,
                      "case %zu is not JSON: %.400s", i, buf);
    }
    free(longuri);
    free(bighdr);
}
END_TEST

START_TEST(test_security_headers)
{
    const char *h[] = {th_fmt("Authorization: Bearer %s", token), NULL};
    th_response r;
    ck_assert_int_eq(th_http("GET", th_fmt("%s/api/tasks", d.url), NULL, 0, h, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *v = th_header(&r, "x-content-type-options");
    ck_assert_str_eq(v, "nosniff");
    free(v);
    v = th_header(&r, "cache-control");
    ck_assert_str_eq(v, "no-store");
    free(v);
    th_response_free(&r);
    ck_assert_int_eq(th_http("GET", th_fmt("%s/nowhere", d.url), NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    v = th_header(&r, "x-content-type-options");
    ck_assert_str_eq(v, "nosniff");
    free(v);
    th_response_free(&r);
}
END_TEST

START_TEST(test_metrics_on_the_admin_listener_only)
{
    th_response r;
    ck_assert_int_eq(th_http("GET", th_fmt("%s/metrics", d.url), NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    th_response_free(&r);
    const char *admin = admin_url;
    ck_assert_int_eq(th_http("GET", th_fmt("%s/metrics", admin), NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "taskora_http_requests_total"));
    th_response_free(&r);
    ck_assert_int_eq(th_http("GET", th_fmt("%s/api/tasks", admin), NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    th_response_free(&r);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_limits");
    Suite *s = suite_create("limits");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"security-headers", test_security_headers},
        {"admin-listener", test_metrics_on_the_admin_listener_only},
        {"framing", test_malformed_framing_gets_json_4xx},
        {"body-413", test_oversized_body_without_expect_reads_413},
        {"streams-per-address", test_streams_per_address_are_limited},
        {"read-deadline", test_slow_request_is_cut_at_the_read_deadline},
        {"exhaustion", test_one_address_cannot_exhaust_connections},
    };
    tcases_left = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, suite_up, suite_down);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return th_run_suite(s);
}

/* taskorad run over real HTTP: plugin routes, core routes, limits, CORS, metrics, shutdown. */
#include <check.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <strings.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskora/plugin.h"
#include "testhelp.h"

static char *dir;
static char *record;
static th_daemon d;
static const char *cors = "[\"http://localhost:3000\"]";
static int init_delay_ms;
static int drain_delay_ms;    /* 0: SIGTERM stops at once, as the tests that only stop expect */
static const char *dapr = ""; /* a "dapr" section with its trailing comma, or "" */

/* Starts taskorad with two test_plugin instances ("t1" with routes, "t2" without). */
static void start(int stop_delay_ms, int shutdown_timeout_ms)
{
    dir = th_tmpdir();
    record = th_write(dir, "record.txt", "");
    char text[8192];
    snprintf(text, sizeof(text),
             "{\"app_id\": \"taskora-test\", \"log\": {\"level\": \"debug\"},"
             " \"kafka\": {\"brokers\": \"embedded\", \"partitions\": 2},"
             " \"http\": {\"listen\": \"127.0.0.1:0\", \"body_limit\": 1024,"
             "   \"cors_origins\": %s},"
             " %s \"shutdown_timeout_ms\": %d, \"drain_delay_ms\": %d, \"plugin_dir\": \"%s\","
             " \"plugins\": ["
             "  {\"name\": \"t1\", \"load\": \"test_plugin\","
             "   \"config\": {\"record\": \"%s\", \"greeting\": \"${TK_TEST_GREETING:-hey}\","
             "     \"stop_delay_ms\": %d, \"init_delay_ms\": %d, \"limits\": {\"max\": 42}}},"
             "  {\"name\": \"t2\", \"load\": \"test_plugin\","
             "   \"config\": {\"record\": \"%s\", \"route_prefix\": \"\"}}]}",
             cors, dapr, shutdown_timeout_ms, drain_delay_ms, th_plugin_dir(), record,
             stop_delay_ms, init_delay_ms, record);
    char *cfg = th_write(dir, "taskora.json", text);
    char *log = th_write(dir, "taskorad.log", "");
    if (init_delay_ms) { /* the test signals it while it starts */
        ck_assert_int_eq(th_daemon_spawn(&d, cfg, log), 0);
        free(cfg);
        free(log);
        return;
    }
    int rc = th_daemon_start(&d, cfg, log, 20000);
    char *logtext = th_read(log);
    ck_assert_msg(rc == 0, "taskorad did not become ready: %s", logtext);
    free(logtext);
    free(cfg);
    free(log);
}

static void setup(void) { start(0, 10000); }

static void teardown(void)
{
    th_daemon_cleanup(&d);
    th_rmtree(dir);
    free(dir);
    free(record);
}

static th_response get(const char *path, const char *const *headers)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", d.url, path);
    th_response r;
    ck_assert_int_eq(th_http("GET", url, NULL, 0, headers, &r), 0);
    return r;
}

START_TEST(test_plugin_route_answers_with_params_query_and_config)
{
    th_response r = get("/test/hello/world?q=a%20b", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"instance\":\"t1\",\"name\":\"world\",\"q\":\"a b\","
                             "\"greeting\":\"hey\",\"level\":\"low\",\"max\":42}");
    char *ct = th_header(&r, "content-type");
    ck_assert_str_eq(ct, "application/json");
    free(ct);
    th_response_free(&r);
}
END_TEST

START_TEST(test_core_routes_health_ready_metrics)
{
    th_response r = get("/health", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"healthy\",\"service\":\"taskora-test\"}");
    th_response_free(&r);
    r = get("/ready", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ready\"}");
    th_response_free(&r);
    th_response hit = get("/test/hello/x", NULL);
    th_response_free(&hit);
    r = get("/metrics", NULL);
    ck_assert_int_eq(r.status, 200);
    char *ct = th_header(&r, "content-type");
    ck_assert_str_eq(ct, "text/plain; version=0.0.4; charset=utf-8");
    free(ct);
    ck_assert_msg(strstr(r.body, "# TYPE taskora_http_requests_total counter\n"), "%s", r.body);
    ck_assert_msg(strstr(r.body, "taskora_http_requests_total{method=\"GET\","
                                 "route=\"/test/hello/{name}\",status=\"200\"} 1\n"),
                  "%s", r.body);
    ck_assert_msg(strstr(r.body, "test_plugin_hits_total{plugin=\"t1\",route=\"hello\"} 1\n"), "%s",
                  r.body);
    ck_assert_msg(strstr(r.body, "taskora_http_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/test/hello/{name}\",le=\"+Inf\"} 1\n"),
                  "%s", r.body);
    ck_assert_msg(strstr(r.body, "taskora_plugin_instances 2\n"), "%s", r.body);
    ck_assert_msg(strstr(r.body, "taskora_ready 1\n"), "%s", r.body); /* as /ready said */
    th_response_free(&r);
}
END_TEST

START_TEST(test_unknown_route_and_wrong_method_are_json_errors)
{
    th_response r = get("/nope", NULL);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "{\"detail\":\"Not Found\"}");
    char *ct = th_header(&r, "content-type");
    ck_assert_str_eq(ct, "application/json; charset=utf-8");
    free(ct);
    th_response_free(&r);
    char url[512];
    snprintf(url, sizeof(url), "%s/test/hello/x", d.url);
    ck_assert_int_eq(th_http("DELETE", url, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(r.body, "{\"detail\":\"Method Not Allowed\"}");
    char *allow = th_header(&r, "allow");
    ck_assert_str_eq(allow, "GET");
    free(allow);
    th_response_free(&r);
    /* an invented method is one "OTHER" series, not a new series per method */
    snprintf(url, sizeof(url), "%s/nope", d.url);
    ck_assert_int_eq(th_http("FROB1", url, NULL, 0, NULL, &r), 0);
    th_response_free(&r);
    ck_assert_int_eq(th_http("FROB2", url, NULL, 0, NULL, &r), 0);
    th_response_free(&r);
    r = get("/metrics", NULL);
    ck_assert_msg(strstr(r.body, "taskora_http_requests_total{method=\"OTHER\",route=\"unmatched\","
                                 "status=\"404\"} 2\n"),
                  "%s", r.body);
    ck_assert_msg(!strstr(r.body, "FROB"), "%s", r.body);
    th_response_free(&r);
}
END_TEST

START_TEST(test_failing_handler_is_500_without_details)
{
    th_response r = get("/test/fail", NULL);
    ck_assert_int_eq(r.status, 500);
    ck_assert_str_eq(r.body, "{\"detail\":\"Internal server error\"}");
    th_response_free(&r);
}
END_TEST

START_TEST(test_body_is_passed_and_limit_gives_413)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/test/echo", d.url);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    th_response r;
    ck_assert_int_eq(th_http("POST", url, "{\"a\":1}", 7, hdr, &r), 0);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "{\"a\":1}");
    char *echo = th_header(&r, "x-echo-length");
    ck_assert_str_eq(echo, "yes");
    free(echo);
    th_response_free(&r);
    char big[2048];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(th_http("POST", url, big, sizeof(big), hdr, &r), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(r.body, "{\"detail\":\"Request body too large\"}");
    th_response_free(&r);
    /* chunked, no Content-Length: refused once it passes the limit */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    ck_assert_int_eq(th_http("POST", url, big, sizeof(big), chunked, &r), 0);
    ck_assert_int_eq(r.status, 413);
    th_response_free(&r);
    /* the server is still fine */
    r = get("/health", NULL);
    ck_assert_int_eq(r.status, 200);
    th_response_free(&r);
}
END_TEST

START_TEST(test_request_id_is_echoed_or_generated)
{
    const char *hdr[] = {"X-Request-ID: req-abc.123", NULL};
    th_response r = get("/health", hdr);
    char *id = th_header(&r, "x-request-id");
    ck_assert_str_eq(id, "req-abc.123");
    free(id);
    th_response_free(&r);
    const char *bad[] = {"X-Request-ID: has space", NULL};
    r = get("/health", bad);
    id = th_header(&r, "x-request-id");
    ck_assert_uint_eq(strlen(id), 36);
    ck_assert_int_eq(id[14], '4');
    free(id);
    th_response_free(&r);
    r = get("/nope", NULL);
    id = th_header(&r, "x-request-id");
    ck_assert_ptr_nonnull(id);
    ck_assert_uint_eq(strlen(id), 36);
    free(id);
    th_response_free(&r);
}
END_TEST

START_TEST(test_cors_for_allowed_origins_only)
{
    const char *ok[] = {"Origin: http://localhost:3000", NULL};
    th_response r = get("/test/hello/a", ok);
    char *acao = th_header(&r, "access-control-allow-origin");
    char *cred = th_header(&r, "access-control-allow-credentials");
    ck_assert_str_eq(acao, "http://localhost:3000");
    ck_assert_str_eq(cred, "true");
    free(acao);
    free(cred);
    th_response_free(&r);
    const char *evil[] = {"Origin: http://evil.test", NULL};
    r = get("/test/hello/a", evil);
    ck_assert_ptr_null(th_header(&r, "access-control-allow-origin"));
    th_response_free(&r);
    char url[512];
    snprintf(url, sizeof(url), "%s/test/echo", d.url);
    const char *pre[] = {"Origin: http://localhost:3000", "Access-Control-Request-Method: POST",
                         "Access-Control-Request-Headers: authorization, content-type", NULL};
    ck_assert_int_eq(th_http("OPTIONS", url, NULL, 0, pre, &r), 0);
    ck_assert_int_eq(r.status, 204);
    char *methods = th_header(&r, "access-control-allow-methods");
    char *headers = th_header(&r, "access-control-allow-headers");
    ck_assert_msg(methods && strstr(methods, "POST"), "%s", r.headers);
    ck_assert_str_eq(headers, "authorization, content-type");
    free(methods);
    free(headers);
    th_response_free(&r);
    const char *pre_evil[] = {"Origin: http://evil.test", "Access-Control-Request-Method: POST",
                              NULL};
    ck_assert_int_eq(th_http("OPTIONS", url, NULL, 0, pre_evil, &r), 0);
    ck_assert_int_eq(r.status, 400);
    th_response_free(&r);
}
END_TEST

/* One set of CORS answers for plain routes and event streams, whatever the Origin. */
START_TEST(test_event_streams_answer_cors_like_plain_routes)
{
    const char *ok[] = {"Origin: http://localhost:3000", NULL};
    const char *evil[] = {"Origin: http://evil.test", NULL};
    const char *paths[] = {"/test/stream", "/test/hello/a"};
    for (int i = 0; i < 2; i++) {
        th_response r = get(paths[i], ok);
        ck_assert_int_eq(r.status, 200);
        char *acao = th_header(&r, "access-control-allow-origin");
        char *cred = th_header(&r, "access-control-allow-credentials");
        char *expose = th_header(&r, "access-control-expose-headers");
        char *vary = th_header(&r, "vary");
        ck_assert_msg(acao && strcmp(acao, "http://localhost:3000") == 0, "%s: %s", paths[i],
                      r.headers);
        ck_assert_msg(cred && strcmp(cred, "true") == 0, "%s: %s", paths[i], r.headers);
        ck_assert_msg(expose && strstr(expose, "X-Request-ID"), "%s: %s", paths[i], r.headers);
        ck_assert_msg(vary && strcmp(vary, "Origin") == 0, "%s: %s", paths[i], r.headers);
        free(acao);
        free(cred);
        free(expose);
        free(vary);
        if (i == 0) {
            char *ct = th_header(&r, "content-type");
            ck_assert_str_eq(ct, "text/event-stream");
            ck_assert_msg(strstr(r.body, "event: hello\ndata: {}\n\n"), "%s", r.body);
            free(ct);
        }
        th_response_free(&r);

        r = get(paths[i], evil);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(!th_header(&r, "access-control-allow-origin") &&
                          !th_header(&r, "access-control-allow-credentials") &&
                          !th_header(&r, "access-control-expose-headers"),
                      "%s: %s", paths[i], r.headers);
        vary = th_header(&r, "vary");
        ck_assert_msg(vary && strcmp(vary, "Origin") == 0, "%s: %s", paths[i], r.headers);
        free(vary);
        th_response_free(&r);
    }
}
END_TEST

START_TEST(test_access_log_has_duration_and_secrets_are_redacted)
{
    const char *hdr[] = {"X-Request-ID: logged-1", NULL};
    th_response r = get("/test/hello/logme", hdr);
    th_response_free(&r);
    ck_assert(th_wait_file_contains(d.log_path, "\"request_id\":\"logged-1\"", 5000));
    char *log = th_read(d.log_path);
    const char *line = strstr(log, "\"path\":\"/test/hello/logme\"");
    ck_assert_msg(line != NULL, "%s", log);
    ck_assert_msg(strstr(log, "\"duration_ms\":\"") && strstr(log, "\"status\":\"200\""), "%s",
                  log);
    ck_assert_msg(strstr(log, "\"plugin\":\"t1\""), "%s", log);
    ck_assert_msg(strstr(log, "\"password\":\"[redacted]\"") && !strstr(log, "hunter2"), "%s", log);
    free(log);
}
END_TEST

START_TEST(test_sigterm_stops_plugins_in_reverse_order_and_exits_0)
{
    kill(d.pid, SIGTERM);
    int rc = th_daemon_wait(&d, 15000);
    ck_assert_int_eq(rc, 0);
    char *rec = th_read(record);
    ck_assert_str_eq(rec, "init t1\ninit t2\nstart t1\nstart t2\n"
                          "stop-begin t2\nstop t2\nstop-begin t1\nstop t1\n"
                          "destroy t2\ndestroy t1\n");
    free(rec);
    char *log = th_read(d.log_path);
    ck_assert_msg(strstr(log, "taskorad stopped"), "%s", log);
    free(log);
}
END_TEST

typedef struct {
    char url[512];
    th_response r;
    int rc;
} slow_call;

static void *slow_thread(void *arg)
{
    slow_call *c = arg;
    c->rc = th_http("GET", c->url, NULL, 0, NULL, &c->r);
    return NULL;
}

START_TEST(test_request_in_flight_finishes_during_shutdown)
{
    slow_call c = {0};
    snprintf(c.url, sizeof(c.url), "%s/test/slow?ms=700", d.url);
    pthread_t t;
    pthread_create(&t, NULL, slow_thread, &c);
    ck_assert(th_wait_file_contains(record, "slow-begin t1", 10000));
    kill(d.pid, SIGTERM);
    pthread_join(t, NULL);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(c.r.status, 200);
    ck_assert_str_eq(c.r.body, "{\"slow\":true}");
    th_response_free(&c.r);
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    /* plugins stop only after the request finished */
    char *rec = th_read(record);
    char *end = strstr(rec, "slow-end t1"), *stop = strstr(rec, "stop-begin t2");
    ck_assert_msg(end && stop && end < stop, "%s", rec);
    free(rec);
}
END_TEST

/* A keep-alive client asking again and again on one connection (libcurl reuses it). */
typedef struct keepalive_client {
    char url[512];
    atomic_int stop, ok, failed, closes;
} keepalive_client;

static size_t ka_header(char *b, size_t size, size_t n, void *ud)
{
    keepalive_client *k = ud;
    if (size * n >= 17 && strncasecmp(b, "Connection: close", 17) == 0)
        atomic_fetch_add(&k->closes, 1);
    return size * n;
}

static size_t ka_body(char *b, size_t size, size_t n, void *ud)
{
    (void)b, (void)ud;
    return size * n;
}

static void *ka_thread(void *arg)
{
    keepalive_client *k = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, k->url);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ka_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ka_body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    while (!atomic_load(&k->stop)) {
        long st = 0;
        if (curl_easy_perform(c) == CURLE_OK &&
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK && st == 200)
            atomic_fetch_add(&k->ok, 1);
        else
            atomic_fetch_add(&k->failed, 1);
        usleep(10000);
    }
    curl_easy_cleanup(c);
    return NULL;
}

START_TEST(test_keep_alive_clients_are_told_to_leave_during_shutdown)
{
    /* a slow request keeps the drain open; a keep-alive client goes on asking meanwhile */
    slow_call c = {0};
    snprintf(c.url, sizeof(c.url), "%s/test/slow?ms=1500", d.url);
    pthread_t slow, ka;
    pthread_create(&slow, NULL, slow_thread, &c);
    ck_assert(th_wait_file_contains(record, "slow-begin t1", 10000));
    static keepalive_client k;
    memset(&k, 0, sizeof(k));
    snprintf(k.url, sizeof(k.url), "%s/test/hello/a", d.url);
    pthread_create(&ka, NULL, ka_thread, &k);
    double end = th_now_s() + 10;
    while (atomic_load(&k.ok) < 3 && th_now_s() < end)
        usleep(10000);
    ck_assert_int_ge(atomic_load(&k.ok), 3);
    ck_assert_int_eq(atomic_load(&k.closes), 0);
    kill(d.pid, SIGTERM);
    pthread_join(slow, NULL);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(c.r.status, 200);
    th_response_free(&c.r);
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    atomic_store(&k.stop, 1);
    pthread_join(ka, NULL);
    /* answered during the drain, with Connection: close so it reconnects elsewhere */
    ck_assert_msg(atomic_load(&k.closes) >= 1, "no answer during the drain closed its connection");
}
END_TEST

START_TEST(test_any_origin_gets_no_credentials)
{
    const char *hdr[] = {"Origin: http://anywhere.test", NULL};
    th_response r = get("/test/hello/a", hdr);
    char *acao = th_header(&r, "access-control-allow-origin");
    ck_assert_str_eq(acao, "*");
    free(acao);
    ck_assert_ptr_null(th_header(&r, "access-control-allow-credentials"));
    th_response_free(&r);
}
END_TEST

static void setup_any_origin(void)
{
    cors = "[\"*\"]";
    start(0, 10000);
}

START_TEST(test_signal_during_startup_stops_cleanly)
{
    /* init of t1 takes 1 s; SIGTERM arrives in the middle of it, and a process that serves
     * nothing yet has nothing to drain: no 10 s delay */
    ck_assert(th_wait_file_contains(record, "init t1", 10000));
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(th_daemon_wait(&d, 5000), 0);
    char *rec = th_read(record);
    ck_assert_str_eq(rec, "init t1\ninit t2\ndestroy t2\ndestroy t1\n");
    free(rec);
}
END_TEST

static void setup_slow_init(void)
{
    init_delay_ms = 1000;
    drain_delay_ms = 10000;
    start(0, 10000);
}

/* With a plugin whose stop() takes 30 s: */
static void setup_slow_stop(void) { start(30000, 60000); }
static void setup_slow_stop_short_timeout(void) { start(30000, 300); }

START_TEST(test_second_signal_exits_at_once)
{
    kill(d.pid, SIGTERM);
    ck_assert(th_wait_file_contains(record, "stop-begin t1", 10000));
    kill(d.pid, SIGINT);
    int rc = th_daemon_wait(&d, 10000); /* far less than the 30 s stop */
    ck_assert_int_eq(rc, 1);
    ck_assert(th_wait_file_contains(d.log_path, "second signal", 1000));
}
END_TEST

START_TEST(test_shutdown_timeout_exits_anyway)
{
    kill(d.pid, SIGTERM);
    int rc = th_daemon_wait(&d, 10000);
    ck_assert_int_eq(rc, 1);
    ck_assert(
        th_wait_file_contains(d.log_path, "did not finish within shutdown_timeout_ms=300", 1000));
}
END_TEST

/* ---- the drain (SIGTERM while serving) ---- */

/* GET /ready until it is 503 or 2 s pass; the last answer. */
static th_response ready_until_503(void)
{
    double end = th_now_s() + 2;
    for (;;) {
        th_response r = get("/ready", NULL);
        if (r.status == 503 || th_now_s() > end)
            return r;
        th_response_free(&r);
        usleep(10000);
    }
}

START_TEST(test_sigterm_drains_before_stopping)
{
    double t0 = th_now_s();
    kill(d.pid, SIGTERM);
    th_response r = ready_until_503();
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "{\"status\":\"not_ready\",\"reason\":\"draining\"}");
    th_response_free(&r);
    ck_assert_double_eq(th_metric(d.url, "taskora_ready"), 0);
    /* still serving, but every answer closes its connection */
    r = get("/test/hello/drain", NULL);
    ck_assert_int_eq(r.status, 200);
    char *conn = th_header(&r, "connection");
    ck_assert_msg(conn && strcmp(conn, "close") == 0, "%s", r.headers);
    free(conn);
    th_response_free(&r);
    ck_assert_msg(th_now_s() - t0 < 3, "the drain delay was over before the checks");
    /* the watchdog (shutdown_timeout_ms 2500, shorter than the 3 s delay) counts from the end
     * of the delay: a clean exit, after the delay */
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    ck_assert_msg(th_now_s() - t0 >= 3, "stopped %.2f s after SIGTERM", th_now_s() - t0);
    char *log = th_read(d.log_path);
    ck_assert_msg(strstr(log, "draining for 3000 ms") &&
                      strstr(log, "no longer accepting connections") &&
                      strstr(log, "taskorad stopped"),
                  "%s", log);
    free(log);
    char *rec = th_read(record);
    ck_assert_msg(strstr(rec, "stop t1\n"), "%s", rec);
    free(rec);
}
END_TEST

static void setup_drain(void)
{
    /* the watchdog's time (2.5 s) is shorter than the delay (3 s), yet long enough for the
     * stop itself on a loaded machine */
    drain_delay_ms = 3000;
    start(0, 2500);
}

START_TEST(test_sigint_stops_without_draining)
{
    double t0 = th_now_s();
    kill(d.pid, SIGINT); /* a terminal's Ctrl-C: the 10 s drain delay does not apply */
    ck_assert_int_eq(th_daemon_wait(&d, 5000), 0);
    char *log = th_read(d.log_path);
    ck_assert_msg(!strstr(log, "draining"), "%s", log);
    free(log);
    ck_assert_msg(th_now_s() - t0 < 5, "SIGINT took %.2f s", th_now_s() - t0);
}
END_TEST

START_TEST(test_second_signal_during_the_drain_exits_at_once)
{
    kill(d.pid, SIGTERM);
    th_response r = ready_until_503();
    ck_assert_int_eq(r.status, 503);
    th_response_free(&r);
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(th_daemon_wait(&d, 5000), 1); /* far less than the 10 s delay */
    ck_assert(th_wait_file_contains(d.log_path, "second signal", 1000));
}
END_TEST

static void setup_long_drain(void)
{
    drain_delay_ms = 10000;
    start(0, 10000);
}

START_TEST(test_secret_equal_only_for_the_same_bytes_and_length)
{
    ck_assert(tk_secret_equal("s3cret", "s3cret"));
    ck_assert(tk_secret_equal("x", "x"));
    const char *unequal[] = {NULL,     "",           "s3cre",    "s3cret ",
                             "s3cres", "S3cret",     "3cret",    "s3crets3cret",
                             "t3cret", "s3cret\x80", "\xffs3cr", "s3cret\n"};
    for (size_t i = 0; i < sizeof(unequal) / sizeof(unequal[0]); i++)
        ck_assert_msg(!tk_secret_equal("s3cret", unequal[i]), "%s",
                      unequal[i] ? unequal[i] : "NULL");
    /* no secret configured matches nothing, not even nothing */
    ck_assert(!tk_secret_equal("", ""));
    ck_assert(!tk_secret_equal(NULL, ""));
    ck_assert(!tk_secret_equal(NULL, NULL));
    ck_assert(!tk_secret_equal("", NULL));
    ck_assert(!tk_secret_equal("", "x"));
}
END_TEST

static th_response post_event(const char *token)
{
    const char *h[] = {"Content-Type: application/json",
                       token ? th_fmt("dapr-api-token: %s", token) : NULL, NULL};
    th_response r;
    const char *ev = "{\"event_id\":\"e1\",\"event_type\":\"task.created\",\"user_id\":\"1\"}";
    ck_assert_int_eq(th_http("POST", th_fmt("%s/dapr/events/t1", d.url), ev, strlen(ev), h, &r), 0);
    return r;
}

static void setup_dapr_without_token(void)
{
    dapr = "\"dapr\": {\"enabled\": true, \"app_token\": \"\"},";
    start(0, 10000);
}

START_TEST(test_dapr_without_an_app_token_serves_no_deliveries)
{
    const char *tokens[] = {NULL, "", "anything"};
    for (size_t i = 0; i < 3; i++) {
        th_response r = post_event(tokens[i]);
        ck_assert_int_eq(r.status, 404);
        ck_assert_str_eq(r.body, "{\"detail\":\"Not Found\"}");
        th_response_free(&r);
    }
    th_response r = get("/dapr/subscribe", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "[]");
    th_response_free(&r);
    ck_assert(th_wait_file_contains(d.log_path, "no dapr.app_token", 5000));
}
END_TEST

static void setup_dapr_with_token(void)
{
    dapr = "\"dapr\": {\"enabled\": true, \"app_token\": \"${TK_TEST_DAPR_TOKEN:-d4pr-T0ken}\"},";
    start(0, 10000);
}

START_TEST(test_dapr_deliveries_need_the_app_token)
{
    const char *wrong[] = {NULL,          "",           "d4pr-T0ke",           "d4pr-T0kem",
                           "d4pr-T0ken ", "D4PR-T0KEN", "d4pr-T0kend4pr-T0ken"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        th_response r = post_event(wrong[i]);
        ck_assert_msg(r.status == 401, "%s: %ld", wrong[i] ? wrong[i] : "NULL", r.status);
        ck_assert_str_eq(r.body, "{\"detail\":\"Invalid dapr-api-token\"}");
        th_response_free(&r);
    }
    /* the right token passes; t1 consumes nothing, so the route then says so */
    th_response r = post_event("d4pr-T0ken");
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "{\"detail\":\"No consumer instance of that name\"}");
    th_response_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_plugin_route_answers_with_params_query_and_config);
    tcase_add_test(tc, test_core_routes_health_ready_metrics);
    tcase_add_test(tc, test_unknown_route_and_wrong_method_are_json_errors);
    tcase_add_test(tc, test_failing_handler_is_500_without_details);
    tcase_add_test(tc, test_body_is_passed_and_limit_gives_413);
    tcase_add_test(tc, test_request_id_is_echoed_or_generated);
    tcase_add_test(tc, test_cors_for_allowed_origins_only);
    tcase_add_test(tc, test_event_streams_answer_cors_like_plain_routes);
    tcase_add_test(tc, test_access_log_has_duration_and_secrets_are_redacted);
    tcase_add_test(tc, test_sigterm_stops_plugins_in_reverse_order_and_exits_0);
    tcase_add_test(tc, test_request_in_flight_finishes_during_shutdown);
    tcase_add_test(tc, test_keep_alive_clients_are_told_to_leave_during_shutdown);
    suite_add_tcase(s, tc);
    TCase *t2 = tcase_create("second-signal");
    tcase_set_timeout(t2, 60);
    tcase_add_checked_fixture(t2, setup_slow_stop, teardown);
    tcase_add_test(t2, test_second_signal_exits_at_once);
    suite_add_tcase(s, t2);
    TCase *t3 = tcase_create("shutdown-timeout");
    tcase_set_timeout(t3, 60);
    tcase_add_checked_fixture(t3, setup_slow_stop_short_timeout, teardown);
    tcase_add_test(t3, test_shutdown_timeout_exits_anyway);
    suite_add_tcase(s, t3);
    TCase *t4 = tcase_create("any-origin");
    tcase_add_checked_fixture(t4, setup_any_origin, teardown);
    tcase_add_test(t4, test_any_origin_gets_no_credentials);
    suite_add_tcase(s, t4);
    TCase *t5 = tcase_create("slow-init");
    tcase_set_timeout(t5, 60);
    tcase_add_checked_fixture(t5, setup_slow_init, teardown);
    tcase_add_test(t5, test_signal_during_startup_stops_cleanly);
    suite_add_tcase(s, t5);
    TCase *t9 = tcase_create("drain");
    tcase_set_timeout(t9, 60);
    tcase_add_checked_fixture(t9, setup_drain, teardown);
    tcase_add_test(t9, test_sigterm_drains_before_stopping);
    suite_add_tcase(s, t9);
    TCase *t10 = tcase_create("long-drain");
    tcase_set_timeout(t10, 60);
    tcase_add_checked_fixture(t10, setup_long_drain, teardown);
    tcase_add_test(t10, test_sigint_stops_without_draining);
    tcase_add_test(t10, test_second_signal_during_the_drain_exits_at_once);
    suite_add_tcase(s, t10);
    TCase *t6 = tcase_create("secret");
    tcase_add_test(t6, test_secret_equal_only_for_the_same_bytes_and_length);
    suite_add_tcase(s, t6);
    TCase *t7 = tcase_create("dapr-no-token");
    tcase_add_checked_fixture(t7, setup_dapr_without_token, teardown);
    tcase_add_test(t7, test_dapr_without_an_app_token_serves_no_deliveries);
    suite_add_tcase(s, t7);
    TCase *t8 = tcase_create("dapr-token");
    tcase_add_checked_fixture(t8, setup_dapr_with_token, teardown);
    tcase_add_test(t8, test_dapr_deliveries_need_the_app_token);
    suite_add_tcase(s, t8);
    return th_run_suite(s);
}

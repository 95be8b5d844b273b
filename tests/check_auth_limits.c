/*
 * Abuse limits of the HTTP API as a client sees them: 429 with Retry-After from the login and
 * register rate limits (per client address, per account), growing delays after repeated wrong
 * passwords, fixed memory under a flood of addresses, and a login flood that the bounded
 * password hash pool keeps from starving the other routes. One taskorad per test, behind
 * "127.0.0.1" as a trusted proxy so each request can say which client it is for
 * (X-Forwarded-For).
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testhelp.h"

static char dbname[64], dburl[1024];
static char *dir;
static th_daemon d;

/* ---- HTTP ------------------------------------------------------------------------------------ */

typedef struct reply {
    long status;
    json_t *json;
    char *retry_after;
    double seconds;
    char body[2048];
} reply;

/* One request as client `from` (X-Forwarded-For; NULL: the test's own address). Thread-safe. */
static reply call(const char *method, const char *path, const char *body, const char *token,
                  const char *from)
{
    char auth[1100], xff[96], url[512];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    snprintf(xff, sizeof(xff), "X-Forwarded-For: %s", from ? from : "");
    const char *h[4];
    int n = 0;
    h[n++] = "Content-Type: application/json";
    if (token)
        h[n++] = auth;
    if (from)
        h[n++] = xff;
    h[n] = NULL;
    snprintf(url, sizeof(url), "%s%s", d.url, path);
    th_response r;
    reply out;
    memset(&out, 0, sizeof(out));
    if (th_http(method, url, body, body ? strlen(body) : 0, h, &r) != 0)
        return out; /* status 0 */
    out.status = r.status;
    out.seconds = r.seconds;
    out.json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    out.retry_after = th_header(&r, "retry-after");
    snprintf(out.body, sizeof(out.body), "%s", r.body ? r.body : "");
    th_response_free(&r);
    return out;
}

static void reply_free(reply *r)
{
    json_decref(r->json);
    free(r->retry_after);
    r->json = NULL;
    r->retry_after = NULL;
}

static reply login(const char *email, const char *password, const char *from)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    return call("POST", "/api/auth/login", body, NULL, from);
}

/* Status of a login, the reply freed. */
static long login_status(const char *email, const char *password, const char *from)
{
    reply r = login(email, password, from);
    long s = r.status;
    reply_free(&r);
    return s;
}

/* Asserts a 429 (or `status`) with a whole Retry-After in [lo, hi] and a string detail. */
#define REFUSED(r, st, lo, hi) refused(__LINE__, &(r), (st), (lo), (hi))
static void refused(int line, reply *r, long status, long lo, long hi)
{
    ck_assert_msg(r->status == status, "line %d: %ld %s, wanted %ld", line, r->status, r->body,
                  status);
    ck_assert_msg(r->retry_after, "line %d: no Retry-After", line);
    char *end;
    long s = strtol(r->retry_after, &end, 10);
    ck_assert_msg(*r->retry_after && *end == '\0' && s >= lo && s <= hi,
                  "line %d: Retry-After \"%s\", wanted whole seconds in [%ld, %ld]", line,
                  r->retry_after, lo, hi);
    json_t *detail = json_object_get(r->json, "detail");
    ck_assert_msg(json_is_string(detail) && json_string_length(detail) > 0,
                  "line %d: detail is not a string: %s", line, r->body);
}

/* ---- the daemon --------------------------------------------------------------------------------
 */

/* Starts taskorad with the http_api plugin; `limits` is the JSON of its "auth_limits" object. */
static void start(const char *limits, int bcrypt_cost)
{
    char *cfg = th_write(
        dir, th_fmt("limits-%d.json", (int)getpid()),
        th_fmt("{\"app_id\": \"limits-test\", \"log\": {\"format\": \"text\"},"
               " \"plugin_dir\": \"%s/plugins/http_api/.libs\","
               " \"postgres\": {\"url\": \"%s\", \"pool_size\": 4},"
               " \"kafka\": {\"brokers\": \"embedded\", \"partitions\": 1,"
               "  \"topics\": [\"task-events\", \"user-events\", \"chat-events\"]},"
               " \"outbox\": {\"poll_ms\": 200, \"retention_s\": 3600},"
               " \"http\": {\"listen\": \"127.0.0.1:0\", \"trusted_proxies\": [\"127.0.0.1\"]},"
               " \"plugins\": [{\"name\": \"api\", \"load\": \"http_api\", \"config\": {"
               "  \"jwt_secret\": \"limits-secret-0123456789abcdef0123456789\","
               "  \"bcrypt_cost\": %d, \"limits\": %s}}]}",
               th_builddir(), dburl, bcrypt_cost, limits));
    th_daemon_start_named(&d, dir, cfg, th_fmt("limits-%d", (int)getpid()));
    free(cfg);
}

static void stop(void)
{
    if (d.pid <= 0)
        return;
    kill(d.pid, SIGINT); /* stops without the drain delay */
    int code = th_daemon_wait(&d, 20000);
    char *text = th_read(d.log_path);
    ck_assert_msg(code == 0, "taskorad exited %d: %s", code, text);
    ck_assert_msg(!strstr(text, "Sanitizer") && !strstr(text, "runtime error"), "%s", text);
    free(text);
    th_daemon_cleanup(&d);
    memset(&d, 0, sizeof(d));
}

static double metric(const char *series)
{
    return th_metric(d.url, th_fmt("%s{plugin=\"api\"}", series));
}

static double limit_metric(const char *series, const char *limit)
{
    return th_metric(d.url, th_fmt("%s{plugin=\"api\",limit=\"%s\"}", series, limit));
}

/* A registered user's email (unique to this process and tag). */
static const char *new_user(const char *tag, const char *password, const char *from)
{
    static char emails[8][128];
    static int n;
    char *email = emails[n++ % 8];
    snprintf(email, 128, "%s-%d@example.com", tag, (int)getpid());
    reply r = call("POST", "/api/auth/register",
                   th_fmt("{\"email\":\"%s\",\"name\":\"N\",\"password\":\"%s\"}", email, password),
                   NULL, from);
    ck_assert_msg(r.status == 201, "register %s: %ld %s", email, r.status, r.body);
    reply_free(&r);
    return email;
}

static const char *token_of(const char *email, const char *password, const char *from)
{
    static char tok[1024];
    reply r = login(email, password, from);
    ck_assert_msg(r.status == 200, "login %s: %ld %s", email, r.status, r.body);
    snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(r.json, "access_token")));
    reply_free(&r);
    return tok;
}

/* ---- rate limits ----------------------------------------------------------------------------- */

START_TEST(test_login_and_register_are_limited_per_client_address)
{
    start("{\"login_per_address\": {\"per_minute\": 6, \"burst\": 3},"
          " \"register_per_address\": {\"per_minute\": 6, \"burst\": 2}}",
          4);
    const char *email = new_user("addr", "right", "198.51.100.200");
    /* three attempts of one address go through (wrong passwords: 401) */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(login_status(email, "wrong", "198.51.100.1"), 401);
    double hashes = metric("taskora_http_api_password_hashes_total");
    /* the fourth is refused before any password check, even with the right password */
    reply r = login(email, "right", "198.51.100.1");
    REFUSED(r, 429, 1, 10); /* a token every 10 s */
    ck_assert(!strstr(r.body, "access_token"));
    reply_free(&r);
    ck_assert(metric("taskora_http_api_password_hashes_total") == hashes);
    ck_assert(limit_metric("taskora_http_api_rate_limited_total", "login_address") == 1);
    /* another address is not affected */
    ck_assert_int_eq(login_status(email, "right", "198.51.100.2"), 200);

    /* IPv6 clients are limited by their /64 */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(login_status(email, "wrong", th_fmt("2001:db8:1:2::%x", i + 1)), 401);
    r = login(email, "right", "2001:db8:1:2:ffff:ffff:ffff:fffe");
    REFUSED(r, 429, 1, 10);
    reply_free(&r);
    ck_assert_int_eq(login_status(email, "right", "2001:db8:1:3::1"), 200);

    /* registrations: two per address, malformed ones count too */
    r = call("POST", "/api/auth/register", "{}", NULL, "198.51.100.3");
    ck_assert_int_eq(r.status, 422);
    reply_free(&r);
    r = call("POST", "/api/auth/register",
             th_fmt("{\"email\":\"reg-%d@example.com\",\"name\":\"R\",\"password\":\"p\"}",
                    (int)getpid()),
             NULL, "198.51.100.3");
    ck_assert_int_eq(r.status, 201);
    reply_free(&r);
    r = call("POST", "/api/auth/register",
             th_fmt("{\"email\":\"reg2-%d@example.com\",\"name\":\"R\",\"password\":\"p\"}",
                    (int)getpid()),
             NULL, "198.51.100.3");
    REFUSED(r, 429, 1, 10);
    reply_free(&r);
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM users WHERE email = 'reg2-%d@example.com'",
                                  (int)getpid())),
        0);
    /* without a trusted proxy in front, X-Forwarded-For would be ignored: the limit keys on
     * the address the host names, which check_routes tests */
    stop();
}
END_TEST

START_TEST(test_login_is_limited_per_account_whatever_the_address_or_case)
{
    start("{\"login_per_account\": {\"per_minute\": 6, \"burst\": 3}}", 4);
    const char *email = new_user("acct", "right", "198.51.100.200");
    char upper[128];
    snprintf(upper, sizeof(upper), "%s", email);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    /* three attempts for one account from three addresses, in two spellings */
    ck_assert_int_eq(login_status(email, "wrong", "198.51.100.11"), 401);
    ck_assert_int_eq(login_status(upper, "wrong", "198.51.100.12"), 401);
    ck_assert_int_eq(login_status(email, "right", "198.51.100.13"), 200);
    reply r = login(email, "right", "198.51.100.14");
    REFUSED(r, 429, 1, 10);
    reply_free(&r);
    ck_assert(limit_metric("taskora_http_api_rate_limited_total", "login_account") == 1);
    /* another account from the same address is not affected */
    const char *other = new_user("acct-other", "pw2", "198.51.100.201");
    ck_assert_int_eq(login_status(other, "pw2", "198.51.100.14"), 200);
    stop();
}
END_TEST

START_TEST(test_repeated_wrong_passwords_delay_the_account_exponentially)
{
    start("{\"login_per_account\": {\"per_minute\": 600, \"burst\": 100},"
          " \"login_failures_before_delay\": 5, \"login_failure_delay_max_s\": 2}",
          4);
    const char *email = new_user("delay", "right", "198.51.100.200");
    char upper[128];
    snprintf(upper, sizeof(upper), "%s", email);
    upper[0] = (char)(upper[0] - 32);
    for (int i = 0; i < 5; i++) /* five wrong passwords, in two spellings, from many addresses */
        ck_assert_int_eq(
            login_status(i % 2 ? upper : email, "wrong", th_fmt("198.51.100.%d", 20 + i)), 401);
    /* the sixth attempt waits 1 s, even with the right password; no hash is computed */
    double hashes = metric("taskora_http_api_password_hashes_total");
    reply r = login(email, "right", "198.51.100.30");
    REFUSED(r, 429, 1, 1);
    ck_assert_msg(r.seconds < 0.2, "a refused attempt took %.3f s", r.seconds);
    reply_free(&r);
    ck_assert(metric("taskora_http_api_password_hashes_total") == hashes);
    ck_assert(limit_metric("taskora_http_api_rate_limited_total", "login_failures") == 1);
    /* another account is not delayed */
    const char *other = new_user("delay-other", "pw2", "198.51.100.201");
    ck_assert_int_eq(login_status(other, "pw2", "198.51.100.30"), 200);

    hashes = metric("taskora_http_api_password_hashes_total");
    usleep(1100 * 1000);
    ck_assert_int_eq(login_status(email, "wrong", "198.51.100.31"), 401);
    r = login(upper, "right", "198.51.100.31"); /* failure 6: 2 s */
    REFUSED(r, 429, 2, 2);
    reply_free(&r);
    usleep(2100 * 1000);
    ck_assert_int_eq(login_status(email, "wrong", "198.51.100.32"), 401);
    r = login(email, "wrong", "198.51.100.32"); /* failure 7: 4 s, capped at 2 */
    REFUSED(r, 429, 2, 2);
    reply_free(&r);
    /* two checks: the refused attempts computed nothing */
    ck_assert(metric("taskora_http_api_password_hashes_total") == hashes + 2);

    /* a successful login forgets the failures: five more wrong passwords are plain 401s */
    usleep(2100 * 1000);
    ck_assert_int_eq(login_status(email, "right", "198.51.100.33"), 200);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(login_status(email, "wrong", "198.51.100.34"), 401);
    r = login(email, "right", "198.51.100.34");
    REFUSED(r, 429, 1, 1);
    reply_free(&r);

    /* unknown emails are delayed alike, so a 429 does not tell which accounts exist */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(
            login_status(th_fmt("nobody-%d@example.com", (int)getpid()), "x", "198.51.100.35"),
            401);
    r = login(th_fmt("nobody-%d@example.com", (int)getpid()), "x", "198.51.100.35");
    REFUSED(r, 429, 1, 1);
    reply_free(&r);
    stop();
}
END_TEST

/* ---- bounded memory ----------------------------------------------------------------------------
 */

typedef struct flood_arg {
    int first, count;
    atomic_int *bad;
} flood_arg;

static void *register_flood(void *p)
{
    flood_arg *f = p;
    for (int i = f->first; i < f->first + f->count; i++) {
        char from[32];
        snprintf(from, sizeof(from), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        reply r = call("POST", "/api/auth/register", "{}", NULL, from);
        if (r.status != 422)
            atomic_fetch_add(f->bad, 1);
        reply_free(&r);
    }
    return NULL;
}

START_TEST(test_a_flood_of_addresses_keeps_memory_fixed_and_the_limited_client_limited)
{
    start("{\"buckets\": 64, \"register_per_address\": {\"per_minute\": 1, \"burst\": 3}}", 4);
    const char *attacker = "198.51.100.66";
    for (int i = 0; i < 3; i++) {
        reply r = call("POST", "/api/auth/register", "{}", NULL, attacker);
        ck_assert_int_eq(r.status, 422);
        reply_free(&r);
    }
    reply r = call("POST", "/api/auth/register", "{}", NULL, attacker);
    REFUSED(r, 429, 1, 60);
    reply_free(&r);

    /* 4,000 other addresses, one request each, from 4 threads */
    enum { N = 4000, T = 4 };
    atomic_int bad = 0;
    pthread_t th[T];
    flood_arg args[T];
    double t0 = th_now_s();
    for (int i = 0; i < T; i++) {
        args[i] = (flood_arg){.first = 1 + i * (N / T), .count = N / T, .bad = &bad};
        ck_assert_int_eq(pthread_create(&th[i], NULL, register_flood, &args[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "check_auth_limits: %d addresses in %.2f s\n", N, th_now_s() - t0);
    ck_assert_int_eq(atomic_load(&bad), 0);
    /* the table did not grow past its 64 slots */
    double used = limit_metric("taskora_http_api_rate_limit_buckets", "register_address");
    ck_assert_msg(used > 0 && used <= 64, "%.0f buckets", used);
    /* the fresh buckets of the flood were evicted, not the drained one of the limited client */
    r = call("POST", "/api/auth/register", "{}", NULL, attacker);
    REFUSED(r, 429, 1, 60);
    reply_free(&r);
    stop();
}
END_TEST

/* ---- the password hash pool under a login flood -----------------------------------------------
 */

enum { FLOODERS = 20 };

typedef struct flood {
    int addresses; /* 0: every request from a new address; else from this many */
    atomic_int stop;
    atomic_int n401, n503, n429, nother, seq;
    atomic_int bad_retry_after;
} flood;

static void *login_flood(void *p)
{
    flood *f = p;
    while (!atomic_load(&f->stop)) {
        int i = atomic_fetch_add(&f->seq, 1);
        int k = f->addresses ? i % f->addresses : i;
        char from[32], email[96];
        snprintf(from, sizeof(from), "10.%d.%d.%d", f->addresses ? 250 : 100 + ((k >> 16) & 127),
                 (k >> 8) & 255, k & 255);
        snprintf(email, sizeof(email), "stuffing-%d-%d@example.com", (int)getpid(), i);
        reply r = login(email, "hunter2", from);
        if (r.status == 401)
            atomic_fetch_add(&f->n401, 1);
        else if (r.status == 503 || r.status == 429) {
            atomic_fetch_add(r.status == 503 ? &f->n503 : &f->n429, 1);
            if (!r.retry_after || atoi(r.retry_after) < 1)
                atomic_fetch_add(&f->bad_retry_after, 1);
        } else
            atomic_fetch_add(&f->nother, 1);
        reply_free(&r);
    }
    return NULL;
}

/* How much longer than the plain build's bounds the sanitizers' build may take. */
static double slowness(void)
{
    const char *san = getenv("TK_SANITIZERS");
    return san && strcmp(san, "yes") == 0 ? 2.5 : 1.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What the other clients saw while a flood ran. */
typedef struct seen {
    double max_running, max_get, p50_get, max_login;
    int ngets, nlogins, ok_logins, refused_logins;
} seen;

/*
 * Runs FLOODERS threads of logins (unknown emails, wrong passwords) for `secs` while sampling
 * the hashes in progress, reading another user's tasks every 250 ms and logging a legitimate
 * user in every second, each time from a new address.
 */
static seen run_flood(flood *f, double secs, const char *tok, const char *legit, int legit_net,
                      double legit_after, double legit_bound)
{
    pthread_t th[FLOODERS];
    double t0 = th_now_s();
    for (int i = 0; i < FLOODERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, login_flood, f), 0);
    seen s;
    memset(&s, 0, sizeof(s));
    double gets[64];
    char codes[64] = "";
    int samples = 0;
    usleep(500 * 1000);
    double end = th_now_s() + secs;
    double next_get = 0, next_login = th_now_s() + legit_after;
    while (th_now_s() < end) {
        double running = metric("taskora_http_api_password_hashes_in_progress");
        samples++;
        if (running > s.max_running)
            s.max_running = running;
        if (th_now_s() >= next_get && s.ngets < 64) {
            reply r = call("GET", "/api/tasks", NULL, tok, "198.51.100.201");
            ck_assert_msg(r.status == 200, "GET /api/tasks: %ld %s", r.status, r.body);
            gets[s.ngets++] = r.seconds;
            if (r.seconds > s.max_get)
                s.max_get = r.seconds;
            reply_free(&r);
            next_get = th_now_s() + 0.25;
        }
        if (th_now_s() >= next_login && s.nlogins < 8) {
            reply r = login(legit, "pw-legit", th_fmt("203.0.%d.%d", legit_net, 10 + s.nlogins));
            ck_assert_msg(r.status == 200 || r.status == 503, "legit login: %ld %s", r.status,
                          r.body);
            if (r.status == 503)
                REFUSED(r, 503, 1, 5);
            s.ok_logins += r.status == 200;
            s.refused_logins += r.status == 503;
            snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%ld",
                     s.nlogins ? "," : "", r.status);
            s.nlogins++;
            if (r.seconds > s.max_login)
                s.max_login = r.seconds;
            reply_free(&r);
            next_login = th_now_s() + 1;
        }
        usleep(20 * 1000);
    }
    atomic_store(&f->stop, 1);
    for (int i = 0; i < FLOODERS; i++)
        pthread_join(th[i], NULL);
    double took = th_now_s() - t0;
    qsort(gets, (size_t)s.ngets, sizeof(double), cmp_double);
    s.p50_get = s.ngets ? gets[s.ngets / 2] : 0;
    int total = atomic_load(&f->n401) + atomic_load(&f->n503) + atomic_load(&f->n429) +
                atomic_load(&f->nother);
    fprintf(
        stderr,
        "check_auth_limits: login flood of %d clients from %s for %.1f s: %d requests (%.0f/s): "
        "%d checked (401, %.1f/s), %d refused 503, %d refused 429, %d other; hashes in "
        "progress max %.0f over %d samples\n"
        "check_auth_limits:   meanwhile GET /api/tasks: %d requests, p50 %.1f ms, max %.1f ms;"
        " legitimate logins: %d (%s), max %.1f ms\n",
        FLOODERS, f->addresses ? th_fmt("%d addresses", f->addresses) : "a new address each time",
        took, total, total / took, atomic_load(&f->n401), atomic_load(&f->n401) / took,
        atomic_load(&f->n503), atomic_load(&f->n429), atomic_load(&f->nother), s.max_running,
        samples, s.ngets, s.p50_get * 1000, s.max_get * 1000, s.nlogins, codes, s.max_login * 1000);
    ck_assert_int_eq(atomic_load(&f->nother), 0);
    ck_assert_int_eq(atomic_load(&f->bad_retry_after), 0);
    /* never more than 2 hashes at once; the other routes and the logins kept answering */
    ck_assert_msg(s.max_running <= 2, "max hashes in progress %.0f", s.max_running);
    ck_assert_int_ge(s.ngets, 5);
    ck_assert_msg(s.max_get < 2.0 * slowness(), "GET /api/tasks took %.3f s during the flood",
                  s.max_get);
    ck_assert_int_ge(s.nlogins, 1);
    ck_assert_msg(s.max_login < legit_bound * slowness(),
                  "a legitimate login took %.3f s during the flood", s.max_login);
    ck_assert(th_wait_metric(d.url, "taskora_http_api_password_hashes_in_progress{plugin=\"api\"}",
                             0, 5) == 0);
    return s;
}

START_TEST(test_a_login_flood_runs_at_most_n_hashes_and_other_requests_stay_fast)
{
    /* 2 hashes at once, 4 may wait up to 1 s (so a login that waits and then gets a slot
     * answers within 2 s); users' hashes of cost 10 (unknown emails are checked against a hash
     * of cost 12); 5 logins per address, then one every 30 s */
    start("{\"password_hashes\": 2, \"password_hash_queue\": 4, \"password_hash_wait_ms\": 1000,"
          " \"login_per_address\": {\"per_minute\": 2, \"burst\": 5}}",
          10);
    ck_assert(metric("taskora_http_api_password_hash_slots") == 2);
    const char *reader = new_user("reader", "pw-reader", "198.51.100.201");
    char tok[1024];
    snprintf(tok, sizeof(tok), "%s", token_of(reader, "pw-reader", "198.51.100.201"));
    new_user("legit", "pw-legit", "198.51.100.202");
    char legit[128];
    snprintf(legit, sizeof(legit), "legit-%d@example.com", (int)getpid());

    /* a botnet: every request from another address, so only the pool holds it back */
    flood f;
    memset(&f, 0, sizeof(f));
    seen s = run_flood(&f, 6, tok, legit, 113, 0.5, 2.0);
    ck_assert_int_eq(atomic_load(&f.n429), 0);
    /* the pool was full and the rest were refused at once, not piled up */
    ck_assert_msg(s.max_running == 2, "max hashes in progress %.0f", s.max_running);
    ck_assert_int_gt(atomic_load(&f.n503), 0);
    ck_assert(metric("taskora_http_api_password_hashes_refused_total") ==
              atomic_load(&f.n503) + s.refused_logins);

    /* a flood from a few addresses whose bursts are spent (malformed logins cost a token and
     * no hash): their rate limits refuse it before the pool, and legitimate logins get hash
     * slots */
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 5; i++) {
            reply r = call("POST", "/api/auth/login", "{}", NULL, th_fmt("10.250.0.%d", k));
            ck_assert_int_eq(r.status, 422);
            reply_free(&r);
        }
    new_user("legit2", "pw-legit", "198.51.100.203");
    snprintf(legit, sizeof(legit), "legit2-%d@example.com", (int)getpid());
    flood g;
    memset(&g, 0, sizeof(g));
    g.addresses = 4;
    /* (these logins compute a hash of cost 10, 0.2 s on an idle core of the development
     * machine, and may wait for one of cost 12 of the flood: the addresses get a token every
     * 30 s; on a shared machine all of it takes longer, so the bound is wider) */
    s = run_flood(&g, 6, tok, legit, 114, 0.5, 5.0);
    ck_assert_int_gt(atomic_load(&g.n429), 0);
    ck_assert_int_le(atomic_load(&g.n401) + atomic_load(&g.n503), 4 * 2);
    ck_assert_msg(s.ok_logins >= 1 && s.ok_logins >= s.nlogins - 1,
                  "legitimate logins: %d of %d refused", s.nlogins - s.ok_logins, s.nlogins);
    stop();
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

static void suite_setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_authlim_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    char *cfg = th_write(dir, "migrate.json",
                         th_fmt("{\"postgres\": {\"url\": \"%s\"}, \"plugin_dir\": "
                                "\"%s/plugins/http_api/.libs\", \"plugins\": [{\"name\": \"api\","
                                " \"load\": \"http_api\", \"config\": {\"jwt_secret\": \"x\"}}]}",
                                dburl, th_builddir()));
    th_migrate(cfg);
    free(cfg);
}

static void suite_teardown(void)
{
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_auth_limits");
    curl_global_init(CURL_GLOBAL_ALL); /* before the tests' threads call libcurl */
    Suite *s = suite_create("auth_limits");
    TCase *tc = tcase_create("rate");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, test_login_and_register_are_limited_per_client_address);
    tcase_add_test(tc, test_login_is_limited_per_account_whatever_the_address_or_case);
    tcase_add_test(tc, test_repeated_wrong_passwords_delay_the_account_exponentially);
    tcase_add_test(tc, test_a_flood_of_addresses_keeps_memory_fixed_and_the_limited_client_limited);
    suite_add_tcase(s, tc);
    tc = tcase_create("hash_pool");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, test_a_login_flood_runs_at_most_n_hashes_and_other_requests_stay_fast);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    curl_global_cleanup();
    return rc;
}

/* The PostgreSQL pool against a real server: limits, reuse, clean hand-over, restarts, helpers. */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "pg_pool.h"
#include "testhelp.h"

static char dbname[64];
static char dburl[1024];
static tk_metrics *metrics;

/* A database with the core's tables (applied by `taskorad migrate`). */
static void setup(void)
{
    snprintf(dbname, sizeof(dbname), "tk_pg_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    char *dir = th_tmpdir();
    char text[2048];
    setenv("TK_TEST_DB", dburl, 1);
    snprintf(text, sizeof(text), "{\"postgres\": {\"url\": \"${TK_TEST_DB}\"}}");
    char *cfg = th_write(dir, "c.json", text);
    th_migrate(cfg);
    free(cfg);
    th_rmtree(dir);
    free(dir);
    th_pg_exec(dburl, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);"
                      "CREATE TABLE counters (name text PRIMARY KEY, n int NOT NULL);"
                      "INSERT INTO counters VALUES ('applied', 0)");
    metrics = tk_metrics_new();
}

static void teardown(void)
{
    tk_metrics_free(metrics);
    th_pg_drop_db(dbname);
}

static tk_pg_pool *pool_new(const char *url, int size, int timeout_ms)
{
    tk_pg_options o = {.url = url,
                       .size = size,
                       .acquire_timeout_ms = timeout_ms,
                       .connect_timeout_s = 3,
                       .app_id = "pool-test"};
    char err[512];
    tk_pg_pool *p = tk_pg_pool_new(&o, metrics, err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    return p;
}

static PGresult *q(tk_pg *c, const char *sql) { return PQexec(tk_pg_conn(c), sql); }

static char *value(tk_pg *c, const char *sql)
{
    PGresult *r = q(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* ---- exhaustion -------------------------------------------------------- */

typedef struct acquirer {
    tk_pg_pool *pool;
    int rc;
    double waited;
    tk_pg *conn;
} acquirer;

static void *acquire_thread(void *arg)
{
    acquirer *a = arg;
    double t0 = th_now_s();
    a->rc = tk_pg_acquire(a->pool, 400, &a->conn);
    a->waited = th_now_s() - t0;
    return NULL;
}

START_TEST(test_pool_of_n_times_out_the_n_plus_first_and_reuses_released)
{
    enum { N = 3 };
    tk_pg_pool *p = pool_new(dburl, N, 400);
    acquirer a[N + 1];
    pthread_t t[N + 1];
    for (int i = 0; i <= N; i++) {
        a[i] = (acquirer){.pool = p};
        pthread_create(&t[i], NULL, acquire_thread, &a[i]);
    }
    int ok = 0, timed_out = -1;
    for (int i = 0; i <= N; i++) {
        pthread_join(t[i], NULL);
        if (a[i].rc == 0)
            ok++;
        else
            timed_out = i;
    }
    ck_assert_int_eq(ok, N);
    ck_assert_int_ge(timed_out, 0);
    ck_assert_int_eq(a[timed_out].rc, TK_ETIMEDOUT);
    ck_assert_str_eq(tk_strerror(a[timed_out].rc), "timed out");
    ck_assert_msg(a[timed_out].waited >= 0.39 && a[timed_out].waited < 5, "waited %f s",
                  a[timed_out].waited);
    /* give one back: the next caller gets that same server connection */
    int freed = timed_out == 0 ? 1 : 0;
    int pid = PQbackendPID(tk_pg_conn(a[freed].conn));
    tk_pg_release(a[freed].conn);
    tk_pg *again;
    ck_assert_int_eq(tk_pg_acquire(p, 400, &again), 0);
    ck_assert_int_eq(PQbackendPID(tk_pg_conn(again)), pid);
    tk_pg_release(again);
    for (int i = 0; i <= N; i++)
        if (i != freed && a[i].rc == 0)
            tk_pg_release(a[i].conn);
    char *text = tk_metrics_render(metrics, NULL);
    ck_assert_msg(strstr(text, "taskora_pg_errors_total{kind=\"timeout\"} 1\n"), "%s", text);
    ck_assert_msg(strstr(text, "taskora_pg_pool_size 3\n"), "%s", text);
    ck_assert_msg(strstr(text, "taskora_pg_pool_in_use 0\n"), "%s", text);
    ck_assert_msg(strstr(text, "taskora_pg_pool_acquire_seconds_count 5\n"), "%s", text);
    free(text);
    tk_pg_pool_free(p);
}
END_TEST

/* ---- clean hand-over --------------------------------------------------- */

START_TEST(test_connection_returned_in_failed_transaction_is_clean_for_next_user)
{
    tk_pg_pool *p = pool_new(dburl, 1, 1000);
    tk_pg *c;
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    int pid = PQbackendPID(tk_pg_conn(c));
    PQclear(q(c, "BEGIN"));
    PQclear(q(c, "INSERT INTO items (name) VALUES ('lost')"));
    PGresult *r = q(c, "SELECT 1 / 0");
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    ck_assert_int_eq(PQtransactionStatus(tk_pg_conn(c)), PQTRANS_INERROR);
    tk_pg_release(c);

    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    ck_assert_int_eq(PQbackendPID(tk_pg_conn(c)), pid); /* same connection, reused */
    ck_assert_int_eq(PQtransactionStatus(tk_pg_conn(c)), PQTRANS_IDLE);
    char *n = value(c, "SELECT count(*) FROM items");
    ck_assert_str_eq(n, "0");
    free(n);
    /* an open (not failed) transaction is rolled back too */
    PQclear(q(c, "BEGIN"));
    PQclear(q(c, "INSERT INTO items (name) VALUES ('uncommitted')"));
    tk_pg_release(c);
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    n = value(c, "SELECT count(*) FROM items");
    ck_assert_str_eq(n, "0");
    free(n);
    tk_pg_release(c);
    tk_pg_pool_free(p);
}
END_TEST

/* ---- URL parameters ---------------------------------------------------- */

START_TEST(test_every_libpq_parameter_comes_through_the_url)
{
    char url[1200];
    snprintf(url, sizeof(url), "%s application_name='from-the-url' options='-c work_mem=7MB'",
             dburl);
    tk_pg_pool *p = pool_new(url, 1, 1000);
    tk_pg *c;
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    char *v = value(c, "SHOW application_name");
    ck_assert_str_eq(v, "from-the-url");
    free(v);
    v = value(c, "SHOW work_mem");
    ck_assert_str_eq(v, "7MB");
    free(v);
    tk_pg_release(c);
    tk_pg_pool_free(p);
    /* without one in the URL, the app id names the connection */
    p = pool_new(dburl, 1, 1000);
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    v = value(c, "SHOW application_name");
    ck_assert_str_eq(v, "pool-test");
    free(v);
    tk_pg_release(c);
    tk_pg_pool_free(p);
    char err[256];
    tk_pg_options bad = {.url = "postgresql://x/y?nonsense=1", .size = 1};
    ck_assert_ptr_null(tk_pg_pool_new(&bad, NULL, err, sizeof(err)));
    ck_assert_msg(strstr(err, "postgres.url: ") && strstr(err, "nonsense"), "%s", err);
}
END_TEST

/* ---- transactions and idempotency -------------------------------------- */

static int insert_item(void *conn, void *ud)
{
    const char *params[] = {ud};
    PGresult *r =
        PQexecParams(conn, "INSERT INTO items (name) VALUES ($1)", 1, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

static int insert_then_fail(void *conn, void *ud)
{
    insert_item(conn, ud);
    return TK_EINVAL;
}

static int insert_then_ignore_an_error(void *conn, void *ud)
{
    insert_item(conn, ud);
    PQclear(PQexec(conn, "SELECT 1 / 0"));
    return 0; /* the handler did not notice; COMMIT must not pretend it worked */
}

START_TEST(test_tx_commits_on_success_and_rolls_back_on_failure)
{
    tk_pg_pool *p = pool_new(dburl, 2, 1000);
    ck_assert_int_eq(tk_pg_tx(p, insert_item, "kept"), 0);
    ck_assert_int_eq(tk_pg_tx(p, insert_then_fail, "dropped"), TK_EINVAL);
    ck_assert_int_lt(tk_pg_tx(p, insert_then_ignore_an_error, "dropped too"), 0);
    char *v = th_pg_query1(dburl, "SELECT string_agg(name, ',') FROM items");
    ck_assert_str_eq(v, "kept");
    free(v);
    tk_pg_pool_free(p);
}
END_TEST

static int bump(void *conn, void *ud)
{
    (void)ud;
    PGresult *r = PQexec(conn, "UPDATE counters SET n = n + 1 WHERE name = 'applied'");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

typedef struct once_call {
    tk_pg_pool *pool;
    int rc, duplicate;
} once_call;

static void *once_thread(void *arg)
{
    once_call *c = arg;
    c->rc = tk_pg_once(c->pool, "analytics", "evt-concurrent", bump, NULL, &c->duplicate);
    return NULL;
}

START_TEST(test_once_applies_the_same_event_id_once)
{
    tk_pg_pool *p = pool_new(dburl, 4, 5000);
    int dup = -1;
    ck_assert_int_eq(tk_pg_once(p, "analytics", "evt-1", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 0);
    ck_assert_int_eq(tk_pg_once(p, "analytics", "evt-1", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 1);
    /* another consumer group applies the same event for itself */
    ck_assert_int_eq(tk_pg_once(p, "notifications", "evt-1", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 0);
    /* a failed handler records nothing, so a retry applies it */
    ck_assert_int_eq(tk_pg_once(p, "analytics", "evt-2", insert_then_fail, "x", &dup), TK_EINVAL);
    ck_assert_int_eq(tk_pg_once(p, "analytics", "evt-2", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 0);
    /* four deliveries at once: exactly one applies */
    once_call calls[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        calls[i] = (once_call){.pool = p};
        pthread_create(&t[i], NULL, once_thread, &calls[i]);
    }
    int applied = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(calls[i].rc, 0);
        applied += !calls[i].duplicate;
    }
    ck_assert_int_eq(applied, 1);
    char *v = th_pg_query1(dburl, "SELECT n FROM counters WHERE name = 'applied'");
    ck_assert_str_eq(v, "4");
    free(v);
    v = th_pg_query1(dburl, "SELECT count(*) FROM taskora_processed_events");
    ck_assert_str_eq(v, "4");
    free(v);
    ck_assert_int_eq(tk_pg_once(p, "", "evt", bump, NULL, &dup), TK_EINVAL);
    tk_pg_pool_free(p);
}
END_TEST

typedef struct mark_call {
    const char *const *ids;
    size_t n;
    int fresh[8];
    int fail_after; /* roll the transaction back after marking */
} mark_call;

static int mark_fn(void *conn, void *ud)
{
    mark_call *m = ud;
    int rc = tk_pg_mark_processed(conn, "analytics", m->ids, m->n, m->fresh);
    return rc < 0 ? rc : m->fail_after ? TK_ERR : TK_OK;
}

START_TEST(test_a_batch_is_marked_processed_once_per_id_with_the_callers_transaction)
{
    tk_pg_pool *p = pool_new(dburl, 2, 5000);
    const char *ids[] = {"b-1", "b-2", "b-1", "b-3"};
    /* rolled back with the caller's work: nothing recorded */
    mark_call m = {.ids = ids, .n = 4, .fail_after = 1};
    ck_assert_int_eq(tk_pg_tx(p, mark_fn, &m), TK_ERR);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM taskora_processed_events"
                                        " WHERE event_id LIKE 'b-%'"),
                     0);
    /* committed: each id fresh once, the repeat inside the batch not */
    m = (mark_call){.ids = ids, .n = 4};
    ck_assert_int_eq(tk_pg_tx(p, mark_fn, &m), TK_OK);
    ck_assert_int_eq(m.fresh[0], 1);
    ck_assert_int_eq(m.fresh[1], 1);
    ck_assert_int_eq(m.fresh[2], 0);
    ck_assert_int_eq(m.fresh[3], 1);
    /* redelivered with one new id: only that one is fresh */
    const char *again[] = {"b-2", "b-4", "b-3"};
    m = (mark_call){.ids = again, .n = 3};
    ck_assert_int_eq(tk_pg_tx(p, mark_fn, &m), TK_OK);
    ck_assert_int_eq(m.fresh[0], 0);
    ck_assert_int_eq(m.fresh[1], 1);
    ck_assert_int_eq(m.fresh[2], 0);
    /* pg_once sees what the batch recorded, and the other way round */
    int dup = -1;
    ck_assert_int_eq(tk_pg_once(p, "analytics", "b-4", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(tk_pg_once(p, "analytics", "b-5", bump, NULL, &dup), 0);
    const char *five[] = {"b-5"};
    m = (mark_call){.ids = five, .n = 1};
    ck_assert_int_eq(tk_pg_tx(p, mark_fn, &m), TK_OK);
    ck_assert_int_eq(m.fresh[0], 0);
    m = (mark_call){.ids = NULL, .n = 1};
    ck_assert_int_eq(tk_pg_tx(p, mark_fn, &m), TK_EINVAL);
    tk_pg_pool_free(p);
}
END_TEST

/* ---- the host table ---------------------------------------------------- */

START_TEST(test_plugins_reach_the_pool_through_the_host_table)
{
    tk_pg_pool *p = pool_new(dburl, 2, 1000);
    tk_runtime rt = {.app_id = "t", .metrics = metrics, .pg = p};
    tk_instance inst = {.name = "plugin", .rt = &rt};
    const tk_host *h = tk_host_table();
    ck_assert_uint_ge(h->struct_size, offsetof(tk_host, pg_once) + sizeof(h->pg_once));
    tk_pg *c;
    ck_assert_int_eq(h->pg_acquire(&inst, -1, &c), 0);
    PGresult *r = PQexec(h->pg_conn(c), "SELECT 42");
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    h->pg_release(c);
    ck_assert_int_eq(h->pg_tx(&inst, insert_item, "via-host"), 0);
    int dup = -1;
    ck_assert_int_eq(h->pg_once(&inst, "g", "e", bump, NULL, &dup), 0);
    ck_assert_int_eq(dup, 0);
    tk_runtime none = {.app_id = "t", .metrics = metrics};
    tk_instance no_db = {.name = "plugin", .rt = &none};
    ck_assert_int_eq(h->pg_acquire(&no_db, -1, &c), TK_EUNAVAILABLE);
    ck_assert_int_eq(h->pg_tx(&no_db, insert_item, "x"), TK_EUNAVAILABLE);
    tk_pg_pool_free(p);
}
END_TEST

START_TEST(test_taskorad_starts_without_its_database_and_says_so)
{
    char *dir = th_tmpdir();
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"postgres\": {\"url\": \"postgresql://nobody@127.0.0.1:%d/none\"},"
             " \"kafka\": {\"brokers\": \"127.0.0.1:1\"}, \"http\": {\"listen\": \"127.0.0.1:0\"}}",
             th_free_port());
    char *cfg = th_write(dir, "c.json", text);
    char *log = th_write(dir, "log", "");
    th_daemon d;
    ck_assert_int_eq(th_daemon_start(&d, cfg, log, 20000), 0);
    char url[256];
    th_response r;
    snprintf(url, sizeof(url), "%s/ready", d.url);
    ck_assert_int_eq(th_http("GET", url, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "{\"status\":\"not_ready\",\"database\":\"unreachable\"}");
    th_response_free(&r);
    ck_assert_double_eq(th_metric(d.url, "taskora_ready"), 0); /* what /ready says, to alerts */
    snprintf(url, sizeof(url), "%s/health", d.url);
    ck_assert_int_eq(th_http("GET", url, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    th_response_free(&r);
    ck_assert(th_wait_file_contains(log, "postgres: cannot connect", 5000));
    kill(d.pid, SIGINT); /* stops without the drain delay */
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    th_daemon_cleanup(&d);
    free(cfg);
    free(log);
    th_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- restarts (a private cluster this test may stop) -------------------- */

static char *cluster_dir;
static int cluster_port;
static char cluster_url[256];

/* Once per test case, in the runner's own process: teardown runs even when a test failed. */
static void create_cluster(void)
{
    cluster_dir = th_tmpdir();
    cluster_port = th_free_port();
    snprintf(cluster_url, sizeof(cluster_url),
             "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=2", cluster_port);
}

static void destroy_cluster(void)
{
    th_pg_cluster_stop(cluster_dir);
    th_rmtree(cluster_dir);
    free(cluster_dir);
}

/* Each test starts with the cluster running (a test may have left it stopped). */
static void setup_cluster(void)
{
    metrics = tk_metrics_new();
    ck_assert_int_eq(th_pg_cluster_start(cluster_dir, cluster_port), 0);
}

static void teardown_cluster(void) { tk_metrics_free(metrics); }

/* Polls GET url until it answers `status`; 1 when it did within timeout_ms. */
static int wait_status(const char *url, long status, int timeout_ms)
{
    double end = th_now_s() + timeout_ms / 1000.0;
    do {
        th_response r;
        int ok = th_http("GET", url, NULL, 0, NULL, &r) == 0 && r.status == status;
        th_response_free(&r);
        if (ok)
            return 1;
        usleep(50000);
    } while (th_now_s() < end);
    return 0;
}

START_TEST(test_database_restart_fails_cleanly_then_recovers_and_ready_follows)
{
    tk_pg_pool *p = pool_new(cluster_url, 2, 1000);
    /* a taskorad on the same database, for /ready */
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"postgres\": {\"url\": \"%s\"}, \"kafka\": {\"brokers\": \"127.0.0.1:1\"},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"}}",
             cluster_url);
    char *cfg = th_write(cluster_dir, "c.json", text);
    char *log = th_write(cluster_dir, "log", "");
    th_daemon d;
    ck_assert_int_eq(th_daemon_start(&d, cfg, log, 20000), 0);
    char ready[256];
    snprintf(ready, sizeof(ready), "%s/ready", d.url);
    th_response r;
    ck_assert_int_eq(th_http("GET", ready, NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ready\",\"database\":\"connected\"}");
    th_response_free(&r);

    tk_pg *c;
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    int pid_before = PQbackendPID(tk_pg_conn(c));
    tk_pg_release(c); /* idle in the pool while the server goes away */

    ck_assert_int_eq(th_pg_cluster_stop(cluster_dir), 0);
    /* while it is down: a clear error, no hang, no crash */
    double t0 = th_now_s();
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), TK_EUNAVAILABLE);
    ck_assert_msg(th_now_s() - t0 < 5, "acquire took %f s", th_now_s() - t0);
    ck_assert_int_eq(tk_pg_tx(p, insert_item, "x"), TK_EUNAVAILABLE);
    ck_assert_msg(wait_status(ready, 503, 10000), "/ready did not turn 503");
    ck_assert_int_eq(th_http("GET", ready, NULL, 0, NULL, &r), 0);
    ck_assert_str_eq(r.body, "{\"status\":\"not_ready\",\"database\":\"unreachable\"}");
    th_response_free(&r);

    ck_assert_int_eq(th_pg_cluster_start(cluster_dir, cluster_port), 0);
    /* back: the pool reconnects by itself, /ready follows */
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    char *one = value(c, "SELECT 1");
    ck_assert_str_eq(one, "1");
    free(one);
    ck_assert_int_ne(PQbackendPID(tk_pg_conn(c)), pid_before);
    tk_pg_release(c);
    ck_assert_msg(wait_status(ready, 200, 10000), "/ready did not come back to 200");
    char *text_m = tk_metrics_render(metrics, NULL);
    ck_assert_msg(strstr(text_m, "taskora_pg_errors_total{kind=\"connect\"}"), "%s", text_m);
    free(text_m);

    kill(d.pid, SIGINT); /* stops without the drain delay */
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    th_daemon_cleanup(&d);
    free(cfg);
    free(log);
    tk_pg_pool_free(p);
}
END_TEST

START_TEST(test_connection_killed_by_the_server_is_replaced)
{
    tk_pg_pool *p = pool_new(cluster_url, 1, 1000);
    tk_pg *c;
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    int pid = PQbackendPID(tk_pg_conn(c));
    tk_pg_release(c);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    char *v = th_pg_query1(cluster_url, sql);
    ck_assert_str_eq(v, "t");
    free(v);
    /* pg_terminate_backend only signals it: wait until the backend is gone */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
    double end = th_now_s() + 10;
    int gone = 0;
    while (!gone && th_now_s() < end) {
        v = th_pg_query1(cluster_url, sql);
        gone = strcmp(v, "0") == 0;
        free(v);
        if (!gone)
            usleep(10000);
    }
    ck_assert_msg(gone, "backend %d still there after 10 s", pid);
    ck_assert_int_eq(tk_pg_acquire(p, -1, &c), 0);
    ck_assert_int_ne(PQbackendPID(tk_pg_conn(c)), pid);
    v = value(c, "SELECT 'alive'");
    ck_assert_str_eq(v, "alive");
    free(v);
    tk_pg_release(c);
    tk_pg_pool_free(p);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_pg");
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pool_of_n_times_out_the_n_plus_first_and_reuses_released);
    tcase_add_test(tc, test_connection_returned_in_failed_transaction_is_clean_for_next_user);
    tcase_add_test(tc, test_every_libpq_parameter_comes_through_the_url);
    tcase_add_test(tc, test_tx_commits_on_success_and_rolls_back_on_failure);
    tcase_add_test(tc, test_once_applies_the_same_event_id_once);
    tcase_add_test(tc, test_a_batch_is_marked_processed_once_per_id_with_the_callers_transaction);
    tcase_add_test(tc, test_plugins_reach_the_pool_through_the_host_table);
    tcase_add_test(tc, test_taskorad_starts_without_its_database_and_says_so);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("restart");
    tcase_set_timeout(tr, 120);
    tcase_add_unchecked_fixture(tr, create_cluster, destroy_cluster);
    tcase_add_checked_fixture(tr, setup_cluster, teardown_cluster);
    tcase_add_test(tr, test_database_restart_fails_cleanly_then_recovers_and_ready_follows);
    tcase_add_test(tr, test_connection_killed_by_the_server_is_replaced);
    suite_add_tcase(s, tr);
    return th_run_suite(s);
}

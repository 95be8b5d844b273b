/* The process's PostgreSQL pool (libpq): bounded, thread-safe, self-healing. */
#include "pg_pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"

struct tk_pg {
    tk_pg_pool *pool;
    PGconn *conn; /* NULL until connected, or after a broken connection was dropped */
    int in_use;
};

struct tk_pg_pool {
    char *url, *app_id;
    char connect_timeout[16];
    int size, acquire_timeout_ms;
    tk_pg *slots;
    int in_use, waiters;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    /* /ready's probe: its own connection, so a busy pool does not look like a dead database */
    pthread_mutex_t probe_lock;
    PGconn *probe;
    struct timespec probe_at;
    int probe_ok;
    tk_metric_family *m_size, *m_in_use, *m_waiters, *m_wait, *m_errors;
};

static void count_error(tk_pg_pool *p, const char *kind)
{
    const char *v[] = {kind};
    tk_metric_add(p->m_errors, v, 1);
}

static void publish_gauges(tk_pg_pool *p)
{
    tk_metric_set(p->m_in_use, NULL, p->in_use);
    tk_metric_set(p->m_waiters, NULL, p->waiters);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Milliseconds left until deadline (0 when passed). */
static int ms_left(const struct timespec *deadline)
{
    struct timespec left = tk_time_left(deadline);
    if (left.tv_sec < 0)
        return 0;
    return (int)(left.tv_sec * 1000 + left.tv_nsec / 1000000);
}

/* Waits until c's socket is ready for `events` or the deadline passes. 1 ready, 0 timed out. */
static int wait_socket(PGconn *c, short events, const struct timespec *deadline)
{
    struct pollfd pfd = {.fd = PQsocket(c), .events = events};
    for (;;) {
        int ms = ms_left(deadline);
        if (ms == 0 || pfd.fd < 0)
            return 0;
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return 0;
    }
}

/*
 * Opens a connection within timeout_ms (never longer than the pool's connect
 * timeout): asynchronous, so a server that does not answer cannot hang us.
 * The URL's own parameters win over these defaults; keepalives make a
 * silently dead connection fail within about a minute instead of hanging.
 */
static PGconn *connect_db(tk_pg_pool *p, int timeout_ms)
{
    const char *keys[] = {
        "application_name", "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *vals[] = {p->app_id, "1", "30", "10", "3", "30000", p->url, NULL};
    int budget = atoi(p->connect_timeout) * 1000;
    if (timeout_ms < budget)
        budget = timeout_ms > 0 ? timeout_ms : 1;
    struct timespec deadline = tk_deadline_ms(budget);
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    const char *why = NULL;
    if (!c || PQstatus(c) == CONNECTION_BAD)
        why = c ? PQerrorMessage(c) : "out of memory";
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (!why && st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            why = PQerrorMessage(c);
        else if (!wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, &deadline))
            why = "timed out";
        else
            st = PQconnectPoll(c);
    }
    if (!why) {
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        return c;
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", why);
    msg[strcspn(msg, "\n")] = '\0';
    const char *kv[] = {"error", msg};
    tk_log_write(NULL, TK_LOG_WARN, "postgres: cannot connect", kv, 1);
    count_error(p, "connect");
    PQfinish(c);
    return NULL;
}

/* Runs a command within timeout_ms. 0 when it succeeded; -1 otherwise (drop the connection). */
static int exec_within(PGconn *c, const char *sql, int timeout_ms)
{
    struct timespec deadline = tk_deadline_ms(timeout_ms);
    if (!PQsendQuery(c, sql))
        return -1;
    int ok = 1;
    PGresult *r;
    for (;;) {
        while (PQisBusy(c)) {
            if (!wait_socket(c, POLLIN, &deadline) || !PQconsumeInput(c))
                return -1; /* results still pending: the connection is unusable */
        }
        if (!(r = PQgetResult(c)))
            break;
        ExecStatusType st = PQresultStatus(r);
        ok &= st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        PQclear(r);
    }
    return ok ? 0 : -1;
}

/*
 * Has the server closed this idle connection (restart, termination, idle
 * timeout)? An idle connection only receives something when that happens
 * (a FATAL message, then end of file), or for a notification: read what
 * is there until the socket is quiet or libpq sees the end.
 */
static int closed_by_server(PGconn *c)
{
    for (int round = 0; round < 4; round++) {
        if (PQstatus(c) != CONNECTION_OK)
            return 1;
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        if (pfd.fd < 0)
            return 1;
        if (poll(&pfd, 1, round ? 20 : 0) <= 0)
            return 0; /* nothing (more) to read: still open */
        if (!PQconsumeInput(c))
            return 1;
        PGnotify *n;
        while ((n = PQnotifies(c)))
            PQfreemem(n);
    }
    return PQstatus(c) != CONNECTION_OK;
}

tk_pg_pool *tk_pg_pool_new(const tk_pg_options *opt, tk_metrics *metrics, char *err, size_t errlen)
{
    if (!opt->url || !*opt->url || opt->size < 1 || opt->acquire_timeout_ms < 0) {
        snprintf(err, errlen, "postgres: a url and a pool_size of at least 1 are needed");
        return NULL;
    }
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(opt->url, &perr);
    if (!parsed) {
        snprintf(err, errlen, "postgres.url: %s", perr ? perr : "cannot be parsed");
        err[strcspn(err, "\n")] = '\0';
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(parsed);
    tk_pg_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->slots = calloc((size_t)opt->size, sizeof(tk_pg))) ||
        !(p->url = strdup(opt->url)) || !(p->app_id = strdup(opt->app_id ? opt->app_id : ""))) {
        if (p) {
            free(p->slots);
            free(p->url);
            free(p);
        }
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->size = opt->size;
    p->acquire_timeout_ms = opt->acquire_timeout_ms;
    snprintf(p->connect_timeout, sizeof(p->connect_timeout), "%d",
             opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 5);
    for (int i = 0; i < p->size; i++)
        p->slots[i].pool = p;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->probe_lock, NULL);
    tk_cond_init_monotonic(&p->freed);
    if (metrics) {
        char e[256];
        static const char *const kinds[] = {"kind", NULL};
        static const double wait_buckets[] = {0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
        p->m_size = tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_pg_pool_size",
                                      "Connections the pool may open", NULL, NULL, 0, e, sizeof(e));
        p->m_in_use = tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_pg_pool_in_use",
                                        "Connections borrowed now", NULL, NULL, 0, e, sizeof(e));
        p->m_waiters =
            tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_pg_pool_waiters",
                              "Callers waiting for a connection", NULL, NULL, 0, e, sizeof(e));
        p->m_wait =
            tk_metrics_family(metrics, TK_METRIC_HISTOGRAM, "taskora_pg_pool_acquire_seconds",
                              "Time spent waiting to borrow a connection", NULL, wait_buckets,
                              sizeof(wait_buckets) / sizeof(double), e, sizeof(e));
        p->m_errors = tk_metrics_family(
            metrics, TK_METRIC_COUNTER, "taskora_pg_errors_total",
            "Pool failures: connect, timeout (no free connection), broken (dropped connection)",
            kinds, NULL, 0, e, sizeof(e));
        tk_metric_set(p->m_size, NULL, p->size);
        publish_gauges(p);
    }
    return p;
}

void tk_pg_pool_free(tk_pg_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        PQfinish(p->slots[i].conn);
    PQfinish(p->probe);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->probe_lock);
    pthread_cond_destroy(&p->freed);
    free(p->slots);
    free(p->url);
    free(p->app_id);
    free(p);
}

/* A free slot, preferring one already connected; NULL when all are borrowed. Lock held. */
static tk_pg *take_slot(tk_pg_pool *p)
{
    tk_pg *unconnected = NULL;
    for (int i = 0; i < p->size; i++) {
        tk_pg *s = &p->slots[i];
        if (s->in_use)
            continue;
        if (s->conn) {
            s->in_use = 1;
            return s;
        }
        if (!unconnected)
            unconnected = s;
    }
    if (unconnected)
        unconnected->in_use = 1;
    return unconnected;
}

static void give_back(tk_pg *s)
{
    tk_pg_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    s->in_use = 0;
    p->in_use--;
    publish_gauges(p);
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

int tk_pg_acquire(tk_pg_pool *p, int timeout_ms, tk_pg **out)
{
    *out = NULL;
    if (timeout_ms < 0)
        timeout_ms = p->acquire_timeout_ms;
    struct timespec start, deadline = tk_deadline_ms(timeout_ms);
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_mutex_lock(&p->lock);
    tk_pg *s;
    int rc = 0;
    while (!(s = take_slot(p))) {
        p->waiters++;
        publish_gauges(p);
        rc = pthread_cond_timedwait(&p->freed, &p->lock, &deadline);
        p->waiters--;
        publish_gauges(p);
        if (rc == ETIMEDOUT) {
            s = take_slot(p); /* one may have come free with the timeout */
            break;
        }
    }
    if (s) {
        p->in_use++;
        publish_gauges(p);
    }
    pthread_mutex_unlock(&p->lock);
    tk_metric_observe(p->m_wait, NULL, tk_seconds_since(&start));
    if (!s) {
        char ms[16], size[16];
        snprintf(ms, sizeof(ms), "%d", timeout_ms);
        snprintf(size, sizeof(size), "%d", p->size);
        const char *kv[] = {"timeout_ms", ms, "pool_size", size};
        tk_log_write(NULL, TK_LOG_WARN, "postgres: no pooled connection came free in time", kv, 2);
        count_error(p, "timeout");
        return TK_ETIMEDOUT;
    }
    /* outside the lock: checking and connecting may take a while */
    if (s->conn && closed_by_server(s->conn)) {
        count_error(p, "broken");
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (!s->conn &&
        !(s->conn = connect_db(p, ms_left(&deadline) > 0 ? ms_left(&deadline) : timeout_ms))) {
        give_back(s);
        return TK_EUNAVAILABLE;
    }
    *out = s;
    return 0;
}

void tk_pg_release(tk_pg *s)
{
    if (!s)
        return;
    PGconn *c = s->conn;
    int keep = c && PQstatus(c) == CONNECTION_OK;
    if (c && !keep)
        count_error(s->pool, "broken");
    /* client-side state a borrower may have changed */
    if (keep && PQpipelineStatus(c) != PQ_PIPELINE_OFF)
        keep = 0;
    if (keep) {
        PQsetnonblocking(c, 0);
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        switch (PQtransactionStatus(c)) {
        case PQTRANS_IDLE: break;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR:
            /* the previous user left a transaction open or failed: never hand that on */
            keep = exec_within(c, "ROLLBACK", 2000) == 0 && PQtransactionStatus(c) == PQTRANS_IDLE;
            break;
        default: /* a query still running, or unknown: cannot be reused safely */ keep = 0;
        }
    }
    if (c && !keep) {
        PQfinish(c);
        s->conn = NULL;
    }
    give_back(s);
}

PGconn *tk_pg_conn(tk_pg *c) { return c ? c->conn : NULL; }

int tk_pg_pool_reachable(tk_pg_pool *p)
{
    /* one probe at a time; callers meanwhile get the last answer */
    if (pthread_mutex_trylock(&p->probe_lock) != 0) {
        pthread_mutex_lock(&p->lock);
        int ok = p->probe_ok;
        pthread_mutex_unlock(&p->lock);
        return ok;
    }
    int ok;
    if (p->probe_at.tv_sec && tk_seconds_since(&p->probe_at) < 0.5) {
        ok = p->probe_ok;
    } else {
        if (p->probe && closed_by_server(p->probe)) {
            PQfinish(p->probe);
            p->probe = NULL;
        }
        if (!p->probe)
            p->probe = connect_db(p, 1000);
        ok = p->probe && exec_within(p->probe, "SELECT 1", 1000) == 0;
        if (!ok && p->probe) {
            PQfinish(p->probe);
            p->probe = NULL;
        }
        pthread_mutex_lock(&p->lock);
        p->probe_ok = ok;
        pthread_mutex_unlock(&p->lock);
        clock_gettime(CLOCK_MONOTONIC, &p->probe_at);
    }
    pthread_mutex_unlock(&p->probe_lock);
    return ok;
}

static int exec_cmd(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

/*
 * The code for a failure on c (r: the failed result, or NULL): a lost connection is
 * "unavailable", and so is an error that says the connection is going (class 08, or 57P01-03:
 * terminated by an administrator, a crash or shutdown) even before libpq saw it close; anything
 * else is an error.
 */
static int failure_of(PGconn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(c) != CONNECTION_OK ||
        (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)))
        return TK_EUNAVAILABLE;
    return TK_ERR;
}

static int failure(PGconn *c) { return failure_of(c, NULL); }

int tk_pg_mark_processed(PGconn *conn, const char *group, const char *const *event_ids, size_t n,
                         int *fresh)
{
    if (!conn || !group || !*group || (n && (!event_ids || !fresh)))
        return TK_EINVAL;
    if (n == 0)
        return TK_OK;
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < n; i++) {
        if (!event_ids[i] || json_array_append_new(ids, json_string(event_ids[i])) != 0) {
            json_decref(ids);
            return event_ids[i] ? TK_ENOMEM : TK_EINVAL;
        }
        fresh[i] = 0;
    }
    char *text = ids ? json_dumps(ids, JSON_COMPACT) : NULL;
    json_decref(ids);
    if (!text)
        return TK_ENOMEM;
    const char *params[] = {group, text};
    PGresult *r =
        PQexecParams(conn,
                     "INSERT INTO taskora_processed_events (consumer_group, event_id)"
                     " SELECT DISTINCT $1::text, e FROM jsonb_array_elements_text($2::jsonb) e"
                     " ORDER BY e" /* one lock order for overlapping batches */
                     " ON CONFLICT DO NOTHING RETURNING event_id",
                     2, NULL, params, NULL, NULL, 0);
    free(text);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
        why[strcspn(why, "\n")] = '\0';
        const char *kv[] = {"error", why};
        tk_log_write(NULL, TK_LOG_ERROR, "postgres: recording processed events failed", kv, 1);
        PQclear(r);
        return TK_ERR;
    }
    /* each returned id marks its first occurrence in the batch as fresh */
    for (int row = 0; row < PQntuples(r); row++) {
        const char *id = PQgetvalue(r, row, 0);
        for (size_t i = 0; i < n; i++)
            if (strcmp(event_ids[i], id) == 0) {
                fresh[i] = 1;
                break;
            }
    }
    PQclear(r);
    return TK_OK;
}

/* One try of run_tx. *again is set when trying once more may succeed (stale connection,
 * serialization failure) and nothing was done. */
static int run_tx_once(tk_pg_pool *p, const char *group, const char *event_id,
                       int (*fn)(void *conn, void *ud), void *ud, int *duplicate, int *again)
{
    tk_pg *s;
    int rc = tk_pg_acquire(p, -1, &s);
    if (rc)
        return rc;
    PGconn *c = s->conn;
    if (exec_cmd(c, "BEGIN")) {
        rc = failure(c);
        *again = PQstatus(c) != CONNECTION_OK; /* it died while idle: nothing ran */
        tk_pg_release(s);
        return rc;
    }
    if (group) {
        const char *params[] = {group, event_id};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO taskora_processed_events (consumer_group, event_id)"
                                   " VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                   2, NULL, params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int inserted = ok && strcmp(PQcmdTuples(r), "1") == 0;
        if (!ok) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            /* under REPEATABLE READ / SERIALIZABLE a concurrent repeat fails here; a new
             * snapshot sees it as a duplicate */
            *again = state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
            if (!*again) {
                char why[512];
                snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
                why[strcspn(why, "\n")] = '\0';
                const char *kv[] = {"error", why};
                tk_log_write(NULL, TK_LOG_ERROR, "postgres: recording a processed event failed", kv,
                             1);
            }
        }
        PQclear(r);
        if (!ok || !inserted) {
            rc = ok ? 0 : failure(c);
            if (ok)
                *duplicate = 1;
            tk_pg_release(s); /* rolls back */
            return rc;
        }
    }
    rc = fn(c, ud);
    if (rc >= 0 && PQtransactionStatus(c) == PQTRANS_IDLE) {
        /* fn ended the transaction itself: what it did is not what we promised to commit */
        tk_logf(NULL, TK_LOG_ERROR,
                "postgres: a transaction function ran COMMIT or ROLLBACK "
                "itself; it must return instead");
        rc = TK_ESTATE;
    } else if (rc >= 0) {
        /* COMMIT of a transaction in which a statement failed answers "ROLLBACK" */
        PGresult *r = PQexec(c, "COMMIT");
        int committed =
            PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
        if (!committed)
            rc = failure_of(c, r);
        PQclear(r);
    }
    tk_pg_release(s); /* rolls back whatever did not commit */
    return rc;
}

static int run_tx(tk_pg_pool *p, const char *group, const char *event_id,
                  int (*fn)(void *conn, void *ud), void *ud, int *duplicate)
{
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        int again = 0;
        rc = run_tx_once(p, group, event_id, fn, ud, duplicate, &again);
        if (!again)
            break;
    }
    return rc;
}

int tk_pg_tx(tk_pg_pool *p, int (*fn)(void *conn, void *ud), void *ud)
{
    return run_tx(p, NULL, NULL, fn, ud, NULL);
}

int tk_pg_once(tk_pg_pool *p, const char *group, const char *event_id,
               int (*fn)(void *conn, void *ud), void *ud, int *duplicate)
{
    *duplicate = 0;
    if (!group || !*group || !event_id || !*event_id)
        return TK_EINVAL;
    return run_tx(p, group, event_id, fn, ud, duplicate);
}

/* Helpers the scheduler, the webhook sender, the consumer and the routes share. */
#include <errno.h>
#include <time.h>

#include "notif.h"

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void notif_wait_signal(notif *n, pthread_cond_t *cond, int *flag, int64_t ms)
{
    struct timespec until;
    deadline_after(&until, ms > 0 ? ms : 0);
    pthread_mutex_lock(&n->lock);
    while (!*flag && !atomic_load(&n->stopping))
        if (pthread_cond_timedwait(cond, &n->lock, &until) == ETIMEDOUT)
            break;
    *flag = 0;
    pthread_mutex_unlock(&n->lock);
}

void notif_signal(notif *n, pthread_cond_t *cond, int *flag)
{
    pthread_mutex_lock(&n->lock);
    *flag = 1;
    pthread_cond_signal(cond);
    pthread_mutex_unlock(&n->lock);
}

int notif_pg_fail(notif *n, PGconn *conn, PGresult *r, const char *what)
{
    int broken = PQstatus(conn) == CONNECTION_BAD;
    const char *e = r ? PQresultErrorMessage(r) : "";
    n->host->log(n->inst, broken ? TK_LOG_WARN : TK_LOG_ERROR, "%s failed: %s", what,
                 *e ? e : PQerrorMessage(conn));
    PQclear(r);
    return broken ? TK_EUNAVAILABLE : TK_ERR;
}

int notif_pg_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

void notif_count_error(notif *n, const char *stage)
{
    const char *v[] = {stage};
    n->host->metric_add(n->m_errors, v, 1);
}

int64_t notif_error_backoff_ms(notif *n, int failures)
{
    int64_t ms = 250;
    for (int i = 1; i < failures && ms < NOTIF_MAX_ERROR_BACKOFF_MS; i++)
        ms *= 2;
    if (ms > NOTIF_MAX_ERROR_BACKOFF_MS)
        ms = NOTIF_MAX_ERROR_BACKOFF_MS;
    return ms < n->poll_ms ? ms : n->poll_ms;
}

int notif_exec_pooled(notif *n, const char *sql, int np, const char *const *p, PGresult **out,
                      const char *what)
{
    tk_pg *pg;
    int rc = n->host->pg_acquire(n->inst, -1, &pg);
    if (rc < 0)
        return rc;
    PGconn *conn = n->host->pg_conn(pg);
    PGresult *r = PQexecParams(conn, sql, np, NULL, p, NULL, NULL, 0);
    if (!notif_pg_ok(r))
        rc = notif_pg_fail(n, conn, r, what);
    else if (out)
        *out = r;
    else
        PQclear(r);
    n->host->pg_release(pg);
    return rc;
}

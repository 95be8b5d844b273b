/* The process's PostgreSQL pool (libpq): bounded, thread-safe, self-healing. */
#ifndef TK_CORE_PG_POOL_H
#define TK_CORE_PG_POOL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "metrics.h"

typedef struct tk_pg_pool tk_pg_pool;
typedef struct tk_pg tk_pg; /* a borrowed connection */

typedef struct tk_pg_options {
    const char *url;        /* libpq URL or conninfo; TLS and every parameter go in it */
    int size;               /* connections at most */
    int acquire_timeout_ms; /* default wait for a free connection */
    int connect_timeout_s;  /* used when the URL sets no connect_timeout */
    const char *app_id;     /* application_name, when the URL sets none */
} tk_pg_options;

/*
 * Creates a pool. It connects lazily, so a database that is down does not
 * stop start-up. `metrics` may be NULL. NULL (reason in err) on bad options.
 */
tk_pg_pool *tk_pg_pool_new(const tk_pg_options *opt, tk_metrics *metrics, char *err, size_t errlen);
/* Closes every connection. All borrowed connections must have been released. */
void tk_pg_pool_free(tk_pg_pool *p);

/*
 * Borrows a connection, waiting up to timeout_ms (< 0: the pool's default).
 * 0 with *out set; TK_ETIMEDOUT when none came free in time; TK_EUNAVAILABLE
 * when the database cannot be reached (the reason is logged). A connection
 * the server closed while idle is replaced before it is handed out. Any thread.
 */
int tk_pg_acquire(tk_pg_pool *p, int timeout_ms, tk_pg **out);
/*
 * Gives it back. An open or failed transaction is rolled back first; a
 * broken connection, or one with a query still running, is closed and
 * replaced on a later acquire. Any thread.
 */
void tk_pg_release(tk_pg *c);
PGconn *tk_pg_conn(tk_pg *c);

/* Non-zero when the database answers (checked at most every 500 ms, on its own connection). */
int tk_pg_pool_reachable(tk_pg_pool *p);

/*
 * Runs fn(conn, ud) in a transaction on a borrowed connection: COMMIT when
 * fn returns >= 0, else ROLLBACK. Returns fn's result, or a negative code
 * when no connection could be had or BEGIN/COMMIT failed.
 */
int tk_pg_tx(tk_pg_pool *p, int (*fn)(void *conn, void *ud), void *ud);
/*
 * Like tk_pg_tx, but first records (group, event_id) in
 * taskora_processed_events in the same transaction. When the pair is
 * already there, fn does not run, nothing changes, *duplicate is set to 1
 * and 0 is returned.
 */
/* The host table's pg_mark_processed (see plugin.h): records a batch's event ids on conn. */
int tk_pg_mark_processed(PGconn *conn, const char *group, const char *const *event_ids, size_t n,
                         int *fresh);
int tk_pg_once(tk_pg_pool *p, const char *group, const char *event_id,
               int (*fn)(void *conn, void *ud), void *ud, int *duplicate);

#endif

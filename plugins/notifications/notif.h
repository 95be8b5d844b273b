/* The notifications plugin's shared state and helpers (not part of any ABI). */
#ifndef NOTIFICATIONS_NOTIF_H
#define NOTIFICATIONS_NOTIF_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <taskora/plugin.h>

#define NOTIF_VERSION "0.2.0"

/* The longest pause after a database error (the scheduler and the sender retry until stopped). */
#define NOTIF_MAX_ERROR_BACKOFF_MS 5000

typedef struct notif {
    const tk_host *host;
    tk_instance *inst;
    const char *task_topic;
    int scheduler;
    int64_t poll_ms, batch, settle_ms;
    const char *webhook_url, *webhook_secret;
    int64_t webhook_timeout_ms, webhook_max_attempts;
    char target[192]; /* resiliency target "webhook.<instance>" */

    tk_metric *m_fired, *m_lag, *m_webhook, *m_errors;

    pthread_mutex_t lock;
    pthread_cond_t sched_cond, hook_cond; /* CLOCK_MONOTONIC */
    int sched_wake, hook_wake;            /* coalesced signals, under lock */
    atomic_int stopping;
    pthread_t sched_thread, hook_thread;
    int sched_started, hook_started;
    int curl_ready;
} notif;

/* ---- util.c ---- */

/* Sleeps up to ms on cond, returning early when *flag is set (then cleared) or on stop. */
void notif_wait_signal(notif *n, pthread_cond_t *cond, int *flag, int64_t ms);
/* Sets *flag and wakes the thread waiting on cond. */
void notif_signal(notif *n, pthread_cond_t *cond, int *flag);
/* A failed statement's code (logged): unreachable when the connection broke, else TK_ERR.
 * Clears r. */
int notif_pg_fail(notif *n, PGconn *conn, PGresult *r, const char *what);
/* Whether a statement succeeded. */
int notif_pg_ok(const PGresult *r);
/* Counts a database error of a stage ("scheduler", "webhook", "consumer"). */
void notif_count_error(notif *n, const char *stage);
/* The pause after `failures` failed rounds in a row: 250 ms doubling, at most poll_ms. */
int64_t notif_error_backoff_ms(notif *n, int failures);
/* Runs a statement on a pooled connection; *out (when not NULL) gets its result. 0 ok, else the
 * pool's or the statement's code. */
int notif_exec_pooled(notif *n, const char *sql, int np, const char *const *p, PGresult **out,
                      const char *what);

/* ---- scheduler.c: firing due reminders ---- */
void *notif_scheduler_main(void *arg);

/* ---- webhooks.c: sending webhook deliveries ---- */
void *notif_webhook_main(void *arg);

/* ---- routes.c: GET /api/notifications, POST /api/notifications/{id}/read ---- */
int notif_routes(notif *n);

/* ---- schedule.c: the reminder schedule, fed by task and user events ---- */
tk_consume_result notif_consume(void *state, const tk_event *ev);

/* ---- schema.c ---- */
extern const char *const notif_migrations[];

#endif

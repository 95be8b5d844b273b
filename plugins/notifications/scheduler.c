/*
 * Firing due reminders, exactly once across pods.
 *
 * The schedule is this plugin's own table, notification_reminders (schedule.c keeps it from the
 * task events). A scheduler thread sleeps until the earliest pending reminder (or poll_ms, or
 * until a consumed task event says the schedule may have changed), then claims due rows with
 * FOR UPDATE SKIP LOCKED and, in that one transaction, marks them sent, writes the notification
 * rows, appends the task.reminder events to the outbox and queues the webhook deliveries (whose
 * body is the event exactly as it is published). Nothing is kept in memory, so a restart, a
 * second pod or a lost wake-up changes nothing: the next round reads the truth.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kit/kit.h"
#include "notif.h"

/* Claims due reminders: the row lock makes one pod the owner, SKIP LOCKED lets the others move
 * on, and the re-check under the lock excludes a row another pod just marked sent. A row an
 * event changed less than settle_ms ago ($2) waits: events that come together (a consumer
 * catching up after a start or a rebalance) are applied one by one within milliseconds, and a
 * completion or deletion right behind the event that set a reminder must win. The last
 * column is true for a reminder the version before this schedule already notified: a row copied
 * from tasks by the upgrade (backfilled) that has a notification at or after its time. Such a
 * row is marked sent without firing again. */
#define DUE_ISO KIT_SQL_ISO_UTC("r.due_date")
#define REMINDER_ISO KIT_SQL_ISO_UTC("r.reminder_at")
static const char CLAIM_SQL[] =
    "WITH due AS (SELECT task_id FROM notification_reminders"
    " WHERE reminder_at IS NOT NULL AND reminder_at <= (now() AT TIME ZONE 'utc')"
    " AND NOT sent AND NOT completed"
    " AND updated_at <= now() - make_interval(secs => $2::int / 1000.0)"
    " ORDER BY reminder_at, task_id LIMIT $1::int FOR UPDATE SKIP LOCKED)"
    " UPDATE notification_reminders r SET sent = true, updated_at = now() FROM due"
    " WHERE r.task_id = due.task_id"
    " RETURNING r.task_id, r.user_id, r.title, " DUE_ISO ", " REMINDER_ISO ","
    " to_char(r.due_date, 'YYYY-MM-DD HH24:MI'),"
    " extract(epoch FROM (now() AT TIME ZONE 'utc') - r.reminder_at)::float8,"
    " r.backfilled AND EXISTS (SELECT 1 FROM notifications n WHERE n.task_id = r.task_id"
    " AND n.type = 'reminder' AND n.created_at >= r.reminder_at)";

enum { C_TASK, C_USER, C_TITLE, C_DUE, C_REMINDER, C_DUE_TEXT, C_LAG, C_NOTIFIED };

/* Milliseconds from now until the earliest pending reminder may fire (NULL: none). */
static const char NEXT_SQL[] =
    "SELECT ceil(extract(epoch FROM min(greatest(reminder_at, (updated_at"
    " + make_interval(secs => $1::int / 1000.0)) AT TIME ZONE 'utc'))"
    " - (clock_timestamp() AT TIME ZONE 'utc')) * 1000)::bigint FROM notification_reminders"
    " WHERE reminder_at IS NOT NULL AND NOT sent AND NOT completed";

static const char NOTIFICATION_SQL[] =
    "INSERT INTO notifications (user_id, task_id, type, title, message, event_id)"
    " VALUES ($1, $2::int, 'reminder', $3, $4, $5)";

static const char DELIVERY_SQL[] =
    "INSERT INTO notification_webhooks (instance, event_id, body) VALUES ($1, $2, $3)";

typedef struct claim {
    notif *n;
    int claimed; /* rows claimed (fired or found notified before) */
    int fired;
    int queued; /* webhook deliveries */
    int64_t next_ms;
    int has_next;
    double lags[1000]; /* of the fired ones; batch is at most 1000 */
} claim;

/* The task.reminder payload of claimed row i, as JSON text (malloc'd) or NULL. */
static char *reminder_payload(PGresult *r, int i)
{
    json_t *payload = json_pack(
        "{s:I,s:s,s:s?,s:s,s:s}", "task_id",
        (json_int_t)strtoll(PQgetvalue(r, i, C_TASK), NULL, 10), "title", PQgetvalue(r, i, C_TITLE),
        "due_date", PQgetisnull(r, i, C_DUE) ? NULL : PQgetvalue(r, i, C_DUE), "reminder_at",
        PQgetvalue(r, i, C_REMINDER), "reminder_type", "custom");
    char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(payload);
    return text;
}

/* The webhook delivery of one event: its body is the event as published. */
static int queue_delivery(notif *n, PGconn *conn, const char *event_id, const char *body)
{
    const char *dp[] = {n->host->instance_name(n->inst), event_id, body};
    PGresult *x = PQexecParams(conn, DELIVERY_SQL, 3, NULL, dp, NULL, NULL, 0);
    if (!notif_pg_ok(x))
        return notif_pg_fail(n, conn, x, "queueing a webhook delivery");
    PQclear(x);
    return TK_OK;
}

/* One reminder: its event, its notification row and its webhook delivery. */
static int fire_one(notif *n, PGconn *conn, PGresult *r, int i)
{
    const char *id = PQgetvalue(r, i, C_TASK), *user = PQgetvalue(r, i, C_USER),
               *title = PQgetvalue(r, i, C_TITLE);
    char *payload = reminder_payload(r, i);
    if (!payload)
        return TK_ENOMEM;
    char event_id[37] = "";
    char *event = NULL;
    int rc = n->host->outbox_append_event(n->inst, conn, n->task_topic, "task.reminder", user, id,
                                          payload, NULL, event_id, *n->webhook_url ? &event : NULL);
    free(payload);
    if (rc < 0)
        return PQstatus(conn) == CONNECTION_BAD ? TK_EUNAVAILABLE : rc;
    char message[512];
    if (PQgetisnull(r, i, C_DUE_TEXT))
        snprintf(message, sizeof(message), "Reminder: %s", title);
    else
        snprintf(message, sizeof(message), "Reminder: %s (due %s UTC)", title,
                 PQgetvalue(r, i, C_DUE_TEXT));
    const char *np[] = {user, id, title, message, event_id};
    PGresult *x = PQexecParams(conn, NOTIFICATION_SQL, 5, NULL, np, NULL, NULL, 0);
    if (!notif_pg_ok(x)) {
        n->host->free(event);
        return notif_pg_fail(n, conn, x, "inserting a notification");
    }
    PQclear(x);
    if (*n->webhook_url)
        rc = event ? queue_delivery(n, conn, event_id, event) : TK_ENOMEM;
    n->host->free(event);
    if (rc < 0)
        return rc;
    if (n->host->log_enabled(n->inst, TK_LOG_DEBUG))
        n->host->log_kv(n->inst, TK_LOG_DEBUG, "reminder fired", "task_id", id, "user_id", user,
                        "event_id", event_id, NULL);
    return TK_OK;
}

/* pg_tx work: claims up to `batch` due reminders and fires each; then reads the next due time. */
static int claim_fn(void *conn_v, void *ud)
{
    PGconn *conn = conn_v;
    claim *c = ud;
    notif *n = c->n;
    char limit[24], settle[24];
    snprintf(limit, sizeof(limit), "%lld", (long long)n->batch);
    snprintf(settle, sizeof(settle), "%lld", (long long)n->settle_ms);
    const char *p[] = {limit, settle};
    PGresult *r = PQexecParams(conn, CLAIM_SQL, 2, NULL, p, NULL, NULL, 0);
    if (!notif_pg_ok(r))
        return notif_pg_fail(n, conn, r, "claiming due reminders");
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        if (PQgetvalue(r, i, C_NOTIFIED)[0] == 't') {
            n->host->log_kv(n->inst, TK_LOG_INFO, "reminder already notified before the upgrade",
                            "task_id", PQgetvalue(r, i, C_TASK), NULL);
            continue;
        }
        int rc = fire_one(n, conn, r, i);
        if (rc < 0) {
            PQclear(r);
            return rc;
        }
        c->lags[c->fired++] = strtod(PQgetvalue(r, i, C_LAG), NULL);
    }
    PQclear(r);
    c->claimed = rows;
    c->queued = *n->webhook_url ? c->fired : 0;
    if (rows < n->batch) {
        r = PQexecParams(conn, NEXT_SQL, 1, NULL, p + 1, NULL, NULL, 0);
        if (!notif_pg_ok(r))
            return notif_pg_fail(n, conn, r, "reading the next reminder's time");
        c->has_next = !PQgetisnull(r, 0, 0);
        c->next_ms = c->has_next ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        PQclear(r);
    }
    return TK_OK;
}

/* One scheduler round: fires everything due (batch by batch); *wait_ms = time to the next. */
static int scheduler_round(notif *n, int64_t *wait_ms)
{
    claim *c = malloc(sizeof(*c));
    if (!c)
        return TK_ENOMEM;
    int rc;
    for (;;) {
        memset(c, 0, offsetof(claim, lags));
        c->n = n;
        rc = n->host->pg_tx(n->inst, claim_fn, c);
        if (rc < 0)
            break;
        if (c->fired > 0) {
            n->host->metric_add(n->m_fired, NULL, c->fired);
            for (int i = 0; i < c->fired; i++)
                n->host->metric_observe(n->m_lag, NULL, c->lags[i] > 0 ? c->lags[i] : 0);
            n->host->log(n->inst, TK_LOG_INFO, "fired %d reminder(s)", c->fired);
        }
        if (c->queued > 0)
            notif_signal(n, &n->hook_cond, &n->hook_wake);
        if (c->claimed < n->batch || atomic_load(&n->stopping))
            break;
    }
    if (rc >= 0) {
        *wait_ms = n->poll_ms;
        if (c->has_next && c->next_ms < *wait_ms)
            /* a due row we could not claim is being fired by another pod: look again soon */
            *wait_ms = c->next_ms > 0 ? c->next_ms : 20;
    }
    free(c);
    return rc;
}

void *notif_scheduler_main(void *arg)
{
    notif *n = arg;
    int failures = 0;
    n->host->log(n->inst, TK_LOG_INFO, "scheduler started (poll %lld ms, batch %lld)",
                 (long long)n->poll_ms, (long long)n->batch);
    while (!atomic_load(&n->stopping)) {
        int64_t wait_ms = n->poll_ms;
        int rc = scheduler_round(n, &wait_ms);
        if (rc < 0) {
            notif_count_error(n, "scheduler");
            if (++failures == 1)
                n->host->log(n->inst, TK_LOG_WARN,
                             "scheduler: %s; due reminders wait until the database answers "
                             "(retrying with backoff)",
                             tk_strerror(rc));
            wait_ms = notif_error_backoff_ms(n, failures);
        } else if (failures) {
            n->host->log(n->inst, TK_LOG_INFO,
                         "scheduler: the database answers again (after %d "
                         "failed round(s))",
                         failures);
            failures = 0;
        }
        notif_wait_signal(n, &n->sched_cond, &n->sched_wake, wait_ms);
    }
    return NULL;
}

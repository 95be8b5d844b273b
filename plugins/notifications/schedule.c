/*
 * The reminder schedule: notification_reminders, one row per task with what a reminder needs
 * (user, title, due_date, reminder_at, completed, sent), kept by this plugin alone from the
 * events it consumes (task-events and user-events). It reads no other plugin's table; the one
 * exception is migration step 2's copy of tasks (schema.c).
 *
 * How each event changes it (task.updated carries only the fields that changed, so a row is
 * patched field by field):
 *   task.created    the row: user, title, due_date, reminder_at, completed (a task may be
 *                   created done; false when the event does not say, as older ones do not);
 *                   not sent
 *   task.updated    each field it carries: title, due_date, completed; a reminder_at re-arms the
 *                   reminder (not sent); reminder_sent: true (POST .../reminder/sent) marks it sent
 *   task.completed  completed (a reopened task's unsent reminder is pending again)
 *   task.recurred   the new instance: the original's title, due_date = next_due_date
 *   task.deleted    the row goes
 *   task.reminder   sent, when its reminder_at is the row's (one fired by a pod of the version
 *                   before this schedule; this plugin's own firings are already sent)
 *   user.deleted    the user's rows go and the user is remembered (notification_deleted_users):
 *                   a deleted user's task events, which may still arrive since user-events and
 *                   task-events are not ordered with each other, are ignored
 * Each event is applied once per consumer group (pg_once). One user's task events arrive in
 * order (keyed by user id), so a task's events apply in order; different users' events touch
 * different rows, in any order. A transaction-scoped advisory lock per user serialises a
 * user.deleted with that user's task events handled at the same time on other partitions.
 * Events of a task the migration copied (id <= notification_backfill.last_task_id) published
 * before the copy (time < done_at) are already in the copy and are ignored.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notif.h"

/* One transaction at a time per user (the first key is this plugin's: "noti"). */
static const char LOCK_SQL[] = "SELECT pg_advisory_xact_lock(1852798057, hashtext($1))";

/* Whether the event is to be ignored: its user was deleted, or the migration's copy holds it. */
static const char IGNORED_SQL[] =
    "SELECT EXISTS (SELECT 1 FROM notification_deleted_users WHERE user_id = $1)"
    " OR EXISTS (SELECT 1 FROM notification_backfill"
    " WHERE $2::bigint <= last_task_id AND $3::timestamptz < done_at)";

/* $3 title (NULL: unchanged); $4/$6 whether due_date/reminder_at change, to $5/$7 (NULL:
 * none); $8 completed, $9 sent (NULL: unchanged). A row not there yet is made from what the
 * event carries. */
static const char UPSERT_SQL[] =
    "INSERT INTO notification_reminders AS r (task_id, user_id, title, due_date, reminder_at,"
    " completed, sent) VALUES ($1::int, $2, coalesce($3, ''),"
    " $5::timestamptz AT TIME ZONE 'utc', $7::timestamptz AT TIME ZONE 'utc',"
    " coalesce($8::bool, false), coalesce($9::bool, false))"
    " ON CONFLICT (task_id) DO UPDATE SET title = coalesce($3, r.title),"
    " due_date = CASE WHEN $4::bool THEN EXCLUDED.due_date ELSE r.due_date END,"
    " reminder_at = CASE WHEN $6::bool THEN EXCLUDED.reminder_at ELSE r.reminder_at END,"
    " completed = coalesce($8::bool, r.completed), sent = coalesce($9::bool, r.sent),"
    " backfilled = r.backfilled AND NOT $6::bool, updated_at = now()";

static const char RECURRED_SQL[] =
    "INSERT INTO notification_reminders (task_id, user_id, title, due_date)"
    " VALUES ($1::int, $2, coalesce((SELECT title FROM notification_reminders"
    " WHERE task_id = $3::int), ''), $4::timestamptz AT TIME ZONE 'utc')"
    " ON CONFLICT (task_id) DO NOTHING";

static const char DELETED_SQL[] = "DELETE FROM notification_reminders WHERE task_id = $1::int";

static const char REMINDED_SQL[] =
    "UPDATE notification_reminders SET sent = true, updated_at = now()"
    " WHERE task_id = $1::int AND reminder_at = ($2::timestamptz AT TIME ZONE 'utc')"
    " AND NOT sent";

static const char USER_DELETED_SQL[] =
    "WITH gone AS (INSERT INTO notification_deleted_users (user_id) VALUES ($1)"
    " ON CONFLICT (user_id) DO NOTHING)"
    " DELETE FROM notification_reminders WHERE user_id = $1";

typedef enum change_kind {
    K_NONE,         /* nothing to do with the schedule */
    K_UPSERT,       /* task.created, task.updated, task.completed */
    K_RECURRED,     /* task.recurred */
    K_DELETED,      /* task.deleted */
    K_REMINDED,     /* task.reminder */
    K_USER_DELETED, /* user.deleted */
} change_kind;

/* One event's change to the schedule, read from its payload. */
typedef struct change {
    notif *n;
    const tk_event *ev;
    change_kind kind;
    char task[24];     /* the task row the event is about */
    char original[24]; /* task.recurred: the task it recurs from */
    const char *title; /* NULL: unchanged */
    int set_due, set_reminder;
    const char *due, *reminder; /* NULL: none */
    int completed, sent;        /* -1: unchanged */
    int ignored;                /* not applied: a deleted user's, or held by the copy */
} change;

static change_kind kind_of(const char *type)
{
    static const struct {
        const char *type;
        change_kind kind;
    } kinds[] = {
        {"task.created", K_UPSERT},       {"task.updated", K_UPSERT},
        {"task.completed", K_UPSERT},     {"task.recurred", K_RECURRED},
        {"task.deleted", K_DELETED},      {"task.reminder", K_REMINDED},
        {"user.deleted", K_USER_DELETED},
    };
    for (size_t i = 0; type && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(type, kinds[i].type) == 0)
            return kinds[i].kind;
    return K_NONE;
}

/* A task id (a positive JSON integer within PostgreSQL's integer) into out; -1 when not. */
static int read_id(json_t *payload, const char *key, char out[24])
{
    json_t *v = json_object_get(payload, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2147483647)
        return -1;
    snprintf(out, 24, "%lld", (long long)json_integer_value(v));
    return 0;
}

/* A time field: *set when the payload carries it, *out its text (NULL for null); -1 when it is
 * neither a string nor null. */
static int read_time(json_t *payload, const char *key, int *set, const char **out)
{
    json_t *v = json_object_get(payload, key);
    *set = v != NULL;
    *out = json_is_string(v) ? json_string_value(v) : NULL;
    return !v || json_is_null(v) || json_is_string(v) ? 0 : -1;
}

/* A boolean field into *out (1/0; untouched when absent); -1 when it is not a boolean. */
static int read_flag(json_t *payload, const char *key, int *out)
{
    json_t *v = json_object_get(payload, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

/* Reads the change an event of kind c->kind makes; -1 when its payload does not say it. */
static int read_change(change *c, json_t *p)
{
    int set = 0;
    switch (c->kind) {
    case K_USER_DELETED: return 0;
    case K_RECURRED:
        return read_id(p, "new_task_id", c->task) < 0 ||
                       read_id(p, "original_task_id", c->original) < 0 ||
                       read_time(p, "next_due_date", &set, &c->due) < 0
                   ? -1
                   : 0;
    case K_DELETED: return read_id(p, "task_id", c->task);
    case K_REMINDED:
        return read_id(p, "task_id", c->task) < 0 ||
                       read_time(p, "reminder_at", &set, &c->reminder) < 0 || !c->reminder
                   ? -1
                   : 0;
    default: break;
    }
    json_t *title = json_object_get(p, "title");
    c->completed = c->sent = -1;
    if (read_id(p, "task_id", c->task) < 0 || (title && !json_is_string(title)) ||
        read_time(p, "due_date", &c->set_due, &c->due) < 0 ||
        read_time(p, "reminder_at", &c->set_reminder, &c->reminder) < 0 ||
        read_flag(p, "completed", &c->completed) < 0 || read_flag(p, "reminder_sent", &c->sent) < 0)
        return -1;
    c->title = json_string_value(title);
    if (c->sent < 0 && (c->set_reminder || strcmp(c->ev->type, "task.created") == 0))
        c->sent = 0; /* a new reminder time (or a new task) is not sent yet */
    return 0;
}

/* The statement that applies c, with its parameters. */
static int apply_statement(PGconn *conn, change *c, PGresult **out)
{
    const char *user = c->ev->user_id;
    const char *completed = c->completed < 0 ? NULL : c->completed ? "t" : "f";
    const char *sent = c->sent < 0 ? NULL : c->sent ? "t" : "f";
    const char *up[] = {c->task,     user,
                        c->title,    c->set_due ? "t" : "f",
                        c->due,      c->set_reminder ? "t" : "f",
                        c->reminder, completed,
                        sent};
    const char *rp[] = {c->task, user, c->original, c->due};
    const char *tp[] = {c->task, c->reminder};
    const char *dp[] = {user};
    switch (c->kind) {
    case K_UPSERT: *out = PQexecParams(conn, UPSERT_SQL, 9, NULL, up, NULL, NULL, 0); break;
    case K_RECURRED: *out = PQexecParams(conn, RECURRED_SQL, 4, NULL, rp, NULL, NULL, 0); break;
    case K_DELETED: *out = PQexecParams(conn, DELETED_SQL, 1, NULL, tp, NULL, NULL, 0); break;
    case K_REMINDED: *out = PQexecParams(conn, REMINDED_SQL, 2, NULL, tp, NULL, NULL, 0); break;
    case K_USER_DELETED:
        *out = PQexecParams(conn, USER_DELETED_SQL, 1, NULL, dp, NULL, NULL, 0);
        break;
    default: *out = NULL; return TK_OK;
    }
    return notif_pg_ok(*out) ? TK_OK : TK_ERR;
}

/* pg_once work: the user's lock, the ignore check, then the change. */
static int apply_fn(void *conn_v, void *ud)
{
    PGconn *conn = conn_v;
    change *c = ud;
    notif *n = c->n;
    const char *lp[] = {c->ev->user_id};
    PGresult *r = PQexecParams(conn, LOCK_SQL, 1, NULL, lp, NULL, NULL, 0);
    if (!notif_pg_ok(r))
        return notif_pg_fail(n, conn, r, "locking the user's schedule");
    PQclear(r);
    if (c->kind != K_USER_DELETED) {
        const char *ip[] = {c->ev->user_id, c->task, c->ev->time};
        r = PQexecParams(conn, IGNORED_SQL, 3, NULL, ip, NULL, NULL, 0);
        if (!notif_pg_ok(r))
            return notif_pg_fail(n, conn, r, "reading the schedule's bounds");
        c->ignored = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (c->ignored)
            return TK_OK;
    }
    if (apply_statement(conn, c, &r) < 0)
        return notif_pg_fail(n, conn, r, "applying an event to the schedule");
    PQclear(r);
    return TK_OK;
}

tk_consume_result notif_consume(void *state, const tk_event *ev)
{
    notif *n = state;
    if (ev->struct_size < offsetof(tk_event, group) + sizeof(ev->group))
        return TK_CONSUME_OK;
    change c = {.n = n, .ev = ev, .kind = kind_of(ev->type)};
    if (c.kind == K_NONE)
        return TK_CONSUME_OK;
    json_t *payload = json_loads(ev->payload ? ev->payload : "{}", 0, NULL);
    if (!ev->id || !ev->user_id || !*ev->user_id || read_change(&c, payload) < 0) {
        json_decref(payload);
        n->host->log_kv(n->inst, TK_LOG_WARN, "an event the schedule cannot read", "type", ev->type,
                        "event_id", ev->id ? ev->id : "-", NULL);
        return TK_CONSUME_FAIL;
    }
    int duplicate = 0;
    int rc = n->host->pg_once(n->inst, ev->group, ev->id, apply_fn, &c, &duplicate);
    json_decref(payload);
    if (rc < 0) {
        notif_count_error(n, "consumer");
        n->host->log(n->inst, TK_LOG_WARN, "applying %s %s to the schedule: %s; will retry",
                     ev->type, ev->id, tk_strerror(rc));
        return TK_CONSUME_RETRY;
    }
    if (n->host->log_enabled(n->inst, TK_LOG_DEBUG))
        n->host->log_kv(n->inst, TK_LOG_DEBUG, "schedule event", "type", ev->type, "event_id",
                        ev->id, "applied",
                        duplicate   ? "duplicate"
                        : c.ignored ? "ignored"
                                    : "yes",
                        NULL);
    /* a reminder may be due sooner now: the scheduler looks again */
    if (n->scheduler && c.kind == K_UPSERT && !duplicate && !c.ignored)
        notif_signal(n, &n->sched_cond, &n->sched_wake);
    return TK_CONSUME_OK;
}

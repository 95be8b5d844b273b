/*
 * tasks.reminder_sent follows the reminders fired: the notifications plugin fires a reminder
 * from its own schedule and publishes task.reminder; this consumer (the instance's consume
 * section, a group of its own on task-events) marks the task's reminder sent, so the API keeps
 * showing reminder_sent in every task and GET /api/tasks/reminders lists only unsent ones. This
 * plugin stays the only writer of its tasks table.
 *
 * Only the reminder that fired is marked: when the task's reminder_at has changed since (a new
 * time set through PATCH .../reminder), the new reminder stays pending. No task.updated is
 * published for it: task.reminder is the event of this change. Each event is applied once per
 * group (pg_once); updated_at is left as it is, as the reminder is not an edit of the task.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "reminders_consumer.h"

static const char MARK_SENT_SQL[] =
    "UPDATE tasks SET reminder_sent = true WHERE id = $1::int AND user_id = $2"
    " AND reminder_at = ($3::timestamptz AT TIME ZONE 'utc') AND NOT reminder_sent";

typedef struct fired {
    api *a;
    const char *p[3]; /* task id, user id, reminder_at */
} fired;

static int mark_sent(void *conn_v, void *ud)
{
    PGconn *conn = conn_v;
    fired *f = ud;
    PGresult *r = PQexecParams(conn, MARK_SENT_SQL, 3, NULL, f->p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        f->a->host->log(f->a->inst, PQstatus(conn) == CONNECTION_BAD ? TK_LOG_WARN : TK_LOG_ERROR,
                        "marking a reminder sent failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (ok)
        return TK_OK;
    return PQstatus(conn) == CONNECTION_BAD ? TK_EUNAVAILABLE : TK_ERR;
}

tk_consume_result api_reminders_consume(void *state, const tk_event *ev)
{
    api *a = state;
    if (ev->struct_size < offsetof(tk_event, group) + sizeof(ev->group) || !ev->type ||
        strcmp(ev->type, "task.reminder") != 0)
        return TK_CONSUME_OK;
    json_t *payload = json_loads(ev->payload ? ev->payload : "{}", 0, NULL);
    json_t *id = json_object_get(payload, "task_id");
    const char *at = json_string_value(json_object_get(payload, "reminder_at"));
    if (!ev->id || !ev->user_id || !json_is_integer(id) || json_integer_value(id) < 1 ||
        json_integer_value(id) > 2147483647 || !at) {
        json_decref(payload);
        a->host->log_kv(a->inst, TK_LOG_WARN, "a task.reminder without task_id or reminder_at",
                        "event_id", ev->id ? ev->id : "-", NULL);
        return TK_CONSUME_FAIL;
    }
    char task[24];
    snprintf(task, sizeof(task), "%lld", (long long)json_integer_value(id));
    fired f = {a, {task, ev->user_id, at}};
    int duplicate = 0;
    int rc = a->host->pg_once(a->inst, ev->group, ev->id, mark_sent, &f, &duplicate);
    json_decref(payload);
    if (rc < 0) {
        a->host->log(a->inst, TK_LOG_WARN, "task.reminder %s: %s; will retry", ev->id,
                     tk_strerror(rc));
        return TK_CONSUME_RETRY;
    }
    return TK_CONSUME_OK;
}

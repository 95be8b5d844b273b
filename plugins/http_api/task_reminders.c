/* Reminders: set or clear one, mark one sent, and list the ones due. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

/*
 * PATCH .../reminder (sent = 0: set or clear reminder_at, sent flag reset) and POST
 * .../reminder/sent (sent = 1): the change, then task.updated naming it.
 */
static int reminder_change(api_call *c, PGconn *conn, int sent)
{
    task_in *t = c->arg;
    int rc = task_lock(c, conn, t->id_text, NULL);
    if (rc < 0)
        return rc; /* TK_ENOTFOUND: answered 404 */
    const char *p[] = {t->id_text, t->reminder_null ? NULL : t->reminder};
    if (task_exec(c, conn,
                  sent ? "UPDATE tasks SET reminder_sent = true, updated_at = " NOW_UTC
                         " WHERE id = $1::int"
                       : "UPDATE tasks SET reminder_at = $2::timestamp, reminder_sent = false,"
                         " updated_at = " NOW_UTC " WHERE id = $1::int",
                  sent ? 1 : 2, p) < 0)
        return TK_ERR;
    int err;
    json_t *task = task_load(c, conn, t->id_text, &err);
    if (!task)
        return TK_ERR;
    json_t *payload =
        sent ? json_pack("{s:O,s:b,s:[s]}", "task_id", json_object_get(task, "id"), "reminder_sent",
                         1, "changes", "reminder_sent")
             : json_pack("{s:O,s:O,s:O,s:[s]}", "task_id", json_object_get(task, "id"), "title",
                         json_object_get(task, "title"), "reminder_at",
                         json_object_get(task, "reminder_at"), "changes", "reminder_at");
    rc = task_event(c, conn, "task.updated", task, payload);
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 200, task);
}

int task_reminder_fn(void *conn, void *ud) { return reminder_change(ud, conn, 0); }
int task_reminder_sent_fn(void *conn, void *ud) { return reminder_change(ud, conn, 1); }

int task_reminders_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const char *before = c->arg;
    const char *p[] = {c->user, before};
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object('id', t.id, 'title', t.title,"
        " 'due_date', " API_TS("t.due_date") ", 'reminder_at', " API_TS(
            "t.reminder_at") ")"
                             " ORDER BY t.reminder_at, t.id), '[]')::text FROM tasks t"
                             " WHERE t.user_id = $1 AND t.reminder_at IS NOT NULL"
                             " AND t.reminder_at <= coalesce($2::timestamp, " NOW_UTC ")"
                             " AND NOT t.reminder_sent AND NOT t.completed";
    PGresult *res = api_exec(c->a, conn, sql, 2, p);
    int rc = TK_ERR;
    if (api_ok(res)) {
        c->status = 200;
        c->text = strdup(PQgetvalue(res, 0, 0));
        rc = c->text ? TK_OK : TK_ENOMEM;
    }
    PQclear(res);
    return rc;
}

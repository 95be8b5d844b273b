/* PATCH /api/tasks/{id}/complete: completion, reopening, a recurring task's next instance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

/*
 * The next instance of a recurring task just completed (id), unless it has one already (one
 * per task, even across reopen and complete again). PostgreSQL's month arithmetic clamps to
 * the month's end. A next due date past 9999-12-31, which the API can neither accept nor
 * write, ends the recurrence: the completion stands, with no next task. TK_OK with *next the
 * new task, or JSON null when none was made; a negative code on failure.
 */
static int next_instance(api_call *c, PGconn *conn, const char *id, json_t *task, json_t **next)
{
    *next = json_null();
    const char *p[] = {id};
    PGresult *kids =
        api_exec(c->a, conn, "SELECT 1 FROM tasks WHERE parent_task_id = $1::int LIMIT 1", 1, p);
    int has_next = api_ok(kids) ? PQntuples(kids) > 0 : -1;
    PQclear(kids);
    if (has_next)
        return has_next < 0 ? TK_ERR : TK_OK;
    PGresult *res =
        api_exec(c->a, conn,
                 "INSERT INTO tasks (title, description, priority, due_date, is_recurring,"
                 " recurrence_rule, recurrence_interval, parent_task_id, user_id)"
                 " SELECT title, description, priority, n.due, true, recurrence_rule,"
                 " recurrence_interval, id, user_id FROM tasks,"
                 " LATERAL (SELECT coalesce(due_date, " NOW_UTC ") +"
                 " CASE recurrence_rule WHEN 'daily' THEN interval '1 day'"
                 " WHEN 'weekly' THEN interval '7 days' WHEN 'monthly' THEN interval '1 month'"
                 " ELSE make_interval(days => coalesce(recurrence_interval, 1)) END AS due) n"
                 " WHERE id = $1::int AND n.due < '10000-01-01' RETURNING id::text",
                 1, p);
    if (!api_ok(res) || PQntuples(res) != 1) {
        int rc = api_ok(res) ? TK_OK : TK_ERR;
        PQclear(res);
        return rc;
    }
    char nid[24];
    snprintf(nid, sizeof(nid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *tp[] = {nid, id};
    int err;
    if (task_exec(c, conn,
                  "INSERT INTO task_tags (task_id, tag_id) SELECT $1::int, tag_id FROM task_tags"
                  " WHERE task_id = $2::int",
                  2, tp) < 0 ||
        !(*next = task_load(c, conn, nid, &err)))
        return TK_ERR;
    return task_event(c, conn, "task.recurred", task,
                      json_pack("{s:O,s:O,s:O}", "original_task_id", json_object_get(task, "id"),
                                "new_task_id", json_object_get(*next, "id"), "next_due_date",
                                json_object_get(*next, "due_date")));
}

int task_complete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int was_completed = 0;
    int rc = task_lock(c, conn, t->id_text, &was_completed);
    if (rc < 0)
        return rc; /* TK_ENOTFOUND: answered 404 */
    const char *p[] = {t->id_text, t->completed ? "true" : "false"};
    if (t->completed != was_completed &&
        task_exec(c, conn,
                  "UPDATE tasks SET completed = $2::boolean, updated_at = " NOW_UTC
                  " WHERE id = $1::int",
                  2, p) < 0)
        return TK_ERR;
    int err;
    json_t *task = task_load(c, conn, t->id_text, &err);
    if (!task)
        return TK_ERR;
    if (t->completed != was_completed)
        rc = task_event(c, conn, "task.completed", task,
                        task_completion_payload(task, t->completed));
    int recurs = json_is_true(json_object_get(task, "is_recurring")) &&
                 json_is_string(json_object_get(task, "recurrence_rule"));
    if (rc < 0 || !recurs || !t->completed) {
        if (rc < 0) {
            json_decref(task);
            return rc;
        }
        return api_answer(c, 200, task);
    }
    json_t *next = json_null();
    if (!was_completed && (rc = next_instance(c, conn, t->id_text, task, &next)) < 0) {
        json_decref(task);
        json_decref(next);
        return rc;
    }
    return api_answer(c, 200, json_pack("{s:o,s:o}", "completed_task", task, "next_task", next));
}

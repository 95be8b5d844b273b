/* Task create, read, update and delete, and the steps they share with completion and reminders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

/* ---- shared steps ----------------------------------------------------------------- */

/* The task as JSON (parsed), or NULL when it is not the user's; *err on failure. */
json_t *task_load(api_call *c, PGconn *conn, const char *id, int *err)
{
    const char *p[] = {id, c->user};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT " TASK_JSON("t") "::text FROM tasks t"
                                                      " WHERE t.id = $1::int AND t.user_id = $2",
                             2, p);
    json_t *out = NULL;
    *err = !api_ok(res);
    if (!*err && PQntuples(res))
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL), *err = out == NULL;
    PQclear(res);
    return out;
}

int task_sqlb_check(api_call *c, const sqlb *b, const char *what)
{
    if (sqlb_check(b) == TK_OK)
        return TK_OK;
    c->a->host->log(c->a->inst, TK_LOG_ERROR,
                    "%s: the statement does not fit the SQL builder (%d bytes, %d parameters)",
                    what, SQLB_MAX_SQL, SQLB_MAX_PARAMS);
    return TK_ERR;
}

/* Runs a statement whose result is not needed; TK_OK or TK_ERR. */
int task_exec(api_call *c, PGconn *conn, const char *sql, int n, const char *const *p)
{
    PGresult *res = api_exec(c->a, conn, sql, n, p);
    int rc = api_ok(res) ? TK_OK : TK_ERR;
    PQclear(res);
    return rc;
}

/* Attaches the user's tags among ids (others are ignored) to a task. */
int task_attach_tags(api_call *c, PGconn *conn, const char *task_id, const char *ids)
{
    const char *p[] = {task_id, ids, c->user};
    return task_exec(c, conn,
                     "INSERT INTO task_tags (task_id, tag_id) SELECT $1::int, g.id FROM tags g"
                     " WHERE g.id = ANY($2::int[]) AND g.user_id = $3 ON CONFLICT DO NOTHING",
                     3, p);
}

int task_event(api_call *c, PGconn *conn, const char *type, json_t *task, json_t *payload)
{
    char subject[24];
    snprintf(subject, sizeof(subject), "%lld",
             (long long)json_integer_value(json_object_get(task, "id")));
    return api_event(c->a, conn, c->a->task_topic, type, c->user, subject, payload);
}

json_t *task_tag_names(json_t *task)
{
    json_t *names = json_array(), *tag;
    size_t i;
    json_array_foreach(json_object_get(task, "tags"), i, tag)
        json_array_append(names, json_object_get(tag, "name"));
    return names;
}

/* ---- create, get, update, delete ---------------------------------------------------- */

int task_create_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int rc = api_lock_user(c, conn);
    if (rc < 0)
        return rc;
    const char *p[] = {
        t->title,
        t->has_description ? t->description : NULL,
        t->completed ? "true" : "false",
        t->priority ? t->priority : "medium",
        t->has_due && !t->due_null ? t->due : NULL,
        t->has_reminder && !t->reminder_null ? t->reminder : NULL,
        t->is_recurring ? "true" : "false",
        t->rule,
        t->has_interval && !t->interval_null ? t->interval : NULL,
        c->user,
    };
    PGresult *res = api_exec(c->a, conn,
                             "INSERT INTO tasks (title, description, completed, priority, due_date,"
                             " reminder_at, is_recurring, recurrence_rule, recurrence_interval,"
                             " user_id) VALUES ($1, $2, $3::boolean, $4, $5::timestamp,"
                             " $6::timestamp, $7::boolean, $8, $9::int, $10) RETURNING id::text",
                             10, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    char id[24];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (t->tag_ids && task_attach_tags(c, conn, id, t->tag_ids) < 0)
        return TK_ERR;
    int err;
    json_t *task = task_load(c, conn, id, &err);
    if (!task)
        return TK_ERR;
    /* completed: a task may be written down done, and its reminder must not fire */
    json_t *payload = json_pack(
        "{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:o}", "task_id", json_object_get(task, "id"), "title",
        json_object_get(task, "title"), "priority", json_object_get(task, "priority"), "due_date",
        json_object_get(task, "due_date"), "reminder_at", json_object_get(task, "reminder_at"),
        "completed", json_object_get(task, "completed"), "is_recurring",
        json_object_get(task, "is_recurring"), "recurrence_rule",
        json_object_get(task, "recurrence_rule"), "tags", task_tag_names(task));
    rc = task_event(c, conn, "task.created", task, payload);
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 201, task);
}

int task_get_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int err;
    json_t *task = task_load(c, conn, t->id_text, &err);
    if (err)
        return TK_ERR;
    return task ? api_answer(c, 200, task) : api_fail(c, 404, "Task not found");
}

int task_lock(api_call *c, PGconn *conn, const char *id, int *completed)
{
    const char *p[] = {id, c->user};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT completed FROM tasks WHERE id = $1::int AND user_id = $2"
                             " FOR UPDATE",
                             2, p);
    int rc = !api_ok(res) ? TK_ERR : PQntuples(res) == 1 ? TK_OK : TK_ENOTFOUND;
    if (rc == TK_OK && completed)
        *completed = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (rc == TK_ENOTFOUND)
        api_fail(c, 404, "Task not found");
    return rc;
}

json_t *task_completion_payload(json_t *task, int completed)
{
    return json_pack("{s:O,s:b,s:s,s:O}", "task_id", json_object_get(task, "id"), "completed",
                     completed, "status_change", completed ? "completed" : "reopened",
                     "completed_at", completed ? json_object_get(task, "updated_at") : json_null());
}

int task_update_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int was_completed = 0;
    int rc = task_lock(c, conn, t->id_text, &was_completed);
    if (rc < 0)
        return rc; /* TK_ENOTFOUND: answered 404 */

    sqlb b = {0};
    json_t *changes = json_array();
    sqlb_add(&b, "UPDATE tasks SET updated_at = " NOW_UTC);
#define SET(cond, name, cast, value)                                                               \
    if (cond) {                                                                                    \
        sqlb_add(&b, ", " name " = $%d" cast, sqlb_param(&b, value));                              \
        json_array_append_new(changes, json_string(name));                                         \
    }
    SET(t->has_title, "title", "", t->title)
    SET(t->has_description, "description", "", t->description)
    SET(t->has_completed, "completed", "::boolean", t->completed ? "true" : "false")
    SET(t->has_priority, "priority", "", t->priority)
    SET(t->has_due, "due_date", "::timestamp", t->due_null ? NULL : t->due)
    SET(t->has_reminder, "reminder_at", "::timestamp", t->reminder_null ? NULL : t->reminder)
    SET(t->has_recurring, "is_recurring", "::boolean", t->is_recurring ? "true" : "false")
    SET(t->has_rule, "recurrence_rule", "", t->rule)
    SET(t->has_interval, "recurrence_interval", "::int", t->interval_null ? NULL : t->interval)
#undef SET
    if (t->has_reminder)
        sqlb_add(&b, ", reminder_sent = false");
    int idn = sqlb_param(&b, t->id_text);
    sqlb_add(&b, " WHERE id = $%d::int", idn);
    if (task_sqlb_check(c, &b, "task update") < 0 || task_exec(c, conn, b.sql, b.n, b.p) < 0) {
        json_decref(changes);
        return TK_ERR;
    }
    if (t->has_tags) {
        const char *p[] = {t->id_text};
        if (task_exec(c, conn, "DELETE FROM task_tags WHERE task_id = $1::int", 1, p) < 0 ||
            task_attach_tags(c, conn, t->id_text, t->tag_ids) < 0) {
            json_decref(changes);
            return TK_ERR;
        }
        json_array_append_new(changes, json_string("tags"));
    }
    int err;
    json_t *task = task_load(c, conn, t->id_text, &err);
    if (!task) {
        json_decref(changes);
        return TK_ERR;
    }
    /* the payload carries the new value of every field the request set */
    json_t *payload = json_pack("{s:O}", "task_id", json_object_get(task, "id")), *name;
    size_t i;
    json_array_foreach(changes, i, name)
    {
        const char *key = json_string_value(name);
        json_object_set_new(payload, key,
                            strcmp(key, "tags") == 0 ? task_tag_names(task)
                                                     : json_incref(json_object_get(task, key)));
    }
    json_object_set_new(payload, "changes", changes);
    rc = task_event(c, conn, "task.updated", task, payload);
    if (rc >= 0 && t->has_completed && t->completed != was_completed)
        rc = task_event(c, conn, "task.completed", task,
                        task_completion_payload(task, t->completed));
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 200, task);
}

int task_delete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int rc = task_lock(c, conn, t->id_text, NULL);
    if (rc < 0)
        return rc; /* TK_ENOTFOUND: answered 404 */
    const char *p[] = {t->id_text};
    /* the instances a recurring task created outlive it */
    if (task_exec(c, conn, "UPDATE tasks SET parent_task_id = NULL WHERE parent_task_id = $1::int",
                  1, p) < 0 ||
        task_exec(c, conn, "DELETE FROM tasks WHERE id = $1::int", 1, p) < 0)
        return TK_ERR;
    char subject[24];
    snprintf(subject, sizeof(subject), "%s", t->id_text);
    rc = api_event(c->a, conn, c->a->task_topic, "task.deleted", c->user, subject,
                   json_pack("{s:I}", "task_id", (json_int_t)atoll(t->id_text)));
    if (rc < 0)
        return rc;
    return api_answer(c, 200, json_pack("{s:s}", "message", "Task deleted successfully"));
}

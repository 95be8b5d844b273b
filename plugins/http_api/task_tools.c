/* The assistant's task tools: the routes' own code, called without HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

/* The first 422 entry's message, for a tool error the model can act on. */
static json_t *tool_validation_error(api_errors *e)
{
    json_t *first = json_array_get(e->list, 0);
    json_t *loc = json_object_get(first, "loc");
    const char *field = json_string_value(json_array_get(loc, json_array_size(loc) - 1));
    char msg[300];
    snprintf(msg, sizeof(msg), "%s%s%s", field ? field : "", field ? ": " : "",
             json_string_value(json_object_get(first, "msg")));
    return json_pack("{s:s}", "error", msg);
}

/* Runs a task route's transaction; the answer (or {"error"}) becomes the tool's result. */
static json_t *tool_run(api_call *c, tk_pg_fn fn, int tx, const char *task_id)
{
    int rc = api_call_run(c, tx, fn);
    json_t *out;
    if (c->status == 404) {
        char msg[80];
        snprintf(msg, sizeof(msg), "Task with ID %s not found", task_id ? task_id : "?");
        out = json_pack("{s:s}", "error", msg);
    } else if (rc >= 0 && c->status >= 200 && c->status < 300 && c->body) {
        out = json_incref(c->body);
    } else if (rc >= 0 && c->status == 200 && c->text) {
        out = json_loads(c->text, 0, NULL);
    } else if (c->status && c->body) {
        json_t *d = json_object_get(c->body, "detail");
        out = json_pack("{s:s}", "error", json_is_string(d) ? json_string_value(d) : "failed");
    } else {
        out = json_pack("{s:s}", "error",
                        rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT ? "the database is unavailable"
                                                                    : "internal error");
    }
    json_decref(c->body);
    free(c->text);
    c->body = NULL;
    c->text = NULL;
    return out;
}

/* A task as the assistant sees it: what it needs to talk about it. */
static json_t *task_brief(json_t *task)
{
    return json_pack(
        "{s:O,s:O,s:O,s:O,s:O}", "id", json_object_get(task, "id"), "title",
        json_object_get(task, "title"), "completed", json_object_get(task, "completed"), "priority",
        json_object_get(task, "priority"), "due_date", json_object_get(task, "due_date"));
}

/* The task_id argument as text, or NULL (an error result set). */
static const char *tool_task_id(json_t *args, char out[24], json_t **result)
{
    json_t *v = json_object_get(args, "task_id");
    if (json_is_string(v)) { /* models sometimes quote numbers */
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*json_string_value(v) && !*end)
            v = NULL, snprintf(out, 24, "%lld", n);
    } else if (json_is_integer(v)) {
        snprintf(out, 24, "%lld", (long long)json_integer_value(v));
        v = NULL;
    } else {
        *result = json_pack("{s:s}", "error", "task_id (an integer) is required");
        return NULL;
    }
    if (v) {
        *result = json_pack("{s:s}", "error", "task_id must be an integer");
        return NULL;
    }
    api_errors e;
    kit_errors_init(&e);
    api_path_id(&e, out, "task_id"); /* past PostgreSQL's integer range: no task has it */
    int bad = kit_errors_any(&e);
    kit_errors_free(&e);
    if (bad) {
        char msg[80];
        snprintf(msg, sizeof(msg), "Task with ID %s not found", out);
        *result = json_pack("{s:s}", "error", msg);
        return NULL;
    }
    return out;
}

json_t *api_task_tool(api *a, const char *user, const char *tool, json_t *args)
{
    api_call c;
    task_in t;
    memset(&t, 0, sizeof(t));
    api_call_init(&c, a, &t);
    snprintf(c.user, sizeof(c.user), "%s", user);
    json_t *result = NULL;
    api_errors e;
    kit_errors_init(&e);
    if (!json_is_object(args)) {
        result = json_pack("{s:s}", "error", "arguments must be a JSON object");
    } else if (strcmp(tool, "add_task") == 0) {
        task_read_body(a, &e, args, &t, 1);
        if (kit_errors_any(&e))
            result = tool_validation_error(&e);
        else {
            json_t *task = tool_run(&c, task_create_fn, 1, NULL);
            result = json_object_get(task, "error") ? json_incref(task) : task_brief(task);
            json_decref(task);
        }
    } else if (strcmp(tool, "list_tasks") == 0) {
        list_in q;
        memset(&q, 0, sizeof(q));
        static const char *const statuses[] = {"all", "pending", "completed", NULL};
        const char *status = json_string_value(json_object_get(args, "status"));
        q.status = status ? status : "all";
        q.sort = "created_at";
        q.order = "desc";
        snprintf(q.limit, sizeof(q.limit), "100");
        snprintf(q.offset, sizeof(q.offset), "0");
        if (!task_one_of(q.status, statuses)) {
            result = json_pack("{s:s}", "error", "status must be all, pending or completed");
        } else {
            c.arg = &q;
            json_t *list = tool_run(&c, task_list_fn, 0, NULL);
            if (json_is_array(list)) {
                json_t *brief = json_array(), *task;
                size_t i;
                json_array_foreach(list, i, task) json_array_append_new(brief, task_brief(task));
                result = json_pack("{s:o,s:I}", "tasks", brief, "count",
                                   (json_int_t)json_array_size(brief));
                json_decref(list);
            } else {
                result = list;
            }
        }
    } else if (strcmp(tool, "complete_task") == 0 || strcmp(tool, "delete_task") == 0 ||
               strcmp(tool, "update_task") == 0) {
        if (tool_task_id(args, t.id_text, &result)) {
            if (tool[0] == 'c') {
                t.completed = 1;
                json_t *r = tool_run(&c, task_complete_fn, 1, t.id_text);
                json_t *done = json_object_get(r, "completed_task");
                result = json_object_get(r, "error") ? json_incref(r)
                         : done ? json_pack("{s:o,s:O}", "task", task_brief(done), "next_task",
                                            json_object_get(r, "next_task"))
                                : json_pack("{s:o}", "task", task_brief(r));
                json_decref(r);
            } else if (tool[0] == 'd') {
                result = tool_run(&c, task_delete_fn, 1, t.id_text);
            } else {
                /* only what the tool declares: title and description */
                json_t *fields = json_object();
                if (json_object_get(args, "title"))
                    json_object_set(fields, "title", json_object_get(args, "title"));
                if (json_object_get(args, "description"))
                    json_object_set(fields, "description", json_object_get(args, "description"));
                task_read_body(a, &e, fields, &t, 0);
                json_decref(fields);
                if (kit_errors_any(&e)) {
                    result = tool_validation_error(&e);
                } else {
                    json_t *r = tool_run(&c, task_update_fn, 1, t.id_text);
                    result = json_object_get(r, "error") ? json_incref(r) : task_brief(r);
                    json_decref(r);
                }
            }
        }
    } else {
        char msg[120];
        snprintf(msg, sizeof(msg), "unknown tool %.80s", tool);
        result = json_pack("{s:s}", "error", msg);
    }
    kit_errors_free(&e);
    free(t.tag_ids);
    return result ? result : json_pack("{s:s}", "error", "internal error");
}

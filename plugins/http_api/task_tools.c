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

/* The tools the model may call, as JSON Schema: the ones of the table below. */
const char api_task_tools_json[] =
    "["
    "{\"name\":\"add_task\",\"description\":\"Create a task for the user.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"title\":{\"type\":\"string\",\"description\":\"what to do (1-255 characters)\"},"
    "\"description\":{\"type\":\"string\"},"
    "\"priority\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\",\"urgent\"]},"
    "\"due_date\":{\"type\":\"string\",\"description\":\"ISO 8601 date-time, UTC\"}},"
    "\"required\":[\"title\"]}},"
    "{\"name\":\"list_tasks\",\"description\":\"List the user's tasks.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"status\":{\"type\":\"string\",\"enum\":[\"all\",\"pending\",\"completed\"]}}}},"
    "{\"name\":\"complete_task\",\"description\":\"Mark a task as completed.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"task_id\":{\"type\":\"integer\"}},\"required\":[\"task_id\"]}},"
    "{\"name\":\"delete_task\",\"description\":\"Delete a task.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"task_id\":{\"type\":\"integer\"}},\"required\":[\"task_id\"]}},"
    "{\"name\":\"update_task\",\"description\":\"Change a task's title or description.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"task_id\":{\"type\":\"integer\"},\"title\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"}},\"required\":[\"task_id\"]}}"
    "]";

/* One call of a tool: its arguments, the route's call state, the task input and 422 entries. */
typedef struct tool_call {
    api *a;
    json_t *args; /* a JSON object */
    api_call c;   /* c.arg: &t (list_tasks: its list_in) */
    task_in t;    /* t.id_text: the task_id argument of a tool that takes one */
    api_errors e;
} tool_call;

static json_t *tool_add(tool_call *tc)
{
    task_read_body(tc->a, &tc->e, tc->args, &tc->t, 1);
    if (kit_errors_any(&tc->e))
        return tool_validation_error(&tc->e);
    json_t *task = tool_run(&tc->c, task_create_fn, 1, NULL);
    json_t *result = json_object_get(task, "error") ? json_incref(task) : task_brief(task);
    json_decref(task);
    return result;
}

static json_t *tool_list(tool_call *tc)
{
    static const char *const statuses[] = {"all", "pending", "completed", NULL};
    list_in q;
    memset(&q, 0, sizeof(q));
    const char *status = json_string_value(json_object_get(tc->args, "status"));
    q.status = status ? status : "all";
    q.sort = "created_at";
    q.order = "desc";
    snprintf(q.limit, sizeof(q.limit), "100");
    snprintf(q.offset, sizeof(q.offset), "0");
    if (!task_one_of(q.status, statuses))
        return json_pack("{s:s}", "error", "status must be all, pending or completed");
    tc->c.arg = &q;
    json_t *list = tool_run(&tc->c, task_list_fn, 0, NULL);
    if (!json_is_array(list))
        return list;
    json_t *brief = json_array(), *task;
    size_t i;
    json_array_foreach(list, i, task) json_array_append_new(brief, task_brief(task));
    json_decref(list);
    return json_pack("{s:o,s:I}", "tasks", brief, "count", (json_int_t)json_array_size(brief));
}

static json_t *tool_complete(tool_call *tc)
{
    tc->t.completed = 1;
    json_t *r = tool_run(&tc->c, task_complete_fn, 1, tc->t.id_text);
    json_t *done = json_object_get(r, "completed_task");
    json_t *result = json_object_get(r, "error") ? json_incref(r)
                     : done ? json_pack("{s:o,s:O}", "task", task_brief(done), "next_task",
                                        json_object_get(r, "next_task"))
                            : json_pack("{s:o}", "task", task_brief(r));
    json_decref(r);
    return result;
}

static json_t *tool_delete(tool_call *tc)
{
    return tool_run(&tc->c, task_delete_fn, 1, tc->t.id_text);
}

static json_t *tool_update(tool_call *tc)
{
    /* only what the tool declares: title and description */
    json_t *fields = json_object();
    if (json_object_get(tc->args, "title"))
        json_object_set(fields, "title", json_object_get(tc->args, "title"));
    if (json_object_get(tc->args, "description"))
        json_object_set(fields, "description", json_object_get(tc->args, "description"));
    task_read_body(tc->a, &tc->e, fields, &tc->t, 0);
    json_decref(fields);
    if (kit_errors_any(&tc->e))
        return tool_validation_error(&tc->e);
    json_t *r = tool_run(&tc->c, task_update_fn, 1, tc->t.id_text);
    json_t *result = json_object_get(r, "error") ? json_incref(r) : task_brief(r);
    json_decref(r);
    return result;
}

/* The tools, by name (api_task_tools_json declares them to the model). */
static const struct {
    const char *name;
    json_t *(*fn)(tool_call *tc);
    int takes_id; /* reads the task_id argument into t.id_text first */
} tools[] = {
    {"add_task", tool_add, 0},           {"list_tasks", tool_list, 0},
    {"complete_task", tool_complete, 1}, {"delete_task", tool_delete, 1},
    {"update_task", tool_update, 1},
};

/* The tool's index in the table, or -1. */
static int tool_index(const char *name)
{
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        if (strcmp(name, tools[i].name) == 0)
            return (int)i;
    return -1;
}

json_t *api_task_tool(api *a, const char *user, const char *tool, json_t *args)
{
    tool_call tc;
    memset(&tc, 0, sizeof(tc));
    tc.a = a;
    tc.args = args;
    api_call_init(&tc.c, a, &tc.t);
    snprintf(tc.c.user, sizeof(tc.c.user), "%s", user);
    kit_errors_init(&tc.e);
    json_t *result = NULL;
    int i = json_is_object(args) ? tool_index(tool) : -1;
    if (!json_is_object(args)) {
        result = json_pack("{s:s}", "error", "arguments must be a JSON object");
    } else if (i < 0) {
        char msg[120];
        snprintf(msg, sizeof(msg), "unknown tool %.80s", tool);
        result = json_pack("{s:s}", "error", msg); /* NULL for a name that is not UTF-8 */
    } else if (!tools[i].takes_id || tool_task_id(args, tc.t.id_text, &result)) {
        result = tools[i].fn(&tc);
    }
    kit_errors_free(&tc.e);
    free(tc.t.tag_ids);
    return result ? result : json_pack("{s:s}", "error", "internal error");
}

/*
 * /api/tasks: the routes, reading their input and running their work (task_*.c): tasks with
 * filters, sorting and pages done in SQL, recurrence on completion, reminders. Each change
 * writes its event to the outbox in the same transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

enum body_kind { NO_BODY, CREATE, UPDATE, COMPLETE, REMINDER };

static int task_route(api *a, const tk_http_request *req, tk_http_response *resp, int with_id,
                      enum body_kind kind, tk_pg_fn fn, int tx)
{
    api_call c;
    task_in t;
    memset(&t, 0, sizeof(t));
    api_call_init(&c, a, &t);
    int auth = api_authenticate(a, req, resp, c.user, 0);
    if (auth < 0)
        return auth; /* answered */
    api_errors e;
    kit_errors_init(&e);
    if (with_id) {
        int64_t id = api_path_id(&e, a->host->http_param(req, "task_id"), "task_id");
        snprintf(t.id_text, sizeof(t.id_text), "%lld", (long long)id);
    }
    json_t *body = NULL;
    if (kind != NO_BODY && !kit_errors_any(&e)) {
        int sent;
        body = api_body_object(a, req, resp, &sent);
        if (!body) {
            kit_errors_free(&e);
            return sent ? TK_OK : TK_ERR;
        }
        if (kind == CREATE || kind == UPDATE) {
            task_read_body(a, &e, body, &t, kind == CREATE);
        } else if (kind == COMPLETE) {
            t.completed = api_field_bool(&e, body, "completed", 1, NULL);
        } else {
            if (!json_object_get(body, "reminder_at"))
                kit_errors_add(&e, "body", "reminder_at", "Field required", "missing");
            else
                task_read_time(&e, body, "reminder_at", t.reminder, &t.has_reminder,
                               &t.reminder_null);
        }
    }
    int rc;
    if (kit_errors_any(&e)) {
        rc = kit_errors_send(a->host, resp, &e);
    } else {
        kit_errors_free(&e);
        rc = api_run(&c, tx, fn, resp);
    }
    free(t.tag_ids);
    json_decref(body);
    return rc;
}

static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    api_call c;
    list_in q;
    memset(&q, 0, sizeof(q));
    api_call_init(&c, a, &q);
    int auth = api_authenticate(a, req, resp, c.user, 0);
    if (auth < 0)
        return auth; /* answered */
    api_errors e;
    kit_errors_init(&e);
    task_read_list_query(a, req, &e, &q);
    int rc = kit_errors_any(&e) ? kit_errors_send(a->host, resp, &e)
                                : (kit_errors_free(&e), api_run(&c, 0, task_list_fn, resp));
    free(q.tags);
    return rc;
}

static int route_reminders(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    api_call c;
    char before[32];
    api_call_init(&c, a, NULL);
    int auth = api_authenticate(a, req, resp, c.user, 0);
    if (auth < 0)
        return auth; /* answered */
    api_errors e;
    kit_errors_init(&e);
    int given = api_query_time(a, req, &e, "before", before) == TK_OK;
    if (kit_errors_any(&e))
        return kit_errors_send(a->host, resp, &e);
    kit_errors_free(&e);
    c.arg = given ? before : NULL;
    return api_run(&c, 0, task_reminders_fn, resp);
}

static int route_create(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 0, CREATE, task_create_fn, 1);
}
static int route_get(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, task_get_fn, 0);
}
static int route_update(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, UPDATE, task_update_fn, 1);
}
static int route_delete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, task_delete_fn, 1);
}
static int route_complete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, COMPLETE, task_complete_fn, 1);
}
static int route_reminder(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, REMINDER, task_reminder_fn, 1);
}
static int route_reminder_sent(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, task_reminder_sent_fn, 1);
}

int api_task_routes(api *a)
{
    static const struct {
        const char *method, *pattern;
        tk_http_handler fn;
    } routes[] = {
        {"GET", "/api/tasks", route_list},
        {"POST", "/api/tasks", route_create},
        {"GET", "/api/tasks/reminders", route_reminders},
        {"GET", "/api/tasks/{task_id}", route_get},
        {"PUT", "/api/tasks/{task_id}", route_update},
        {"DELETE", "/api/tasks/{task_id}", route_delete},
        {"PATCH", "/api/tasks/{task_id}/complete", route_complete},
        {"PATCH", "/api/tasks/{task_id}/reminder", route_reminder},
        {"POST", "/api/tasks/{task_id}/reminder/sent", route_reminder_sent},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = a->host->http_route(a->inst, routes[i].method, routes[i].pattern, routes[i].fn, a);
        if (rc < 0)
            return rc;
    }
    return TK_OK;
}

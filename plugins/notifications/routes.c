/*
 * The in-app notifications a user sees: GET /api/notifications[?unread=true&limit=&offset=] and
 * POST /api/notifications/{id}/read, on the process's authenticator (http_api's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kit/kit.h"
#include "notif.h"

/* These routes in OpenAPI: openapi.json, compiled in (scripts/embed). */
extern const unsigned char notif_openapi_json[];

/* One notification row (alias x) as the API's JSON; times as the API writes them. */
#define NOTIFICATION_JSON(x)                                                                       \
    "json_build_object('id', " x ".id, 'task_id', " x ".task_id, 'type', " x ".type, 'title', " x  \
    ".title, 'message', " x ".message, 'created_at', " KIT_SQL_ISO_UTC(                            \
        x ".created_at") ", 'read_at', " KIT_SQL_ISO_UTC(x ".read_at") ")"

/* Runs a one-value query (the JSON text of the answer) on a pooled connection. *out is malloc'd,
 * NULL when the query returned no row. */
static int query_text(notif *n, const char *sql, int np, const char *const *p, char **out)
{
    PGresult *r = NULL;
    *out = NULL;
    int rc = notif_exec_pooled(n, sql, np, p, &r, "a notifications query");
    if (rc < 0)
        return rc;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) && !(*out = strdup(PQgetvalue(r, 0, 0))))
        rc = TK_ENOMEM;
    PQclear(r);
    return rc;
}

/* GET /api/notifications[?unread=true&limit=100&offset=0]: the caller's, newest first. */
static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    notif *n = ud;
    const tk_host *h = n->host;
    char user[64];
    int rc = kit_authenticate(h, req, resp, user, sizeof(user), 0);
    if (rc < 0)
        return rc; /* answered (401, 503) */
    kit_errors e;
    kit_errors_init(&e);
    int unread = kit_query_bool(h, req, &e, "unread", 0);
    int64_t limit = kit_query_int(h, req, &e, "limit", 1, 1000, 100);
    int64_t offset = kit_query_int(h, req, &e, "offset", 0, INT64_C(1) << 40, 0);
    if (kit_errors_any(&e))
        return kit_errors_send(h, resp, &e);
    kit_errors_free(&e);
    char ls[24], os[24];
    snprintf(ls, sizeof(ls), "%lld", (long long)limit);
    snprintf(os, sizeof(os), "%lld", (long long)offset);
    const char *p[] = {user, unread ? "t" : "f", ls, os};
    char *text = NULL;
    rc = query_text(
        n,
        "SELECT coalesce(json_agg(" NOTIFICATION_JSON(
            "x") " ORDER BY x.created_at DESC, x.id"
                 " DESC), '[]')::text FROM (SELECT * FROM notifications WHERE user_id = $1"
                 " AND (NOT $2::bool OR read_at IS NULL) ORDER BY created_at DESC, id DESC"
                 " LIMIT $3::int OFFSET $4::bigint) x",
        4, p, &text);
    if (rc < 0)
        return kit_db_error(h, resp, rc);
    const char *body = text ? text : "[]";
    rc = kit_send_text(h, resp, 200, body, strlen(body));
    free(text);
    return rc;
}

/* POST /api/notifications/{id}/read: marks it read (the first read time stays) and answers it. */
static int route_read(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    notif *n = ud;
    const tk_host *h = n->host;
    char user[64];
    int rc = kit_authenticate(h, req, resp, user, sizeof(user), 0);
    if (rc < 0)
        return rc; /* answered (401, 503) */
    kit_errors e;
    kit_errors_init(&e);
    int64_t id = kit_path_int(&e, h->http_param(req, "notification_id"), "notification_id",
                              INT64_MIN, INT64_MAX);
    if (kit_errors_any(&e))
        return kit_errors_send(h, resp, &e);
    kit_errors_free(&e);
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *p[] = {ids, user};
    char *text = NULL;
    rc = query_text(n,
                    "WITH x AS (UPDATE notifications SET read_at = coalesce(read_at,"
                    " now() AT TIME ZONE 'utc') WHERE id = $1::bigint AND user_id = $2"
                    " RETURNING *) SELECT " NOTIFICATION_JSON("x") "::text FROM x",
                    2, p, &text);
    if (rc < 0)
        return kit_db_error(h, resp, rc);
    rc = text ? kit_send_text(h, resp, 200, text, strlen(text))
              : h->http_error(resp, 404, "Notification not found");
    free(text);
    return rc;
}

int notif_routes(notif *n)
{
    int rc = n->host->http_route(n->inst, "GET", "/api/notifications", route_list, n);
    if (rc == TK_OK)
        rc = n->host->http_route(n->inst, "POST", "/api/notifications/{notification_id}/read",
                                 route_read, n);
    if (rc == TK_EUNAVAILABLE) {
        n->host->log(n->inst, TK_LOG_INFO,
                     "HTTP is disabled in this process: the notification "
                     "routes are not served (set routes to false to say so)");
        return TK_OK;
    }
    if (rc == TK_OK && (rc = n->host->http_openapi(n->inst, (const char *)notif_openapi_json)) < 0)
        n->host->log(n->inst, TK_LOG_ERROR, "the host refused the description of the routes (%s)",
                     tk_strerror(rc));
    return rc;
}

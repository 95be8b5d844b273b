/*
 * The in-app notifications a user sees: GET /api/notifications[?unread=true&limit=&offset=] and
 * POST /api/notifications/{id}/read, on the process's authenticator (http_api's).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notif.h"

/* One notification row (alias x) as the API's JSON; times as the API writes them. */
#define NOTIFICATION_JSON(x)                                                                       \
    "json_build_object('id', " x ".id, 'task_id', " x ".task_id, 'type', " x ".type, 'title', " x  \
    ".title, 'message', " x ".message, 'created_at', " NOTIF_ISO_UTC(                              \
        x ".created_at") ", 'read_at', " NOTIF_ISO_UTC(x ".read_at") ")"

static int send_text(notif *n, tk_http_response *resp, int status, const char *text)
{
    n->host->http_status(resp, status);
    return n->host->http_set_body(resp, NOTIF_JSON_TYPE, text, strlen(text));
}

/* 422 in the API's shape for one bad query or path value. */
static int send_invalid(notif *n, tk_http_response *resp, const char *where, const char *field,
                        const char *msg, const char *type)
{
    json_t *body = json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", where, field, "msg", msg,
                             "type", type);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text)
        return TK_ENOMEM;
    int rc = send_text(n, resp, 422, text);
    free(text);
    return rc;
}

static int send_db_error(notif *n, tk_http_response *resp, int rc)
{
    if (rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT) {
        n->host->http_set_header(resp, "Retry-After", "1");
        return send_text(n, resp, 503, "{\"detail\":\"Database unavailable\"}");
    }
    return rc < 0 ? rc : TK_ERR;
}

/* The caller's user id, or 0 after the answer was sent (401, or 503 without authenticator). */
static int authenticate(notif *n, const tk_http_request *req, tk_http_response *resp, char *user,
                        size_t len)
{
    if (n->host->struct_size < offsetof(tk_host, http_authenticate) + sizeof(void *) ||
        !n->host->http_authenticate) {
        send_text(n, resp, 503, "{\"detail\":\"No authenticator is loaded\"}");
        return 0;
    }
    return n->host->http_authenticate(req, resp, user, len, 0);
}

/* An integer query value in [lo, hi]; -1 (after answering 422) when it is not. */
static int64_t query_int(notif *n, const tk_http_request *req, tk_http_response *resp,
                         const char *name, int64_t dflt, int64_t lo, int64_t hi)
{
    const char *v = n->host->http_query(req, name);
    if (!v)
        return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) {
        send_invalid(n, resp, "query", name,
                     "Input should be a valid integer, unable to parse string as an integer",
                     "int_parsing");
        return -1;
    }
    if (x < lo || x > hi) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Input should be %s %lld",
                 x < lo ? "greater than or equal to" : "less than or equal to",
                 x < lo ? (long long)lo : (long long)hi);
        send_invalid(n, resp, "query", name, msg,
                     x < lo ? "greater_than_equal" : "less_than_equal");
        return -1;
    }
    return x;
}

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
    char user[64];
    if (!authenticate(n, req, resp, user, sizeof(user)))
        return TK_OK;
    const char *u = n->host->http_query(req, "unread");
    int unread = u ? tk_bool_word(u) : 0;
    if (unread < 0)
        return send_invalid(n, resp, "query", "unread",
                            "Input should be a valid boolean, unable to interpret input",
                            "bool_parsing");
    int64_t limit = query_int(n, req, resp, "limit", 100, 1, 1000);
    if (limit < 0)
        return TK_OK;
    int64_t offset = query_int(n, req, resp, "offset", 0, 0, INT64_C(1) << 40);
    if (offset < 0)
        return TK_OK;
    char ls[24], os[24];
    snprintf(ls, sizeof(ls), "%lld", (long long)limit);
    snprintf(os, sizeof(os), "%lld", (long long)offset);
    const char *p[] = {user, unread ? "t" : "f", ls, os};
    char *text = NULL;
    int rc = query_text(
        n,
        "SELECT coalesce(json_agg(" NOTIFICATION_JSON(
            "x") " ORDER BY x.created_at DESC, x.id"
                 " DESC), '[]')::text FROM (SELECT * FROM notifications WHERE user_id = $1"
                 " AND (NOT $2::bool OR read_at IS NULL) ORDER BY created_at DESC, id DESC"
                 " LIMIT $3::int OFFSET $4::bigint) x",
        4, p, &text);
    if (rc < 0)
        return send_db_error(n, resp, rc);
    rc = send_text(n, resp, 200, text ? text : "[]");
    free(text);
    return rc;
}

/* POST /api/notifications/{id}/read: marks it read (the first read time stays) and answers it. */
static int route_read(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    notif *n = ud;
    char user[64];
    if (!authenticate(n, req, resp, user, sizeof(user)))
        return TK_OK;
    const char *id = n->host->http_param(req, "notification_id");
    char *end = NULL;
    errno = 0;
    long long v = id && *id ? strtoll(id, &end, 10) : 0;
    if (!id || !*id || *end || errno)
        return send_invalid(n, resp, "path", "notification_id",
                            "Input should be a valid integer, unable to parse string as an integer",
                            "int_parsing");
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", v);
    const char *p[] = {ids, user};
    char *text = NULL;
    int rc = query_text(n,
                        "WITH x AS (UPDATE notifications SET read_at = coalesce(read_at,"
                        " now() AT TIME ZONE 'utc') WHERE id = $1::bigint AND user_id = $2"
                        " RETURNING *) SELECT " NOTIFICATION_JSON("x") "::text FROM x",
                        2, p, &text);
    if (rc < 0)
        return send_db_error(n, resp, rc);
    rc = text ? send_text(n, resp, 200, text)
              : send_text(n, resp, 404, "{\"detail\":\"Notification not found\"}");
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
    return rc;
}

/*
 * /api/{user_id}/conversations (and the same at the root): the assistant's conversations of a
 * user (list, messages, delete). The path's user must be the token's user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

typedef struct conv_in {
    char cid[24];
    char limit[16], offset[16];
} conv_in;

/* Is the conversation the user's? 1 yes, 0 no (answer set), < 0 error. */
static int own_conversation(api_call *c, PGconn *conn, const char *cid)
{
    const char *p[] = {cid, c->user};
    PGresult *res = api_exec(
        c->a, conn, "SELECT 1 FROM conversations WHERE id = $1::int AND user_id = $2", 2, p);
    int rc = api_ok(res) ? PQntuples(res) == 1 : TK_ERR;
    PQclear(res);
    if (rc == 0)
        api_fail_code(c, 404, "CONVERSATION_NOT_FOUND", "Conversation not found");
    return rc;
}

static int list_fn(void *conn, void *ud)
{
    api_call *c = ud;
    conv_in *q = c->arg;
    const char *p[] = {c->user, q->limit, q->offset};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT (SELECT count(*) FROM conversations WHERE user_id = $1),"
                             " coalesce(json_agg(json_build_object('id', v.id, "
                             "'created_at', " API_TS("v.created_at") ", 'updated_at', " API_TS(
                                 "v.updated_at") ", 'message_count', v.n, 'last_message',"
                                                 " CASE WHEN char_length(v.last) > 100 THEN "
                                                 "left(v.last, 100) || '...' ELSE v.last END)"
                                                 " ORDER BY v.updated_at DESC, v.id DESC), "
                                                 "'[]')::text"
                                                 " FROM (SELECT cv.id, cv.created_at, "
                                                 "cv.updated_at,"
                                                 "  (SELECT count(*) FROM messages m WHERE "
                                                 "m.conversation_id = cv.id) AS n,"
                                                 "  (SELECT m.content FROM messages m WHERE "
                                                 "m.conversation_id = cv.id"
                                                 "   ORDER BY m.created_at DESC, m.id DESC LIMIT "
                                                 "1) AS last"
                                                 "  FROM conversations cv WHERE cv.user_id = $1"
                                                 "  ORDER BY cv.updated_at DESC, cv.id DESC LIMIT "
                                                 "$2::int OFFSET $3::int) v",
                             3, p);
    int rc = TK_ERR;
    if (api_ok(res)) {
        json_t *list = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
        rc = api_answer(c, 200,
                        list ? json_pack("{s:o,s:I,s:I,s:I}", "conversations", list, "total",
                                         (json_int_t)atoll(PQgetvalue(res, 0, 0)), "limit",
                                         (json_int_t)atoll(q->limit), "offset",
                                         (json_int_t)atoll(q->offset))
                             : NULL);
    }
    PQclear(res);
    return rc;
}

static int messages_fn(void *conn, void *ud)
{
    api_call *c = ud;
    conv_in *q = c->arg;
    int own = own_conversation(c, conn, q->cid);
    if (own <= 0)
        return own < 0 ? own : TK_ERR;
    const char *p[] = {q->cid, q->limit};
    /* the newest `limit` messages, oldest first; one extra row tells whether there are more */
    PGresult *res =
        api_exec(c->a, conn,
                 "SELECT id, role, content, tool_calls, " API_TS(
                     "created_at") " FROM (SELECT * FROM messages WHERE conversation_id = $1::int"
                                   " ORDER BY created_at DESC, id DESC LIMIT $2::int + 1) m"
                                   " ORDER BY created_at, id",
                 2, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    int rows = PQntuples(res), limit = atoi(q->limit);
    int first = rows > limit ? 1 : 0;
    json_t *list = json_array();
    for (int i = first; i < rows; i++) {
        json_t *tools = json_null();
        if (!PQgetisnull(res, i, 3)) {
            const char *text = PQgetvalue(res, i, 3);
            tools = json_loads(text, JSON_DECODE_ANY, NULL);
            if (!tools)
                tools = json_string(text); /* not JSON: shown as stored */
        }
        json_array_append_new(
            list, json_pack("{s:I,s:s,s:s,s:o,s:s}", "id", (json_int_t)atoll(PQgetvalue(res, i, 0)),
                            "role", PQgetvalue(res, i, 1), "content", PQgetvalue(res, i, 2),
                            "tool_calls", tools, "created_at", PQgetvalue(res, i, 4)));
    }
    PQclear(res);
    return api_answer(c, 200,
                      json_pack("{s:o,s:I,s:b}", "messages", list, "conversation_id",
                                (json_int_t)atoll(q->cid), "has_more", first));
}

static int delete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    conv_in *q = c->arg;
    int own = own_conversation(c, conn, q->cid);
    if (own <= 0)
        return own < 0 ? own : TK_ERR;
    const char *p[] = {q->cid};
    PGresult *res =
        api_exec(c->a, conn, "DELETE FROM messages WHERE conversation_id = $1::int", 1, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    long long n = atoll(PQcmdTuples(res));
    PQclear(res);
    res = api_exec(c->a, conn, "DELETE FROM conversations WHERE id = $1::int", 1, p);
    int ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    return api_answer(c, 200,
                      json_pack("{s:b,s:I,s:I}", "success", 1, "conversation_id",
                                (json_int_t)atoll(q->cid), "messages_deleted", (json_int_t)n));
}

static int conv_route(api *a, const tk_http_request *req, tk_http_response *resp, int with_id,
                      int list, tk_pg_fn fn, int tx)
{
    api_call c;
    conv_in q;
    memset(&q, 0, sizeof(q));
    api_call_init(&c, a, &q);
    int auth = api_authenticate(a, req, resp, c.user, 0);
    if (auth < 0)
        return auth; /* answered */
    const char *path_user = a->host->http_param(req, "user_id");
    if (!path_user || strcmp(path_user, c.user) != 0)
        return api_error_code(a, resp, 403, "FORBIDDEN", "You don't have access to this resource");
    api_errors e;
    kit_errors_init(&e);
    if (with_id) {
        int64_t id =
            api_path_id(&e, a->host->http_param(req, "conversation_id"), "conversation_id");
        snprintf(q.cid, sizeof(q.cid), "%lld", (long long)id);
    }
    if (list) {
        api_query_int(a, req, &e, "limit", 1, 100, 20, q.limit);
        api_query_int(a, req, &e, "offset", 0, 2147483647, 0, q.offset);
    } else if (with_id) {
        api_query_int(a, req, &e, "limit", 1, 200, 50, q.limit);
    }
    if (kit_errors_any(&e))
        return kit_errors_send(a->host, resp, &e);
    kit_errors_free(&e);
    return api_run(&c, tx, fn, resp);
}

static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return conv_route(ud, req, resp, 0, 1, list_fn, 0);
}
static int route_messages(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return conv_route(ud, req, resp, 1, 0, messages_fn, 0);
}
static int route_delete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return conv_route(ud, req, resp, 1, 0, delete_fn, 1);
}

int api_conversation_routes(api *a)
{
    /* each also at the root, where the existing front end's chat client calls them */
    static const struct {
        const char *method, *pattern;
        tk_http_handler fn;
    } routes[] = {
        {"GET", "/api/{user_id}/conversations", route_list},
        {"GET", "/api/{user_id}/conversations/{conversation_id}/messages", route_messages},
        {"DELETE", "/api/{user_id}/conversations/{conversation_id}", route_delete},
        {"GET", "/{user_id}/conversations", route_list},
        {"GET", "/{user_id}/conversations/{conversation_id}/messages", route_messages},
        {"DELETE", "/{user_id}/conversations/{conversation_id}", route_delete},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = a->host->http_route(a->inst, routes[i].method, routes[i].pattern, routes[i].fn, a);
        if (rc < 0)
            return rc;
    }
    return TK_OK;
}

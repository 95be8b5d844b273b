/* /api/tags: a user's tags (name unique per user, case-insensitively). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

typedef struct tag_in {
    int64_t id;
    char id_text[24];
    const char *name; /* NULL: unchanged */
    const char *color;
} tag_in;

static int color_valid(const char *c)
{
    if (strlen(c) != 7 || c[0] != '#')
        return 0;
    for (int i = 1; i < 7; i++)
        if (!isxdigit((unsigned char)c[i]))
            return 0;
    return 1;
}

/* Reads name and color from a body; `create` makes name required. */
static void read_tag(api_errors *e, json_t *body, tag_in *t, int create)
{
    t->name = api_field_string(e, body, "name", create, 1, 50, NULL, NULL);
    int present = 0, is_null = 0;
    t->color = api_field_string(e, body, "color", 0, 0, 0, &present, &is_null);
    if (!create && is_null)
        kit_errors_add(e, "body", "color", "Input should be a valid string", "string_type");
    if (t->color && !color_valid(t->color)) {
        kit_errors_add(e, "body", "color", "String should match pattern '^#[0-9A-Fa-f]{6}$'",
                       "string_pattern_mismatch");
        t->color = NULL;
    }
    if (!create && json_is_null(json_object_get(body, "name")))
        kit_errors_add(e, "body", "name", "Input should be a valid string", "string_type");
}

/* Answers the one-row, one-column JSON result, or 404 Tag not found. */
static int answer_row(api_call *c, PGresult *res, int status)
{
    int rc = TK_ERR;
    if (api_ok(res))
        rc = PQntuples(res) ? api_answer(c, status, json_loads(PQgetvalue(res, 0, 0), 0, NULL))
                            : api_fail(c, 404, "Tag not found");
    PQclear(res);
    return rc;
}

/*
 * Is name free among the user's other tags? Serialised per user with a
 * transaction-scoped advisory lock, so two concurrent creates cannot both pass.
 * TK_OK free; TK_EEXIST with the 400 answer set when taken; TK_ERR on failure.
 */
static int name_free(api_call *c, PGconn *conn, const char *name, const char *except_id)
{
    const char *p[] = {c->user, name, except_id ? except_id : "0"};
    /* the lock in a statement of its own: the check's snapshot must be taken after it */
    PGresult *res =
        api_exec(c->a, conn, "SELECT pg_advisory_xact_lock(hashtext('taskora.tags:' || $1))", 1, p);
    int ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    res = api_exec(c->a, conn,
                   "SELECT EXISTS (SELECT 1 FROM tags WHERE user_id = $1"
                   " AND lower(name) = lower($2) AND id <> $3::int)",
                   3, p);
    int rc = !api_ok(res) ? TK_ERR : PQgetvalue(res, 0, 0)[0] == 't' ? TK_EEXIST : TK_OK;
    PQclear(res);
    if (rc == TK_EEXIST)
        api_fail(c, 400, "Tag name already exists for this user");
    return rc;
}

static int list_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const char *p[] = {c->user};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT coalesce(json_agg(" API_TAG_JSON(
                                 "g") " ORDER BY lower(g.name), g.name),"
                                      " '[]')::text FROM tags g WHERE g.user_id = $1",
                             1, p);
    int rc = TK_ERR;
    if (api_ok(res)) {
        c->status = 200;
        c->text = strdup(PQgetvalue(res, 0, 0));
        rc = c->text ? TK_OK : TK_ENOMEM;
    }
    PQclear(res);
    return rc;
}

static int create_fn(void *conn, void *ud)
{
    api_call *c = ud;
    tag_in *t = c->arg;
    int rc = api_lock_user(c, conn);
    if (rc < 0)
        return rc;
    if ((rc = name_free(c, conn, t->name, NULL)) < 0)
        return rc;
    const char *p[] = {t->name, t->color ? t->color : "#6366F1", c->user};
    return answer_row(c,
                      api_exec(c->a, conn,
                               "INSERT INTO tags AS g (name, color, user_id) VALUES ($1, $2, $3)"
                               " RETURNING " API_TAG_JSON("g") "::text",
                               3, p),
                      201);
}

static int get_fn(void *conn, void *ud)
{
    api_call *c = ud;
    tag_in *t = c->arg;
    const char *p[] = {t->id_text, c->user};
    return answer_row(
        c,
        api_exec(c->a, conn,
                 "SELECT " API_TAG_JSON("g") "::text FROM tags g"
                                             " WHERE g.id = $1::int AND g.user_id = $2",
                 2, p),
        200);
}

static int update_fn(void *conn, void *ud)
{
    api_call *c = ud;
    tag_in *t = c->arg;
    /* the tag first: someone else's or a missing tag is 404 whatever the new name */
    const char *own[] = {t->id_text, c->user};
    PGresult *res = api_exec(
        c->a, conn, "SELECT 1 FROM tags WHERE id = $1::int AND user_id = $2 FOR UPDATE", 2, own);
    int found = api_ok(res) ? PQntuples(res) == 1 : TK_ERR;
    PQclear(res);
    if (found < 0)
        return found;
    if (!found)
        return api_fail(c, 404, "Tag not found");
    if (t->name) {
        int rc = name_free(c, conn, t->name, t->id_text);
        if (rc < 0)
            return rc;
    }
    const char *p[] = {t->id_text, c->user, t->name, t->color};
    return answer_row(
        c,
        api_exec(c->a, conn,
                 "UPDATE tags AS g SET name = coalesce($3, g.name),"
                 " color = coalesce($4, g.color)"
                 " WHERE g.id = $1::int AND g.user_id = $2 RETURNING " API_TAG_JSON("g") "::text",
                 4, p),
        200);
}

static int delete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    tag_in *t = c->arg;
    const char *p[] = {t->id_text, c->user};
    PGresult *res =
        api_exec(c->a, conn, "DELETE FROM tags WHERE id = $1::int AND user_id = $2", 2, p);
    int rc = TK_ERR;
    if (api_ok(res))
        rc = atoi(PQcmdTuples(res))
                 ? api_answer(c, 200, json_pack("{s:s}", "message", "Tag deleted successfully"))
                 : api_fail(c, 404, "Tag not found");
    PQclear(res);
    return rc;
}

/* The common frame of every tag route: auth, path id, body, then the work. */
static int tag_route(api *a, const tk_http_request *req, tk_http_response *resp, int with_id,
                     int body_mode /* 0 none, 1 create, 2 update */, tk_pg_fn fn, int tx)
{
    api_call c;
    tag_in t = {0};
    api_call_init(&c, a, &t);
    int auth = api_authenticate(a, req, resp, c.user, 0);
    if (auth < 0)
        return auth; /* answered */
    api_errors e;
    kit_errors_init(&e);
    if (with_id) {
        t.id = api_path_id(&e, a->host->http_param(req, "tag_id"), "tag_id");
        snprintf(t.id_text, sizeof(t.id_text), "%lld", (long long)t.id);
    }
    json_t *body = NULL;
    if (body_mode && !kit_errors_any(&e)) {
        int sent;
        body = api_body_object(a, req, resp, &sent);
        if (!body) {
            kit_errors_free(&e);
            return sent ? TK_OK : TK_ERR;
        }
        read_tag(&e, body, &t, body_mode == 1);
    }
    int rc;
    if (kit_errors_any(&e)) {
        rc = kit_errors_send(a->host, resp, &e);
    } else {
        kit_errors_free(&e);
        rc = api_run(&c, tx, fn, resp);
    }
    json_decref(body);
    return rc;
}

static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return tag_route(ud, req, resp, 0, 0, list_fn, 0);
}
static int route_create(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return tag_route(ud, req, resp, 0, 1, create_fn, 1);
}
static int route_get(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return tag_route(ud, req, resp, 1, 0, get_fn, 0);
}
static int route_update(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return tag_route(ud, req, resp, 1, 2, update_fn, 1);
}
static int route_delete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return tag_route(ud, req, resp, 1, 0, delete_fn, 1);
}

int api_tag_routes(api *a)
{
    int rc;
    if ((rc = a->host->http_route(a->inst, "GET", "/api/tags", route_list, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "POST", "/api/tags", route_create, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "GET", "/api/tags/{tag_id}", route_get, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "PUT", "/api/tags/{tag_id}", route_update, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "DELETE", "/api/tags/{tag_id}", route_delete, a)) < 0)
        return rc;
    return TK_OK;
}

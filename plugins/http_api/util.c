/* Answers, body field readers, SQL and event helpers (times and arguments: plugins/kit). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int api_error(api *a, tk_http_response *resp, int status, const char *detail)
{
    return a->host->http_error(resp, status, detail);
}

int api_error_code(api *a, tk_http_response *resp, int status, const char *code,
                   const char *message)
{
    return kit_send_json(a->host, resp, status,
                         json_pack("{s:{s:s,s:s}}", "detail", "code", code, "message", message));
}

int api_message(api *a, tk_http_response *resp, const char *message)
{
    return kit_send_json(a->host, resp, 200, json_pack("{s:s}", "message", message));
}

/* ---- the request ---------------------------------------------------------- */

json_t *api_body_object(api *a, const tk_http_request *req, tk_http_response *resp, int *sent)
{
    size_t len = 0;
    const char *body = a->host->http_body(req, &len);
    json_error_t err;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    *sent = 0;
    if (obj && json_is_object(obj))
        return obj;
    api_errors e;
    kit_errors_init(&e);
    if (!obj) {
        json_array_append_new(e.list, json_pack("{s:[s,i],s:s,s:s}", "loc", "body",
                                                (json_int_t)err.position, "msg",
                                                "JSON decode error", "type", "json_invalid"));
    } else {
        kit_errors_add(&e, "body", NULL, "Input should be a valid dictionary", "dict_type");
        json_decref(obj);
    }
    kit_errors_send(a->host, resp, &e);
    *sent = 1;
    return NULL;
}

const char *api_field_string(api_errors *e, json_t *obj, const char *field, int required,
                             size_t min_len, size_t max_len, int *present, int *is_null)
{
    json_t *v = json_object_get(obj, field);
    if (present)
        *present = v != NULL;
    if (is_null)
        *is_null = v && json_is_null(v);
    if (!v) {
        if (required)
            kit_errors_add(e, "body", field, "Field required", "missing");
        return NULL;
    }
    if (json_is_null(v)) {
        if (required)
            kit_errors_add(e, "body", field, "Input should be a valid string", "string_type");
        return NULL;
    }
    if (!json_is_string(v)) {
        kit_errors_add(e, "body", field, "Input should be a valid string", "string_type");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = kit_utf8_len(s);
    char msg[96];
    if (n < min_len) {
        snprintf(msg, sizeof(msg), "String should have at least %zu character%s", min_len,
                 min_len == 1 ? "" : "s");
        kit_errors_add(e, "body", field, msg, "string_too_short");
        return NULL;
    }
    if (max_len && n > max_len) {
        snprintf(msg, sizeof(msg), "String should have at most %zu characters", max_len);
        kit_errors_add(e, "body", field, msg, "string_too_long");
        return NULL;
    }
    return s;
}

int api_field_bool(api_errors *e, json_t *obj, const char *field, int required, int *present)
{
    json_t *v = json_object_get(obj, field);
    if (present)
        *present = v != NULL;
    if (!v) {
        if (required)
            kit_errors_add(e, "body", field, "Field required", "missing");
        return 0;
    }
    if (!json_is_boolean(v)) {
        kit_errors_add(e, "body", field, "Input should be a valid boolean", "bool_type");
        if (present)
            *present = 0;
        return 0;
    }
    return json_is_true(v);
}

int64_t api_path_id(api_errors *e, const char *value, const char *name)
{
    return kit_path_int(e, value, name, INT32_MIN, INT32_MAX);
}

void api_query_int(api *a, const tk_http_request *req, api_errors *e, const char *name, long min,
                   long max, long dflt, char out[16])
{
    snprintf(out, 16, "%lld", (long long)kit_query_int(a->host, req, e, name, min, max, dflt));
}

int api_query_time(api *a, const tk_http_request *req, api_errors *e, const char *name,
                   char out[32])
{
    int64_t us;
    int rc = kit_query_time(a->host, req, e, name, 0, &us);
    if (rc == TK_OK)
        kit_time_format(us, KIT_TIME_SQL, out, 32);
    return rc;
}

int api_parse_time(const char *in, char out[32])
{
    int64_t us;
    if (kit_time_parse(in, 0, &us) < 0)
        return -1;
    kit_time_format(us, KIT_TIME_SQL, out, 32);
    return 0;
}

/* ---- PostgreSQL ----------------------------------------------------------- */

/*
 * Set when a statement of the request this thread serves failed because its connection did
 * (lost, terminated by an administrator, the server shutting down): api_call_run then answers
 * "unavailable" (503), not "failed" (500). One request runs on one thread from start to end.
 */
static __thread int db_lost;

static int connection_failure(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return 1;
    /* class 08: connection exception; 57P01-57P03: admin or crash shutdown, cannot connect now */
    const char *s = api_sqlstate(res);
    return strncmp(s, "08", 2) == 0 || strncmp(s, "57P0", 4) == 0;
}

/* Logs a failed statement (res may be NULL: the failure is the connection's) and notes a lost
 * connection. */
static void note_failure(api *a, PGconn *conn, const PGresult *res)
{
    const char *state = api_sqlstate(res);
    if (connection_failure(conn, res)) {
        db_lost = 1;
        a->host->log(a->inst, TK_LOG_WARN, "query failed, the database connection is lost (%s): %s",
                     state, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    } else if (strcmp(state, "23505") != 0) {
        /* unique violations are answers the caller gives (409, 400), not failures */
        a->host->log(a->inst, TK_LOG_ERROR, "query failed (%s): %s", state,
                     res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    }
}

PGresult *api_exec(api *a, PGconn *conn, const char *sql, int n, const char *const *params)
{
    if (a->host->log_enabled(a->inst, TK_LOG_DEBUG))
        a->host->log(a->inst, TK_LOG_DEBUG, "sql: %s", sql); /* the text only, never parameters */
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (!api_ok(res))
        note_failure(a, conn, res);
    return res;
}

int api_exec_rows(api *a, PGconn *conn, const char *sql, int n, const char *const *params,
                  int (*row)(const PGresult *res, void *ud), void *ud)
{
    if (a->host->log_enabled(a->inst, TK_LOG_DEBUG))
        a->host->log(a->inst, TK_LOG_DEBUG, "sql: %s", sql);
    if (!PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0)) {
        note_failure(a, conn, NULL);
        return TK_ERR;
    }
    PQsetSingleRowMode(conn);
    int rc = TK_OK;
    PGresult *res;
    /* every result up to the end, even after a failure, so the connection is ready again */
    while ((res = PQgetResult(conn))) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE) {
            if (rc == TK_OK)
                rc = row(res, ud);
        } else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            note_failure(a, conn, res);
            rc = TK_ERR;
        }
        PQclear(res);
    }
    return rc;
}

int api_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

const char *api_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* ---- a request's database work ------------------------------------------- */

void api_call_init(api_call *c, api *a, void *arg)
{
    memset(c, 0, sizeof(*c));
    c->a = a;
    c->total = -1;
    c->arg = arg;
}

int api_answer(api_call *c, int status, json_t *body)
{
    json_decref(c->body);
    c->body = body;
    c->status = status;
    return body ? TK_OK : TK_ENOMEM;
}

int api_fail(api_call *c, int status, const char *detail)
{
    api_answer(c, status, json_pack("{s:s}", "detail", detail));
    return TK_ERR;
}

int api_fail_code(api_call *c, int status, const char *code, const char *message)
{
    api_answer(c, status, json_pack("{s:{s:s,s:s}}", "detail", "code", code, "message", message));
    return TK_ERR;
}

typedef struct work {
    tk_pg_fn fn;
    api_call *c;
} work;

/* Runs the route's work and notes whether a failure was its connection's. */
static int run_work(void *conn, void *ud)
{
    work *w = ud;
    int rc = w->fn(conn, w->c);
    if (rc < 0 && PQstatus(conn) != CONNECTION_OK)
        db_lost = 1;
    return rc;
}

int api_call_run(api_call *c, int tx, tk_pg_fn fn)
{
    api *a = c->a;
    work w = {fn, c};
    int rc;
    db_lost = 0;
    if (tx) {
        rc = a->host->pg_tx(a->inst, run_work, &w);
    } else {
        tk_pg *pg = NULL;
        rc = a->host->pg_acquire(a->inst, -1, &pg);
        if (rc == TK_OK) {
            rc = run_work(a->host->pg_conn(pg), &w);
            a->host->pg_release(pg);
        }
    }
    /* a connection lost in the middle of the work: the database is unavailable, not the request
     * wrong (its transaction did not commit), so the client may retry */
    if (rc < 0 && db_lost && rc != TK_ETIMEDOUT)
        rc = TK_EUNAVAILABLE;
    db_lost = 0;
    return rc;
}

int api_call_send(api_call *c, int rc, tk_http_response *resp)
{
    api *a = c->a;
    int out;
    if (rc < 0 && c->status >= 200 && c->status < 300) {
        /* the work succeeded but its transaction did not commit (e.g. the connection
         * dropped at COMMIT): nothing happened, so no success is claimed */
        c->status = 0;
    }
    if (c->status && (c->body || c->text)) {
        if (c->www_authenticate)
            a->host->http_set_header(resp, "WWW-Authenticate", "Bearer");
        if (c->total >= 0) {
            char n[24];
            snprintf(n, sizeof(n), "%lld", c->total);
            a->host->http_set_header(resp, "X-Total-Count", n);
        }
        if (c->text)
            out = kit_send_text(a->host, resp, c->status, c->text, strlen(c->text));
        else
            out = kit_send_json(a->host, resp, c->status, c->body), c->body = NULL;
    } else {
        out = kit_db_error(a->host, resp, rc);
    }
    json_decref(c->body);
    free(c->text);
    c->body = NULL;
    c->text = NULL;
    return out;
}

int api_run(api_call *c, int tx, tk_pg_fn fn, tk_http_response *resp)
{
    return api_call_send(c, api_call_run(c, tx, fn), resp);
}

int api_lock_user(api_call *c, PGconn *conn)
{
    const char *p[] = {c->user};
    PGresult *res =
        api_exec(c->a, conn, "SELECT 1 FROM users WHERE id = $1::int FOR KEY SHARE", 1, p);
    int rc = api_ok(res) ? PQntuples(res) == 1 : TK_ERR;
    PQclear(res);
    if (rc == 0) {
        c->www_authenticate = 1;
        return api_fail(c, 401, "Could not validate credentials");
    }
    return rc < 0 ? rc : TK_OK;
}

/* ---- events --------------------------------------------------------------- */

int api_event(api *a, PGconn *conn, const char *topic, const char *type, const char *user,
              const char *subject, json_t *payload)
{
    if (!payload)
        return TK_ENOMEM;
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    if (!text)
        return TK_ENOMEM;
    int rc = a->host->outbox_append(a->inst, conn, topic, type, user, subject, text, NULL, NULL);
    free(text);
    if (rc < 0)
        a->host->log(a->inst, TK_LOG_ERROR, "outbox append of %s failed (%d)", type, rc);
    return rc;
}

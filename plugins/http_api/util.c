/* Responses, the 422 error shape, body field readers, ISO 8601 times, SQL and event helpers. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"

#define JSON_TYPE "application/json; charset=utf-8"

int api_send_text(api *a, tk_http_response *resp, int status, const char *json, size_t len)
{
    a->host->http_status(resp, status);
    return a->host->http_set_body(resp, JSON_TYPE, json, len);
}

int api_send_json(api *a, tk_http_response *resp, int status, json_t *body)
{
    if (!body)
        return TK_ENOMEM;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return TK_ENOMEM;
    int rc = api_send_text(a, resp, status, text, strlen(text));
    free(text);
    return rc;
}

int api_error(api *a, tk_http_response *resp, int status, const char *detail)
{
    return api_send_json(a, resp, status, json_pack("{s:s}", "detail", detail));
}

int api_error_code(api *a, tk_http_response *resp, int status, const char *code,
                   const char *message)
{
    return api_send_json(a, resp, status,
                         json_pack("{s:{s:s,s:s}}", "detail", "code", code, "message", message));
}

int api_message(api *a, tk_http_response *resp, const char *message)
{
    return api_send_json(a, resp, 200, json_pack("{s:s}", "message", message));
}

/* ---- 422 ---------------------------------------------------------------- */

void api_errors_init(api_errors *e) { e->list = json_array(); }

void api_errors_add(api_errors *e, const char *where, const char *field, const char *msg,
                    const char *type)
{
    if (!e->list)
        return;
    json_t *loc = field ? json_pack("[s,s]", where, field) : json_pack("[s]", where);
    json_array_append_new(e->list,
                          json_pack("{s:o,s:s,s:s}", "loc", loc, "msg", msg, "type", type));
}

int api_errors_any(const api_errors *e) { return e->list && json_array_size(e->list) > 0; }

int api_errors_send(api *a, tk_http_response *resp, api_errors *e)
{
    json_t *list = e->list;
    e->list = NULL;
    if (!list)
        return TK_ENOMEM;
    return api_send_json(a, resp, 422, json_pack("{s:o}", "detail", list));
}

void api_errors_free(api_errors *e)
{
    json_decref(e->list);
    e->list = NULL;
}

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
    api_errors_init(&e);
    if (!obj) {
        json_array_append_new(e.list, json_pack("{s:[s,i],s:s,s:s}", "loc", "body",
                                                (json_int_t)err.position, "msg",
                                                "JSON decode error", "type", "json_invalid"));
    } else {
        api_errors_add(&e, "body", NULL, "Input should be a valid dictionary", "dict_type");
        json_decref(obj);
    }
    api_errors_send(a, resp, &e);
    *sent = 1;
    return NULL;
}

/* Characters (code points) in a UTF-8 string. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
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
            api_errors_add(e, "body", field, "Field required", "missing");
        return NULL;
    }
    if (json_is_null(v)) {
        if (required)
            api_errors_add(e, "body", field, "Input should be a valid string", "string_type");
        return NULL;
    }
    if (!json_is_string(v)) {
        api_errors_add(e, "body", field, "Input should be a valid string", "string_type");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = utf8_len(s);
    char msg[96];
    if (n < min_len) {
        snprintf(msg, sizeof(msg), "String should have at least %zu character%s", min_len,
                 min_len == 1 ? "" : "s");
        api_errors_add(e, "body", field, msg, "string_too_short");
        return NULL;
    }
    if (max_len && n > max_len) {
        snprintf(msg, sizeof(msg), "String should have at most %zu characters", max_len);
        api_errors_add(e, "body", field, msg, "string_too_long");
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
            api_errors_add(e, "body", field, "Field required", "missing");
        return 0;
    }
    if (!json_is_boolean(v)) {
        api_errors_add(e, "body", field, "Input should be a valid boolean", "bool_type");
        if (present)
            *present = 0;
        return 0;
    }
    return json_is_true(v);
}

int64_t api_path_id(api_errors *e, const char *value, const char *name)
{
    char *end = NULL;
    errno = 0;
    long long v = value && *value ? strtoll(value, &end, 10) : 0;
    if (!value || !*value || *end || errno || v < -2147483648LL || v > 2147483647) {
        api_errors_add(e, "path", name,
                       "Input should be a valid integer, unable to parse string as an integer",
                       "int_parsing");
        return -1;
    }
    return v;
}

int api_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return 0; /* a continuation byte first, an overlong lead, or past U+10FFFF */
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        /* overlong three and four byte forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

const char *api_query(api *a, const tk_http_request *req, api_errors *e, const char *name)
{
    const char *v = a->host->http_query(req, name);
    if (v && !api_utf8_valid(v)) {
        api_errors_add(e, "query", name,
                       "Input should be a valid string, unable to parse raw data as a unicode "
                       "string",
                       "string_unicode");
        return NULL;
    }
    return v;
}

int api_query_bool(api *a, const tk_http_request *req, api_errors *e, const char *name)
{
    const char *v = api_query(a, req, e, name);
    int b = v ? tk_bool_word(v) : 0;
    if (b < 0) {
        api_errors_add(e, "query", name,
                       "Input should be a valid boolean, unable to interpret input",
                       "bool_parsing");
        b = 0;
    }
    return b;
}

void api_query_int(api_errors *e, const char *v, const char *name, long min, long max, long dflt,
                   char out[16])
{
    long n = dflt;
    if (v) {
        char *end;
        n = strtol(v, &end, 10);
        if (!*v || *end) {
            api_errors_add(e, "query", name,
                           "Input should be a valid integer, unable to parse string as an integer",
                           "int_parsing");
            return;
        }
        char msg[64];
        if (n < min || n > max) {
            snprintf(msg, sizeof(msg), "Input should be %s than or equal to %ld",
                     n < min ? "greater" : "less", n < min ? min : max);
            api_errors_add(e, "query", name, msg,
                           n < min ? "greater_than_equal" : "less_than_equal");
            return;
        }
    }
    snprintf(out, 16, "%ld", n);
}

/* ---- time --------------------------------------------------------------- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

int api_parse_time(const char *in, char out[32])
{
    const char *p = in;
    int y, mo, d, h = 0, mi = 0, s = 0, us = 0, off = 0;
    if (!p || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &s))
                return -1;
            if (*p == '.' || *p == ',') {
                p++;
                int n = 0;
                while (isdigit((unsigned char)*p)) {
                    if (n < 6)
                        us = us * 10 + (*p - '0');
                    n++, p++;
                }
                if (n == 0 || n > 9)
                    return -1;
                for (; n < 6; n++)
                    us *= 10;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (digits(&p, 2, &oh))
                return -1;
            if (*p == ':')
                p++;
            if (*p && digits(&p, 2, &om))
                return -1;
            if (oh > 23 || om > 59)
                return -1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p || y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || s > 59)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm(&tm) - off;
    struct tm u;
    if (!gmtime_r(&t, &u) || u.tm_year + 1900 < 1 || u.tm_year + 1900 > 9999)
        return -1;
    char buf[80];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06d", u.tm_year + 1900, u.tm_mon + 1,
             u.tm_mday, u.tm_hour, u.tm_min, u.tm_sec, us);
    memcpy(out, buf, 27); /* always 26 characters and the NUL */
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
            out = api_send_text(a, resp, c->status, c->text, strlen(c->text));
        else
            out = api_send_json(a, resp, c->status, c->body), c->body = NULL;
    } else {
        out = api_db_error(a, resp, rc);
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

int api_db_error(api *a, tk_http_response *resp, int rc)
{
    if (rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT) {
        a->host->http_set_header(resp, "Retry-After", "1");
        return api_error(a, resp, 503, "Database unavailable");
    }
    return api_error(a, resp, 500, "Internal server error");
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

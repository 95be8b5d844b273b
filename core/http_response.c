/*
 * The HTTP server's answers: what handlers set (status, headers, body), the
 * headers every answer carries (request id, security, CORS), the CORS
 * preflight, and sending an answer with its access log line and metrics.
 */
#include "http_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http_request.h"
#include "log.h"

#define JSON_CT "application/json; charset=utf-8"

void tk_http_resp_status(tk_http_response *resp, int status)
{
    if (status >= 200 && status <= 599)
        resp->status = status;
}

static int header_value_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return 0;
    return 1;
}

int tk_http_resp_header(tk_http_response *resp, const char *name, const char *value)
{
    if (!name || !value || !*name || !header_value_ok(name) || !header_value_ok(value) ||
        strchr(name, ':'))
        return TK_EINVAL;
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            char *v = strdup(value);
            if (!v)
                return TK_ENOMEM;
            free(resp->headers[i].value);
            resp->headers[i].value = v;
            return 0;
        }
    }
    if (resp->nheaders == MAX_RESP_HEADERS)
        return TK_EINVAL;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return TK_ENOMEM;
    }
    resp->headers[resp->nheaders].name = n;
    resp->headers[resp->nheaders].value = v;
    resp->nheaders++;
    return 0;
}

int tk_http_resp_body(tk_http_response *resp, const char *content_type, const void *body,
                      size_t len)
{
    char *b = malloc(len ? len : 1);
    char *ct = strdup(content_type ? content_type : "application/octet-stream");
    if (!b || !ct || !header_value_ok(ct)) {
        free(b);
        free(ct);
        return ct ? TK_EINVAL : TK_ENOMEM;
    }
    if (len)
        memcpy(b, body, len);
    free(resp->body);
    free(resp->content_type);
    resp->body = b;
    resp->len = len;
    resp->content_type = ct;
    return 0;
}

/* Sets status and the compact JSON of o (consumed) as the body. */
int tk_http_json_reply(tk_http_response *resp, int status, json_t *o)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    /* out of memory, the status still stands, with no body rather than an earlier one */
    tk_http_resp_status(resp, status);
    int rc = txt ? tk_http_resp_body(resp, JSON_CT, txt, strlen(txt)) : TK_ENOMEM;
    free(txt);
    if (rc) {
        free(resp->body);
        free(resp->content_type);
        resp->body = resp->content_type = NULL;
        resp->len = 0;
    }
    return rc;
}

int tk_http_resp_error(tk_http_response *resp, int status, const char *detail)
{
    return tk_http_json_reply(resp, status, json_pack("{s:s}", "detail", detail ? detail : ""));
}

void tk_http_resp_clear(tk_http_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->body);
    free(resp->content_type);
    memset(resp, 0, sizeof(*resp));
}

void tk_http_count_refused(tk_http_server *srv, const char *what)
{
    const char *labels[] = {what};
    tk_metric_add(srv->refused, labels, 1);
}

/* 1: origin named in cors_origins; 2: allowed by "*" only; 0: not allowed. */
static int origin_allowed(const tk_http_server *srv, const char *origin)
{
    size_t i;
    json_t *it;
    int any = 0;
    json_array_foreach(srv->opt.cors_origins, i, it)
    {
        const char *o = json_string_value(it);
        if (o && strcmp(o, origin) == 0)
            return 1;
        any |= o && strcmp(o, "*") == 0;
    }
    return any ? 2 : 0;
}

/* The method as a metric label: a fixed set, so clients cannot create series at will. */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",   "HEAD",   "POST",    "PUT",
                                        "PATCH", "DELETE", "OPTIONS", NULL};
    for (int i = 0; known[i]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static int carries_credentials(const tk_http_request *req)
{
    return tk_http_req_header(req, "Authorization") || tk_http_req_query(req, "token");
}

/* CORS: which origin may read the answer, with credentials only for origins the config names. */
static void cors_headers(const tk_http_server *srv, const tk_http_request *req,
                         struct MHD_Response *r)
{
    const char *origin = tk_http_req_header(req, "Origin");
    int allowed = origin ? origin_allowed(srv, origin) : 0;
    if (allowed) {
        /* credentials only for origins named in the config, never for "*" */
        MHD_add_response_header(r, "Access-Control-Allow-Origin", allowed == 1 ? origin : "*");
        if (allowed == 1)
            MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-ID, X-Total-Count");
    }
    if (json_array_size(srv->opt.cors_origins))
        MHD_add_response_header(r, "Vary", "Origin");
}

void tk_http_common_headers(tk_http_server *srv, tk_http_request *req, struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Request-ID", req->request_id);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    /* a response that chose its caching keeps it (an event stream: no-cache) */
    if (carries_credentials(req) && !MHD_get_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    cors_headers(srv, req, r);
}

/* Sends req->resp with the headers every response carries, and logs/counts it. */
enum MHD_Result tk_http_send_response(tk_http_server *srv, tk_http_request *req)
{
    tk_http_response *resp = &req->resp;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        tk_http_resp_clear(resp);
        return MHD_NO;
    }
    resp->body = NULL; /* MHD owns it now */
    if (resp->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (size_t i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    tk_http_common_headers(srv, req, r);
    int status = resp->status ? resp->status : 200;
    /* while draining or stopping, every answer ends its connection: clients reconnect, and
     * load balancers send them elsewhere */
    if (req->too_large || status == 400 || status == 414 || status == 431 ||
        atomic_load(&srv->draining) || atomic_load(&srv->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(req->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    req->state = REQ_SENT;

    const char *route_label = req->route_label ? req->route_label : "unmatched";
    double secs = tk_seconds_since(&req->start);
    char st[8], ms[32], bytes[32];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(ms, sizeof(ms), "%.3f", secs * 1000.0);
    snprintf(bytes, sizeof(bytes), "%zu", resp->len);
    const char *labels[] = {method_label(req->method), route_label, st};
    tk_metric_add(srv->requests, labels, 1);
    tk_metric_observe(srv->duration, labels, secs);
    const char *kv[] = {"method", req->method, "path",        req->path,
                        "status", st,          "duration_ms", ms,
                        "bytes",  bytes,       "request_id",  req->request_id,
                        "route",  route_label, "client",      req->client};
    int probe = strcmp(route_label, "/health") == 0 || strcmp(route_label, "/ready") == 0 ||
                strcmp(route_label, "/metrics") == 0;
    tk_log_write(NULL, probe ? TK_LOG_DEBUG : TK_LOG_INFO, "http request", kv,
                 sizeof(kv) / sizeof(kv[0]) / 2);
    tk_http_resp_clear(resp);
    return ok;
}

enum MHD_Result tk_http_send_error(tk_http_server *srv, tk_http_request *req, int status,
                                   const char *detail)
{
    tk_http_resp_clear(&req->resp);
    tk_http_resp_error(&req->resp, status, detail);
    return tk_http_send_response(srv, req);
}

void tk_http_preflight(tk_http_server *srv, tk_http_request *req)
{
    tk_http_response *resp = &req->resp;
    const char *origin = tk_http_req_header(req, "Origin");
    req->route_label = "preflight";
    if (!origin || !origin_allowed(srv, origin)) {
        tk_http_resp_error(resp, 400, "Disallowed CORS origin");
        return;
    }
    const char *want = tk_http_req_header(req, "Access-Control-Request-Headers");
    tk_http_resp_status(resp, 204);
    if (tk_http_resp_body(resp, "text/plain; charset=utf-8", "", 0) ||
        tk_http_resp_header(resp, "Access-Control-Allow-Methods",
                            "GET, POST, PUT, PATCH, DELETE, OPTIONS") ||
        tk_http_resp_header(
            resp, "Access-Control-Allow-Headers",
            want && header_value_ok(want) ? want : "Authorization, Content-Type, X-Request-ID") ||
        tk_http_resp_header(resp, "Access-Control-Max-Age", "600")) {
        tk_logf(NULL, TK_LOG_ERROR, "CORS preflight: out of memory");
        tk_http_resp_clear(resp);
        tk_http_resp_error(resp, 500, "Internal server error");
    }
}

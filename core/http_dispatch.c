/*
 * A request's way through the HTTP server: its arrival (framing checks that
 * answer before any plugin runs), its route, and its handler, run on a
 * worker while the connection is suspended (or on the I/O thread for cheap
 * core routes); the answer goes back through the I/O thread.
 */
#include "http_dispatch.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http_guard.h"
#include "http_request.h"
#include "http_response.h"
#include "http_sse.h"
#include "ids.h"
#include "log.h"

#define MAX_URI 8192           /* longer request targets get 414 */
#define MAX_HEADER_BYTES 32768 /* more header bytes get 431 */

/* Who sent the request: the peer, or the client a trusted proxy names. */
static void find_client(tk_http_server *srv, tk_http_request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[48];
    tk_sockaddr_text(ci ? ci->client_addr : NULL, peer, sizeof(peer));
    tk_client_addr(peer, tk_http_req_header(req, "X-Forwarded-For"), srv->trusted, srv->ntrusted,
                   req->client, sizeof(req->client));
}

static int request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return n > 0 && n <= 128;
}

/* Sends whatever req->resp holds: an event stream or a plain answer. */
static enum MHD_Result finish(tk_http_server *srv, tk_http_request *req)
{
    if (req->resp.sse)
        return tk_sse_send_response(srv, req);
    return tk_http_send_response(srv, req);
}

/* Runs the matched route's handler (a worker, or the I/O thread for cheap core routes). */
static void run_handler(tk_http_server *srv, tk_http_request *req)
{
    const tk_route *rt = req->match.route;
    tk_http_response *resp = &req->resp;
    resp->status = 200;
    tk_metric_add(srv->inflight, NULL, 1);
    const char *tp = tk_http_req_header(req, "traceparent");
    tk_log_context(req->request_id, tp && strlen(tp) == 55 ? tp : NULL);
    int rc = rt->handler(rt->ud, req, resp);
    tk_log_context(NULL, NULL);
    tk_metric_add(srv->inflight, NULL, -1);
    if (resp->sse) {
        if (rc >= 0)
            return;
        tk_sse_discard(resp); /* the handler failed after opening it: no stream */
    }
    if (rc < 0 && (!resp->body || resp->status < 400)) {
        const char *kv[] = {"route", rt->pattern,     "owner",      rt->owner,
                            "error", tk_strerror(rc), "request_id", req->request_id};
        tk_log_write(NULL, TK_LOG_ERROR, "handler failed", kv, 4);
        tk_http_resp_clear(resp);
        if (rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT) {
            tk_http_resp_error(resp, 503, "Service temporarily unavailable");
            tk_http_resp_header(resp, "Retry-After", "1");
        } else {
            tk_http_resp_error(resp, 500, "Internal server error");
        }
    }
}

static void worker_job(void *arg)
{
    tk_http_request *req = arg;
    run_handler(req->srv, req);
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn); /* the I/O thread sends the answer */
}

/* A request still waiting for a worker when the server stops: answered 503 unstarted. */
void tk_http_cancel_job(void *arg)
{
    tk_http_request *req = arg;
    tk_http_resp_error(&req->resp, 503, "Server is shutting down, try again");
    tk_http_resp_header(&req->resp, "Retry-After", "1");
    req->state = REQ_DONE;
    MHD_resume_connection(req->conn);
}

/* Core routes that never block run on the I/O thread, so they answer even when workers are busy. */
static int runs_inline(const tk_http_request *req)
{
    const tk_route *rt = req->match.route;
    return req->admin || (rt->ud == req->srv && (strcmp(rt->pattern, "/health") == 0 ||
                                                 strcmp(rt->pattern, "/metrics") == 0));
}

/* Notes the first query argument whose name or value holds a NUL byte (%00), and stops. */
static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    if (strlen(key) == key_size && (!value || strlen(value) == value_size))
        return MHD_YES;
    *(const char **)cls = key;
    return MHD_NO;
}

/* No handler can read such an argument as text: 422 in the API's validation shape. */
static enum MHD_Result refuse_nul(tk_http_server *srv, tk_http_request *req, const char *name)
{
    const char *msg = "Input should be a string without NUL characters";
    json_t *o = json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "query", name, "msg", msg,
                          "type", "string_type");
    if (!o) /* a name that is not UTF-8 */
        o = json_pack("{s:[{s:[s],s:s,s:s}]}", "detail", "loc", "query", "msg", msg, "type",
                      "string_type");
    tk_http_json_reply(&req->resp, 422, o);
    return tk_http_send_response(srv, req);
}

static enum MHD_Result dispatch(tk_http_server *srv, tk_http_request *req)
{
    if (req->too_large)
        return tk_http_send_error(srv, req, 413, "Request body too large");
    if (strcmp(req->method, "OPTIONS") == 0 &&
        tk_http_req_header(req, "Access-Control-Request-Method")) {
        tk_http_preflight(srv, req);
        return tk_http_send_response(srv, req);
    }
    tk_routes *routes = req->admin ? srv->admin_routes : srv->routes;
    int rc = tk_routes_match(routes, req->method, req->path, &req->match);
    if (rc == TK_ENOTFOUND || rc == TK_ENOMEM)
        return tk_http_send_error(srv, req, rc == TK_ENOMEM ? 500 : 404,
                                  rc == TK_ENOMEM ? "Internal server error" : "Not Found");
    if (rc == TK_ESTATE) {
        tk_http_resp_error(&req->resp, 405, "Method Not Allowed");
        tk_http_resp_header(&req->resp, "Allow", req->match.allow);
        return tk_http_send_response(srv, req);
    }
    req->route_label = req->match.route->pattern;
    const char *nul = NULL;
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, find_nul, &nul);
    if (nul)
        return refuse_nul(srv, req, nul);
    if (runs_inline(req)) {
        run_handler(srv, req);
        return finish(srv, req);
    }
    req->state = REQ_QUEUED;
    MHD_suspend_connection(req->conn);
    if (tk_workq_push(srv->work, worker_job, req) != TK_OK) {
        tk_http_count_refused(srv, "queue_full");
        tk_http_resp_error(&req->resp, 503, "Server busy, try again");
        tk_http_resp_header(&req->resp, "Retry-After", "1");
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
    }
    return MHD_YES;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    size_t *bytes = cls;
    (void)kind, (void)key, (void)value;
    *bytes += key_size + value_size + 4;
    return MHD_YES;
}

/* Checks a new request's line and headers; non-zero after answering it. */
static int refuse_early(tk_http_server *srv, tk_http_request *req, enum MHD_Result *out)
{
    int flags = req->admin ? 0 : tk_guard_uri_flags(req->conn);
    size_t hbytes = 0;
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, sum_header, &hbytes);
    const char *cl = tk_http_req_header(req, "Content-Length");
    const char *te = tk_http_req_header(req, "Transfer-Encoding");
    int status = 0;
    const char *why = NULL;
    if (flags & URI_TOO_LONG)
        status = 414, why = "Request URI too long";
    else if (hbytes > MAX_HEADER_BYTES)
        status = 431, why = "Request header fields too large";
    else if (flags & URI_BAD)
        status = 400, why = "Malformed request target";
    else if (cl && te)
        status = 400, why = "Content-Length and Transfer-Encoding must not both be sent";
    else if (cl && (!*cl || strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 18))
        status = 400, why = "Malformed Content-Length";
    else if (cl && strtoull(cl, NULL, 10) > (unsigned long long)srv->opt.body_limit)
        status = 413, why = "Request body too large";
    if (!status)
        return 0;
    if (status == 413) {
        /* refuse before reading the body; a client that sends it anyway (no Expect:
         * 100-continue) can still read this answer: the rest is read and dropped */
        req->too_large = 1;
        tk_guard_linger(req->conn);
    }
    tk_http_count_refused(srv, status == 413 ? "body_too_large" : "bad_request");
    *out = tk_http_send_error(srv, req, status, why);
    return 1;
}

void *tk_http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    int flags = strlen(uri) > MAX_URI ? URI_TOO_LONG : 0;
    int in_query = 0; /* a %00 in the query is the route's 422 (refuse_nul), in the path a 400 */
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++) {
        in_query |= *p == '?';
        if (*p < 0x20 || *p == 0x7f)
            flags |= URI_BAD;
        else if (*p == '%') {
            int ok = isxdigit(p[1]) && isxdigit(p[2]);
            if (!ok || (!in_query && p[1] == '0' && p[2] == '0'))
                flags |= URI_BAD;
        }
    }
    tk_guard_reading(conn, flags);
    return NULL;
}

/* A decoded path must be UTF-8: the router and every plugin can rely on it. */
static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80             ? 0
                : (*s & 0xe0) == 0xc0 ? 1
                : (*s & 0xf0) == 0xe0 ? 2
                : (*s & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *s < 0xc2) || (n == 3 && *s > 0xf4))
            return 0;
        unsigned cp = n == 0 ? *s : (unsigned)(*s & (0x3f >> n));
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        s += n + 1;
    }
    return 1;
}

enum MHD_Result tk_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls)
{
    tk_http_listener *l = cls;
    tk_http_server *srv = l->srv;
    tk_http_request *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req) {
            tk_logf(NULL, TK_LOG_ERROR,
                    "http: out of memory for a request; closing its connection");
            return MHD_NO;
        }
        *con_cls = req;
        pthread_mutex_lock(&srv->active_lock);
        srv->active++;
        pthread_mutex_unlock(&srv->active_lock);
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = url;
        req->admin = l->admin;
        find_client(srv, req);
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-ID");
        if (rid && request_id_ok(rid))
            snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
        else
            tk_uuid4(req->request_id);
        enum MHD_Result out;
        if (refuse_early(srv, req, &out))
            return out;
        if (!utf8_ok((const unsigned char *)url)) {
            tk_http_count_refused(srv, "bad_request");
            return tk_http_send_error(srv, req, 400, "Malformed request target");
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->state != REQ_READING || req->too_large)
            return MHD_YES; /* answered early, or past the limit: the rest is dropped */
        if (req->body_len + n > (size_t)srv->opt.body_limit) {
            /* a chunked body past the limit: libmicrohttpd only answers once the body is
             * read, so it is dropped as it comes (the read timeout bounds how long) */
            req->too_large = 1;
            tk_http_count_refused(srv, "body_too_large");
            return MHD_YES;
        }
        if (req->body_len + n + 1 > req->body_cap) {
            size_t cap = req->body_cap ? req->body_cap : 1024;
            while (req->body_len + n + 1 > cap)
                cap *= 2;
            char *b = realloc(req->body, cap);
            if (!b) {
                const char *kv[] = {"path", req->path, "request_id", req->request_id};
                tk_log_write(NULL, TK_LOG_ERROR,
                             "http: out of memory for a request body; closing its connection", kv,
                             2);
                return MHD_NO;
            }
            req->body = b;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    switch (req->state) {
    case REQ_READING: tk_guard_busy(conn); return dispatch(srv, req);
    case REQ_DONE: return finish(srv, req);
    default: return MHD_YES;
    }
}

void tk_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    tk_http_listener *l = cls;
    tk_http_server *srv = l->srv;
    tk_http_request *req = *con_cls;
    (void)toe;
    if (!req)
        return;
    tk_guard_idle(conn);
    tk_sse_discard(&req->resp);
    tk_http_resp_clear(&req->resp);
    tk_route_match_clear(&req->match);
    free(req->body);
    free(req);
    *con_cls = NULL;
    pthread_mutex_lock(&srv->active_lock);
    if (--srv->active == 0)
        pthread_cond_broadcast(&srv->active_cond);
    pthread_mutex_unlock(&srv->active_lock);
}

/*
 * The core HTTP server (libmicrohttpd): plugin routes, /health, /ready,
 * /metrics, CORS and security headers. How threads are used is described in
 * http_internal.h; connection limits and deadlines live in http_guard.c,
 * event streams in http_sse.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"
#include "ids.h"
#include "log.h"

#define JSON_CT "application/json; charset=utf-8"
#define MAX_URI 8192            /* longer request targets get 414 */
#define MAX_HEADER_BYTES 32768  /* more header bytes get 431 */
#define MHD_MEMORY (128 * 1024) /* per connection: request line, headers, buffers */

/* One listening socket: the API's, or the admin one (metrics and probes only). */
typedef struct listener {
    tk_http_server *srv;
    int admin;
} listener;
static listener *listener_of(tk_http_server *srv, int admin);

/* ---- request accessors ------------------------------------------------ */

const char *tk_http_req_method(const tk_http_request *req) { return req->method; }
const char *tk_http_req_path(const tk_http_request *req) { return req->path; }

const char *tk_http_req_param(const tk_http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->match.nparams; i++) {
        const char *p = req->match.names[i]; /* "{name}" */
        if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}' && p[n + 2] == '\0')
            return req->match.values[i];
    }
    return NULL;
}

const char *tk_http_req_query(const tk_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *tk_http_req_header(const tk_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *tk_http_req_body(const tk_http_request *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *tk_http_req_id(const tk_http_request *req) { return req->request_id; }

const char *tk_http_req_client(const tk_http_request *req) { return req->client; }

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

/* ---- response setters ------------------------------------------------- */

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
static int json_reply(tk_http_response *resp, int status, json_t *o)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!txt)
        return TK_ENOMEM;
    tk_http_resp_status(resp, status);
    int rc = tk_http_resp_body(resp, JSON_CT, txt, strlen(txt));
    free(txt);
    return rc;
}

int tk_http_resp_error(tk_http_response *resp, int status, const char *detail)
{
    return json_reply(resp, status, json_pack("{s:s}", "detail", detail ? detail : ""));
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

/* ---- core routes ------------------------------------------------------ */

static int route_health(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    return json_reply(resp, 200,
                      json_pack("{s:s,s:s}", "status", "healthy", "service", srv->app_id));
}

static int route_ready(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    if (!atomic_load(&srv->ready)) {
        const char *reason = atomic_load(&srv->not_ready_reason);
        return json_reply(
            resp, 503,
            json_pack("{s:s,s:s}", "status", "not_ready", "reason", reason ? reason : ""));
    }
    json_t *o = json_object();
    int ready = 1;
    json_object_set_new(o, "status", json_string("ready"));
    for (int i = 0; i < srv->nprobes; i++) {
        int ok = srv->probes[i].fn(srv->probes[i].ud);
        ready &= ok;
        json_object_set_new(o, srv->probes[i].name, json_string(ok ? "connected" : "unreachable"));
    }
    if (!ready)
        json_object_set_new(o, "status", json_string("not_ready"));
    return json_reply(resp, ready ? 200 : 503, o);
}

static int route_metrics(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    size_t len = 0;
    char *text = tk_metrics_render(srv->metrics, &len);
    if (!text)
        return TK_ENOMEM;
    int rc = tk_http_resp_body(resp, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

/* ---- the server ------------------------------------------------------- */

struct listeners {
    listener api, admin;
};

tk_http_server *tk_http_new(const tk_http_options *opt, tk_metrics *metrics, char *err,
                            size_t errlen)
{
    tk_http_server *srv = calloc(1, sizeof(*srv) + sizeof(struct listeners));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct listeners *ls = (struct listeners *)(srv + 1);
    ls->api = (listener){srv, 0};
    ls->admin = (listener){srv, 1};
    srv->opt = *opt;
    srv->opt.admin_listen = NULL;
    srv->listen = strdup(opt->listen ? opt->listen : "0.0.0.0:8000");
    srv->admin_listen = opt->admin_listen && *opt->admin_listen ? strdup(opt->admin_listen) : NULL;
    srv->app_id = strdup(opt->app_id ? opt->app_id : "taskora-backend");
    srv->metrics = metrics;
    srv->routes = tk_routes_new();
    srv->admin_routes = tk_routes_new();
    pthread_mutex_init(&srv->active_lock, NULL);
    tk_cond_init_monotonic(&srv->active_cond);
    pthread_mutex_init(&srv->sse_lock, NULL);
    srv->sse_keepalive_ms = opt->sse_keepalive_ms > 0 ? opt->sse_keepalive_ms : 30000;
    atomic_store(&srv->not_ready_reason, "starting");
    size_t nprox = json_array_size(opt->trusted_proxies);
    srv->trusted = calloc(nprox ? nprox : 1, sizeof(*srv->trusted));
    for (size_t i = 0; srv->trusted && i < nprox; i++)
        if (tk_cidr_parse(json_string_value(json_array_get(opt->trusted_proxies, i)),
                          &srv->trusted[srv->ntrusted]) == 0)
            srv->ntrusted++;
    if (!srv->trusted || !srv->listen || !srv->app_id || !srv->routes || !srv->admin_routes ||
        (opt->admin_listen && *opt->admin_listen && !srv->admin_listen)) {
        snprintf(err, errlen, "out of memory");
        tk_http_free(srv);
        return NULL;
    }
    static const char *const req_labels[] = {"method", "route", "status", NULL};
    static const char *const dur_labels[] = {"method", "route", NULL};
    static const char *const why_labels[] = {"reason", NULL};
    char merr[256];
    srv->requests = tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_http_requests_total",
                                      "HTTP requests answered, by method, route and status",
                                      req_labels, NULL, 0, merr, sizeof(merr));
    srv->duration =
        tk_metrics_family(metrics, TK_METRIC_HISTOGRAM, "taskora_http_request_duration_seconds",
                          "Time from request to response, by method and route", dur_labels, NULL, 0,
                          merr, sizeof(merr));
    srv->inflight =
        tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_http_requests_in_flight",
                          "HTTP requests being handled", NULL, NULL, 0, merr, sizeof(merr));
    srv->refused =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_http_refused_total",
                          "Connections and requests refused or cut by a limit, by reason",
                          why_labels, NULL, 0, merr, sizeof(merr));
    tk_routes *probes = srv->admin_listen ? srv->admin_routes : srv->routes;
    if (tk_routes_add(srv->routes, "GET", "/health", route_health, srv, "core") ||
        tk_routes_add(srv->routes, "GET", "/ready", route_ready, srv, "core") ||
        tk_routes_add(probes, "GET", "/metrics", route_metrics, srv, "core") ||
        (srv->admin_listen &&
         (tk_routes_add(srv->admin_routes, "GET", "/health", route_health, srv, "core") ||
          tk_routes_add(srv->admin_routes, "GET", "/ready", route_ready, srv, "core")))) {
        snprintf(err, errlen, "out of memory");
        tk_http_free(srv);
        return NULL;
    }
    return srv;
}

static listener *listener_of(tk_http_server *srv, int admin)
{
    struct listeners *ls = (struct listeners *)(srv + 1);
    return admin ? &ls->admin : &ls->api;
}

void tk_http_free(tk_http_server *srv)
{
    if (!srv)
        return;
    tk_http_stop(srv, 0);
    tk_routes_free(srv->routes);
    tk_routes_free(srv->admin_routes);
    pthread_mutex_destroy(&srv->active_lock);
    pthread_mutex_destroy(&srv->sse_lock);
    pthread_cond_destroy(&srv->active_cond);
    free(srv->trusted);
    free(srv->listen);
    free(srv->admin_listen);
    free(srv->app_id);
    free(srv);
}

int tk_http_route(tk_http_server *srv, const char *method, const char *pattern,
                  tk_http_handler handler, void *ud, const char *owner)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    return tk_routes_add(srv->routes, method, pattern, handler, ud, owner);
}

void tk_http_set_ready(tk_http_server *srv, int ready, const char *reason)
{
    atomic_store(&srv->not_ready_reason, reason);
    atomic_store(&srv->ready, ready);
}

const char *tk_http_url(const tk_http_server *srv) { return srv->url; }
int tk_http_add_probe(tk_http_server *srv, const char *name, int (*probe)(void *ud), void *ud)
{
    if (atomic_load(&srv->started) || srv->nprobes == 4)
        return TK_ESTATE;
    srv->probes[srv->nprobes++] = (struct probe){name, probe, ud};
    return 0;
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

void tk_http_common_headers(tk_http_server *srv, tk_http_request *req, struct MHD_Response *r,
                            int stream)
{
    MHD_add_response_header(r, "X-Request-ID", req->request_id);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (!stream && carries_credentials(req) &&
        !MHD_get_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
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

/* Sends req->resp with the headers every response carries, and logs/counts it. */
static enum MHD_Result send_response(tk_http_server *srv, tk_http_request *req)
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
    tk_http_common_headers(srv, req, r, 0);
    int status = resp->status ? resp->status : 200;
    /* while stopping, every answer ends its connection: clients reconnect elsewhere */
    if (req->too_large || status == 400 || status == 414 || status == 431 ||
        atomic_load(&srv->stopping))
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

/* Sends whatever req->resp holds: an event stream or a plain answer. */
static enum MHD_Result finish(tk_http_server *srv, tk_http_request *req)
{
    if (req->resp.sse)
        return tk_sse_send_response(srv, req);
    return send_response(srv, req);
}

static enum MHD_Result send_error(tk_http_server *srv, tk_http_request *req, int status,
                                  const char *detail)
{
    tk_http_resp_clear(&req->resp);
    tk_http_resp_error(&req->resp, status, detail);
    return send_response(srv, req);
}

static int set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, tk_http_auth2_fn fn2,
                             void *ud)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    if (srv->auth || srv->auth2)
        return TK_EEXIST;
    srv->auth = fn;
    srv->auth2 = fn2;
    srv->auth_ud = ud;
    return TK_OK;
}

int tk_http_set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, void *ud)
{
    return set_authenticator(srv, fn, NULL, ud);
}

int tk_http_set_authenticator2(tk_http_server *srv, tk_http_auth2_fn fn, void *ud)
{
    return set_authenticator(srv, NULL, fn, ud);
}

int tk_http_authenticate2(const tk_http_request *req, tk_http_response *resp, char *user,
                          size_t len, int allow_query_token)
{
    tk_http_server *srv = req ? req->srv : NULL;
    if (srv && srv->auth2) {
        int rc = srv->auth2(srv->auth_ud, req, resp, user, len, allow_query_token);
        return rc > 0 ? TK_OK : rc; /* a positive answer is not a plugin's to give; read it as OK */
    }
    if (srv && srv->auth) /* a 1.4 authenticator: 1 is success, anything else answered */
        return srv->auth(srv->auth_ud, req, resp, user, len, allow_query_token) == 1 ? TK_OK
                                                                                     : TK_EPERM;
    tk_http_resp_error(resp, 503, "No authenticator is loaded");
    return TK_EUNAVAILABLE;
}

int tk_http_authenticate(const tk_http_request *req, tk_http_response *resp, char *user, size_t len,
                         int allow_query_token)
{
    return tk_http_authenticate2(req, resp, user, len, allow_query_token) == TK_OK;
}

static void preflight(tk_http_server *srv, tk_http_request *req)
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
    tk_http_resp_body(resp, "text/plain; charset=utf-8", "", 0);
    tk_http_resp_header(resp, "Access-Control-Allow-Methods",
                        "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    tk_http_resp_header(
        resp, "Access-Control-Allow-Headers",
        want && header_value_ok(want) ? want : "Authorization, Content-Type, X-Request-ID");
    tk_http_resp_header(resp, "Access-Control-Max-Age", "600");
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
static void cancel_job(void *arg)
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
    json_reply(&req->resp, 422, o);
    return send_response(srv, req);
}

static enum MHD_Result dispatch(tk_http_server *srv, tk_http_request *req)
{
    if (req->too_large)
        return send_error(srv, req, 413, "Request body too large");
    if (strcmp(req->method, "OPTIONS") == 0 &&
        tk_http_req_header(req, "Access-Control-Request-Method")) {
        preflight(srv, req);
        return send_response(srv, req);
    }
    tk_routes *routes = req->admin ? srv->admin_routes : srv->routes;
    int rc = tk_routes_match(routes, req->method, req->path, &req->match);
    if (rc == TK_ENOTFOUND || rc == TK_ENOMEM)
        return send_error(srv, req, rc == TK_ENOMEM ? 500 : 404,
                          rc == TK_ENOMEM ? "Internal server error" : "Not Found");
    if (rc == TK_ESTATE) {
        tk_http_resp_error(&req->resp, 405, "Method Not Allowed");
        tk_http_resp_header(&req->resp, "Allow", req->match.allow);
        return send_response(srv, req);
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
    *out = send_error(srv, req, status, why);
    return 1;
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    listener *l = cls;
    tk_http_server *srv = l->srv;
    tk_http_request *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
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
            return send_error(srv, req, 400, "Malformed request target");
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
            if (!b)
                return MHD_NO;
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    listener *l = cls;
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

/*
 * libmicrohttpd's own messages (a client that vanished mid-request, a refused
 * connection...). Clients cause them at will, so at most 10 are logged in any
 * 10 s; the next one logged says how many were dropped.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct timespec window;
    static int in_window, dropped;
    (void)cls;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&lock);
    if (window.tv_sec == 0 || now.tv_sec - window.tv_sec >= 10) {
        window = now;
        in_window = 0;
    }
    int log_it = in_window < 10;
    in_window += log_it;
    int was_dropped = log_it ? dropped : 0;
    if (log_it)
        dropped = 0;
    else
        dropped++;
    pthread_mutex_unlock(&lock);
    if (!log_it)
        return;
    char msg[512], n[16];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    snprintf(n, sizeof(n), "%d", was_dropped);
    const char *kv[] = {"source", "libmicrohttpd", "dropped_before", n};
    tk_log_write(NULL, TK_LOG_WARN, msg, kv, was_dropped ? 2 : 1);
}

/* Parses "host:port" / "[v6]:port" into a socket address. */
static int parse_listen(const char *key, const char *listen, struct sockaddr_storage *ss,
                        socklen_t *sslen, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    if (colon && listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
        h = listen + 1;
        hlen -= 2;
    }
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || hlen == 0 || hlen >= sizeof(host) || !end || *end || end == colon + 1 ||
        port < 0 || port > 65535) {
        snprintf(err, errlen, "%s: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8000)", key, listen);
        return TK_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%ld", port);
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "%s: cannot resolve \"%s\": %s", key, host, gai_strerror(gai));
        return TK_EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The URL a listener answers on, for logs and tests. */
static void listen_url(struct MHD_Daemon *d, const struct sockaddr_storage *ss, char *url,
                       size_t len)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : 0;
    char addr[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));
        if (strcmp(addr, "::") == 0)
            snprintf(addr, sizeof(addr), "::1");
        snprintf(url, len, "http://[%s]:%u", addr, bound);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
        if (strcmp(addr, "0.0.0.0") == 0)
            snprintf(addr, sizeof(addr), "127.0.0.1");
        snprintf(url, len, "http://%s:%u", addr, bound);
    }
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* The admin listener: metrics and probes, a thread per connection, few connections. */
static int start_admin(tk_http_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (parse_listen("http.admin_listen", srv->admin_listen, &ss, &sslen, err, errlen))
        return TK_EINVAL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->admin_mhd = MHD_start_daemon(
        flags, port_of(&ss), NULL, NULL, &on_request, listener_of(srv, 1),
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, listener_of(srv, 1),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!srv->admin_mhd) {
        snprintf(err, errlen, "http: cannot listen on %s (http.admin_listen)", srv->admin_listen);
        return TK_ERR;
    }
    listen_url(srv->admin_mhd, &ss, srv->admin_url, sizeof(srv->admin_url));
    const char *kv[] = {"listen", srv->admin_listen, "url", srv->admin_url};
    tk_log_write(NULL, TK_LOG_INFO, "http admin listener (metrics, probes)", kv, 2);
    return 0;
}

int tk_http_start(tk_http_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (parse_listen("http.listen", srv->listen, &ss, &sslen, err, errlen))
        return TK_EINVAL;
    tk_guard_options go = {.max_per_client = srv->opt.max_connections_per_client,
                           .read_timeout_ms = srv->opt.read_timeout_s * 1000,
                           .idle_timeout_ms = srv->opt.timeout_s * 1000};
    int workers = srv->opt.workers > 0 ? srv->opt.workers : 16;
    srv->guard = tk_guard_new(srv, &go);
    srv->work = tk_workq_new("http workers", workers,
                             srv->opt.queue_limit > 0 ? srv->opt.queue_limit : 1024);
    if (!srv->guard || !srv->work || tk_guard_start(srv->guard)) {
        snprintf(err, errlen, "http: cannot start its threads");
        return TK_ERR;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned io = srv->opt.io_threads > 0 ? (unsigned)srv->opt.io_threads : 2u;
    atomic_store(&srv->started, 1); /* the route table is read-only from now on */
    srv->mhd = MHD_start_daemon(
        flags, port_of(&ss), tk_guard_accept, srv->guard, &on_request, listener_of(srv, 0),
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, io, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->opt.timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, listener_of(srv, 0),
        MHD_OPTION_NOTIFY_CONNECTION, tk_guard_notify, srv->guard, MHD_OPTION_URI_LOG_CALLBACK,
        uri_log, srv, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errlen, "http: cannot listen on %s (address in use or not permitted?)",
                 srv->listen);
        return TK_ERR;
    }
    listen_url(srv->mhd, &ss, srv->url, sizeof(srv->url));
    const char *kv[] = {"listen", srv->listen, "url", srv->url};
    tk_log_write(NULL, TK_LOG_INFO, "http server listening", kv, 2);
    if (srv->admin_listen && start_admin(srv, err, errlen) != 0) {
        tk_http_stop(srv, 0); /* nothing may be served once start-up fails */
        return TK_ERR;
    }
    return 0;
}

void tk_http_stop(tk_http_server *srv, int drain_ms)
{
    if (!srv)
        return;
    if (srv->mhd) {
        /* new connections are refused (tk_guard_accept), event streams end, and the requests
         * in progress may finish; answers from now on close their connections */
        atomic_store(&srv->stopping, 1);
        tk_sse_close_all(srv);
        struct timespec deadline = tk_deadline_ms(drain_ms);
        pthread_mutex_lock(&srv->active_lock);
        while (srv->active > 0 &&
               pthread_cond_timedwait(&srv->active_cond, &srv->active_lock, &deadline) == 0)
            ;
        int left = srv->active;
        pthread_mutex_unlock(&srv->active_lock);
        if (left > 0)
            tk_logf(NULL, TK_LOG_WARN,
                    "http: %d request(s) still in progress after %d ms; closing them", left,
                    drain_ms);
        /* handlers still running hold suspended connections: they finish (and resume them)
         * before the daemon may stop; requests not started get 503. The pool stays
         * allocated until the I/O threads are gone (a late push is refused, not a crash). */
        tk_workq_stop(srv->work, cancel_job);
        tk_sse_close_all(srv);
        MHD_stop_daemon(srv->mhd);
        srv->mhd = NULL;
    }
    tk_workq_free(srv->work);
    srv->work = NULL;
    tk_guard_free(srv->guard);
    srv->guard = NULL;
    if (srv->admin_mhd) {
        MHD_stop_daemon(srv->admin_mhd);
        srv->admin_mhd = NULL;
    }
}

/* The core HTTP server (libmicrohttpd): plugin routes, /health, /ready, /metrics. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "ids.h"
#include "log.h"
#include "routes.h"

#define JSON_CT "application/json; charset=utf-8"
#define MAX_RESP_HEADERS 32

struct tk_http_server {
    tk_http_options opt;
    char *listen;
    char *app_id;
    tk_metrics *metrics;
    tk_metric_family *requests, *duration, *inflight;
    tk_routes *routes;
    struct MHD_Daemon *mhd;
    atomic_int started;
    pthread_mutex_t active_lock; /* guards `active`, signalled when it drops */
    pthread_cond_t active_cond;
    int active; /* requests begun and not yet completed */
    atomic_int ready;
    struct probe {
        const char *name;
        int (*fn)(void *ud);
        void *ud;
    } probes[4]; /* what /ready asks besides start-up: the database, Kafka */
    int nprobes;
    const char *_Atomic not_ready_reason;
    char url[96];
    tk_http_auth_fn auth; /* the process's authenticator (set during init), or NULL */
    void *auth_ud;
    pthread_mutex_t sse_lock; /* guards the list of open event streams */
    struct tk_sse *streams;
    int sse_keepalive_ms;
};

struct tk_http_request {
    tk_http_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    tk_route_match match;
    char *body;
    size_t body_len, body_cap;
    int too_large;
    int responded;
    struct timespec start;
    char request_id[130];
};

typedef struct resp_header {
    char *name, *value;
} resp_header;

struct tk_http_response {
    struct tk_sse *sse; /* set by tk_sse_open: the response is an event stream */
    int status;
    char *content_type;
    char *body;
    size_t len;
    resp_header headers[MAX_RESP_HEADERS];
    size_t nheaders;
};

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

/* ---- response setters ------------------------------------------------- */

void tk_http_resp_status(tk_http_response *resp, int status)
{
    if (status >= 100 && status <= 599)
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

static void resp_clear(tk_http_response *resp)
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

tk_http_server *tk_http_new(const tk_http_options *opt, tk_metrics *metrics, char *err,
                            size_t errlen)
{
    tk_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->opt = *opt;
    srv->listen = strdup(opt->listen ? opt->listen : "0.0.0.0:8000");
    srv->app_id = strdup(opt->app_id ? opt->app_id : "taskora-backend");
    srv->metrics = metrics;
    srv->routes = tk_routes_new();
    pthread_mutex_init(&srv->active_lock, NULL);
    tk_cond_init_monotonic(&srv->active_cond);
    pthread_mutex_init(&srv->sse_lock, NULL);
    srv->sse_keepalive_ms = opt->sse_keepalive_ms > 0 ? opt->sse_keepalive_ms : 30000;
    atomic_store(&srv->not_ready_reason, "starting");
    if (!srv->listen || !srv->app_id || !srv->routes) {
        snprintf(err, errlen, "out of memory");
        tk_http_free(srv);
        return NULL;
    }
    static const char *const req_labels[] = {"method", "route", "status", NULL};
    static const char *const dur_labels[] = {"method", "route", NULL};
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
    if (tk_routes_add(srv->routes, "GET", "/health", route_health, srv, "core") ||
        tk_routes_add(srv->routes, "GET", "/ready", route_ready, srv, "core") ||
        tk_routes_add(srv->routes, "GET", "/metrics", route_metrics, srv, "core")) {
        snprintf(err, errlen, "out of memory");
        tk_http_free(srv);
        return NULL;
    }
    return srv;
}

void tk_http_free(tk_http_server *srv)
{
    if (!srv)
        return;
    tk_http_stop(srv, 0);
    tk_routes_free(srv->routes);
    pthread_mutex_destroy(&srv->active_lock);
    pthread_mutex_destroy(&srv->sse_lock);
    pthread_cond_destroy(&srv->active_cond);
    free(srv->listen);
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

/* 1: the origin is named in cors_origins; 2: allowed by "*" only; 0: not allowed. */
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

/* Sends resp with the headers every response carries, and logs/counts it. */
static enum MHD_Result send_response(tk_http_server *srv, tk_http_request *req,
                                     tk_http_response *resp, const char *route_label)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        resp_clear(resp);
        return MHD_NO;
    }
    resp->body = NULL; /* MHD owns it now */
    if (resp->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (size_t i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    MHD_add_response_header(r, "X-Request-ID", req->request_id);
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
    int status = resp->status ? resp->status : 200;
    enum MHD_Result ok = MHD_queue_response(req->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    req->responded = 1;

    double secs = tk_seconds_since(&req->start);
    char st[8], ms[32], bytes[32];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(ms, sizeof(ms), "%.3f", secs * 1000.0);
    snprintf(bytes, sizeof(bytes), "%zu", resp->len);
    const char *labels[] = {method_label(req->method), route_label, st};
    tk_metric_add(srv->requests, labels, 1);
    tk_metric_observe(srv->duration, labels, secs);
    const char *kv[] = {"method",     req->method,     "path",  req->path,  "status",
                        st,           "duration_ms",   ms,      "bytes",    bytes,
                        "request_id", req->request_id, "route", route_label};
    int probe = strcmp(route_label, "/health") == 0 || strcmp(route_label, "/ready") == 0 ||
                strcmp(route_label, "/metrics") == 0;
    tk_log_write(NULL, probe ? TK_LOG_DEBUG : TK_LOG_INFO, "http request", kv,
                 sizeof(kv) / sizeof(kv[0]) / 2);
    resp_clear(resp);
    return ok;
}

/* ---- server-sent event streams ------------------------------------------------
 * A stream is a queue of bytes the connection's thread reads through
 * MHD's content-reader callback (thread-per-connection: it may block). Two
 * owners: the connection (until MHD frees the response) and the plugin (until
 * tk_sse_release). on_close runs once, when the connection ends.
 */
#define SSE_MAX_QUEUED (64 * 1024)

struct tk_sse {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tk_buf q;       /* bytes not yet read by the connection */
    int closed;     /* no more data: the reader ends the response */
    int close_told; /* on_close was called */
    int refs;
    void (*on_close)(void *ud);
    void *ud;
    tk_http_server *srv;
    struct tk_sse *next;
};

static void sse_unref(tk_sse *s)
{
    pthread_mutex_lock(&s->lock);
    int left = --s->refs;
    pthread_mutex_unlock(&s->lock);
    if (left > 0)
        return;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    tk_buf_free(&s->q);
    free(s);
}

/* Appends under the lock; closes a stream whose reader fell too far behind. */
static int sse_put(tk_sse *s, const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c);
    if (s->closed)
        return TK_ESTATE;
    if (s->q.len + n > SSE_MAX_QUEUED) {
        tk_logf(NULL, TK_LOG_WARN, "event stream: client too slow (%zu bytes queued); closing it",
                s->q.len);
        s->closed = 1;
        pthread_cond_broadcast(&s->cond);
        return TK_ESTATE;
    }
    if (tk_buf_puts(&s->q, a) || tk_buf_puts(&s->q, b) || tk_buf_puts(&s->q, c))
        return TK_ENOMEM;
    pthread_cond_broadcast(&s->cond);
    return TK_OK;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    tk_sse *s = cls;
    (void)pos;
    pthread_mutex_lock(&s->lock);
    struct timespec deadline = tk_deadline_ms(s->srv->sse_keepalive_ms);
    while (s->q.len == 0 && !s->closed)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT && s->q.len == 0)
            sse_put(s, ": keepalive\n\n", "", "");
    if (s->q.len == 0) { /* closed and drained */
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = s->q.len < max ? s->q.len : max;
    memcpy(out, s->q.p, n);
    memmove(s->q.p, s->q.p + n, s->q.len - n);
    s->q.len -= n;
    pthread_mutex_unlock(&s->lock);
    return (ssize_t)n;
}

/* The connection is done with the stream (client gone, stream ended, server stopping). */
static void sse_connection_done(void *cls)
{
    tk_sse *s = cls;
    tk_http_server *srv = s->srv;
    pthread_mutex_lock(&srv->sse_lock);
    for (tk_sse **pp = &srv->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&srv->sse_lock);
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    int tell = !s->close_told;
    s->close_told = 1;
    pthread_mutex_unlock(&s->lock);
    if (tell && s->on_close)
        s->on_close(s->ud);
    sse_unref(s);
}

tk_sse *tk_sse_open(const tk_http_request *req, tk_http_response *resp, void (*on_close)(void *),
                    void *ud)
{
    if (!req || !resp || resp->sse || !req->srv)
        return NULL;
    tk_sse *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    tk_cond_init_monotonic(&s->cond);
    s->refs = 2; /* the connection's and the plugin's */
    s->on_close = on_close;
    s->ud = ud;
    s->srv = req->srv;
    resp->sse = s;
    resp->status = 200;
    pthread_mutex_lock(&s->srv->sse_lock);
    s->next = s->srv->streams;
    s->srv->streams = s;
    pthread_mutex_unlock(&s->srv->sse_lock);
    return s;
}

int tk_sse_send(tk_sse *s, const char *event, const char *data)
{
    if (!s || !data || strchr(data, '\n') || strchr(data, '\r') ||
        (event && (strchr(event, '\n') || strchr(event, '\r'))))
        return TK_EINVAL;
    pthread_mutex_lock(&s->lock);
    int rc = event ? sse_put(s, "event: ", event, "\n") : TK_OK;
    if (rc == TK_OK)
        rc = sse_put(s, "data: ", data, "\n\n");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int tk_sse_comment(tk_sse *s, const char *text)
{
    if (!s || !text || strchr(text, '\n') || strchr(text, '\r'))
        return TK_EINVAL;
    pthread_mutex_lock(&s->lock);
    int rc = sse_put(s, ": ", text, "\n\n");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void tk_sse_close(tk_sse *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void tk_sse_release(tk_sse *s)
{
    if (s)
        sse_unref(s);
}

int tk_http_set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, void *ud)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    if (srv->auth)
        return TK_EEXIST;
    srv->auth = fn;
    srv->auth_ud = ud;
    return TK_OK;
}

int tk_http_authenticate(const tk_http_request *req, tk_http_response *resp, char *user, size_t len,
                         int allow_query_token)
{
    tk_http_server *srv = req ? req->srv : NULL;
    if (!srv || !srv->auth) {
        tk_http_resp_error(resp, 503, "No authenticator is loaded");
        return 0;
    }
    return srv->auth(srv->auth_ud, req, resp, user, len, allow_query_token) == 1;
}

/* Ends every open stream (their readers finish; on_close follows from MHD). */
static void sse_close_all(tk_http_server *srv)
{
    pthread_mutex_lock(&srv->sse_lock);
    for (tk_sse *s = srv->streams; s; s = s->next)
        tk_sse_close(s);
    pthread_mutex_unlock(&srv->sse_lock);
}

/* Queues the response of a handler that opened a stream. */
static enum MHD_Result send_stream(tk_http_server *srv, tk_http_request *req,
                                   tk_http_response *resp, const char *route_label)
{
    tk_sse *s = resp->sse;
    resp->sse = NULL;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader,
                                                               s, sse_connection_done);
    if (!r) {
        sse_connection_done(s);
        resp_clear(resp);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* proxies: do not buffer */
    for (size_t i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    MHD_add_response_header(r, "X-Request-ID", req->request_id);
    const char *origin = tk_http_req_header(req, "Origin");
    int allowed = origin ? origin_allowed(srv, origin) : 0;
    if (allowed) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", allowed == 1 ? origin : "*");
        if (allowed == 1)
            MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
    }
    enum MHD_Result ok = MHD_queue_response(req->conn, 200, r);
    MHD_destroy_response(r);
    req->responded = 1;
    const char *kv[] = {"method",     req->method,    "path",      req->path, "status",
                        "200",        "route",        route_label, "stream",  "text/event-stream",
                        "request_id", req->request_id};
    tk_log_write(NULL, TK_LOG_INFO, "http request", kv, sizeof(kv) / sizeof(kv[0]) / 2);
    resp_clear(resp);
    return ok;
}

static enum MHD_Result send_error(tk_http_server *srv, tk_http_request *req, int status,
                                  const char *detail, const char *route_label)
{
    tk_http_response resp = {0};
    tk_http_resp_error(&resp, status, detail);
    return send_response(srv, req, &resp, route_label);
}

static enum MHD_Result preflight(tk_http_server *srv, tk_http_request *req)
{
    tk_http_response resp = {0};
    const char *origin = tk_http_req_header(req, "Origin");
    if (!origin || !origin_allowed(srv, origin))
        return send_error(srv, req, 400, "Disallowed CORS origin", "preflight");
    const char *want = tk_http_req_header(req, "Access-Control-Request-Headers");
    tk_http_resp_status(&resp, 204);
    tk_http_resp_body(&resp, "text/plain; charset=utf-8", "", 0);
    tk_http_resp_header(&resp, "Access-Control-Allow-Methods",
                        "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    tk_http_resp_header(
        &resp, "Access-Control-Allow-Headers",
        want && header_value_ok(want) ? want : "Authorization, Content-Type, X-Request-ID");
    tk_http_resp_header(&resp, "Access-Control-Max-Age", "600");
    return send_response(srv, req, &resp, "preflight");
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
    tk_http_response resp = {0};
    json_reply(&resp, 422, o);
    return send_response(srv, req, &resp, req->match.route->pattern);
}

static enum MHD_Result dispatch(tk_http_server *srv, tk_http_request *req)
{
    if (req->too_large)
        return send_error(srv, req, 413, "Request body too large", "unmatched");
    if (strcmp(req->method, "OPTIONS") == 0 &&
        tk_http_req_header(req, "Access-Control-Request-Method"))
        return preflight(srv, req);
    int rc = tk_routes_match(srv->routes, req->method, req->path, &req->match);
    if (rc == TK_ENOTFOUND || rc == TK_ENOMEM)
        return send_error(srv, req, rc == TK_ENOMEM ? 500 : 404,
                          rc == TK_ENOMEM ? "Internal server error" : "Not Found", "unmatched");
    if (rc == TK_ESTATE) {
        tk_http_response resp = {0};
        tk_http_resp_error(&resp, 405, "Method Not Allowed");
        tk_http_resp_header(&resp, "Allow", req->match.allow);
        return send_response(srv, req, &resp, "unmatched");
    }
    const char *nul = NULL;
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, find_nul, &nul);
    if (nul)
        return refuse_nul(srv, req, nul);
    const tk_route *rt = req->match.route;
    tk_http_response resp = {0};
    resp.status = 200;
    tk_metric_add(srv->inflight, NULL, 1);
    const char *tp = tk_http_req_header(req, "traceparent");
    tk_log_context(req->request_id, tp && strlen(tp) == 55 ? tp : NULL);
    rc = rt->handler(rt->ud, req, &resp);
    tk_log_context(NULL, NULL);
    tk_metric_add(srv->inflight, NULL, -1);
    if (resp.sse) {
        if (rc >= 0)
            return send_stream(srv, req, &resp, rt->pattern);
        tk_sse *s = resp.sse; /* the handler failed after opening it: no stream */
        resp.sse = NULL;
        tk_sse_close(s);
        sse_connection_done(s);
    }
    if (rc < 0 && (!resp.body || resp.status < 400)) {
        char code[16];
        snprintf(code, sizeof(code), "%d", rc);
        const char *kv[] = {"route", rt->pattern,     "owner",      rt->owner,
                            "error", tk_strerror(rc), "request_id", req->request_id};
        tk_log_write(NULL, TK_LOG_ERROR, "handler failed", kv, 4);
        resp_clear(&resp);
        tk_http_resp_error(&resp, 500, "Internal server error");
    }
    return send_response(srv, req, &resp, rt->pattern);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    tk_http_server *srv = cls;
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
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-ID");
        if (rid && request_id_ok(rid))
            snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
        else
            tk_uuid4(req->request_id);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)srv->opt.body_limit) {
            /* refuse before reading the body; MHD closes the connection after this */
            req->too_large = 1;
            return send_error(srv, req, 413, "Request body too large", "unmatched");
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->too_large || req->body_len + n > (size_t)srv->opt.body_limit) {
            req->too_large = 1;
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
    if (req->responded)
        return MHD_YES;
    return dispatch(srv, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tk_http_server *srv = cls;
    tk_http_request *req = *con_cls;
    (void)conn;
    (void)toe;
    if (!req)
        return;
    tk_route_match_clear(&req->match);
    free(req->body);
    free(req);
    *con_cls = NULL;
    pthread_mutex_lock(&srv->active_lock);
    if (--srv->active == 0)
        pthread_cond_broadcast(&srv->active_cond);
    pthread_mutex_unlock(&srv->active_lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    const char *kv[] = {"source", "libmicrohttpd"};
    tk_log_write(NULL, TK_LOG_WARN, msg, kv, 1);
}

/* Parses "host:port" / "[v6]:port" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                        char *err, size_t errlen)
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
        snprintf(err, errlen, "http.listen: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8000)", listen);
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
        snprintf(err, errlen, "http.listen: cannot resolve \"%s\": %s", host, gai_strerror(gai));
        return TK_EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int tk_http_start(tk_http_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (parse_listen(srv->listen, &ss, &sslen, err, errlen))
        return TK_EINVAL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    atomic_store(&srv->started, 1); /* the route table is read-only from now on */
    srv->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, &on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->opt.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errlen, "http: cannot listen on %s (address in use or not permitted?)",
                 srv->listen);
        return TK_ERR;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : port;
    char addr[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
        if (strcmp(addr, "::") == 0)
            snprintf(addr, sizeof(addr), "::1");
        snprintf(srv->url, sizeof(srv->url), "http://[%s]:%u", addr, bound);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
        if (strcmp(addr, "0.0.0.0") == 0)
            snprintf(addr, sizeof(addr), "127.0.0.1");
        snprintf(srv->url, sizeof(srv->url), "http://%s:%u", addr, bound);
    }
    const char *kv[] = {"listen", srv->listen, "url", srv->url};
    tk_log_write(NULL, TK_LOG_INFO, "http server listening", kv, 2);
    return 0;
}

void tk_http_stop(tk_http_server *srv, int drain_ms)
{
    if (!srv || !srv->mhd)
        return;
    /* stop accepting, end event streams, then let requests in progress finish */
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    sse_close_all(srv);
    struct timespec deadline = tk_deadline_ms(drain_ms);
    pthread_mutex_lock(&srv->active_lock);
    while (srv->active > 0 &&
           pthread_cond_timedwait(&srv->active_cond, &srv->active_lock, &deadline) == 0)
        ;
    int left = srv->active;
    pthread_mutex_unlock(&srv->active_lock);
    if (left > 0)
        tk_logf(NULL, TK_LOG_WARN,
                "http: %d request(s) still in progress after %d ms; closing them", left, drain_ms);
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
    if (fd != MHD_INVALID_SOCKET)
        close(fd); /* MHD leaves a quiesced socket to us, to close after stopping */
}

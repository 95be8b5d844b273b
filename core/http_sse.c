/*
 * Server-sent event streams. A stream is a queue of bytes that
 * libmicrohttpd's I/O thread reads through a content-reader callback. When
 * the queue is empty the connection is suspended (it holds no thread and
 * costs no polling) and the next send resumes it. Two owners: the
 * connection (until MHD frees the response) and the plugin (until
 * tk_sse_release). on_close runs once, when the connection ends.
 */
#include "http_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "http_guard.h"
#include "http_response.h"
#include "log.h"

#define SSE_MAX_QUEUED (256 * 1024) /* several of the largest events (realtime: 60 KiB) */

struct tk_sse {
    pthread_mutex_t lock;
    tk_buf q;       /* bytes not yet read by the connection */
    int closed;     /* no more data: the reader ends the response */
    int close_told; /* on_close was called */
    int refs;
    struct MHD_Connection *conn; /* while the connection has the stream, else NULL */
    int suspended;               /* the reader found nothing and suspended the connection */
    struct timespec last_put;    /* for keepalives */
    void (*on_close)(void *ud);
    void *ud;
    tk_http_server *srv;
    char client[48];
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
    tk_buf_free(&s->q);
    free(s);
}

/* Under s->lock: lets the connection run again if the reader suspended it. */
static void wake(tk_sse *s)
{
    if (s->suspended && s->conn) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

/* Under the lock: whether n more bytes may be queued; closes a stream whose reader fell too far
 * behind. TK_OK, or TK_ESTATE (closed). */
static int sse_room(tk_sse *s, size_t n)
{
    if (s->closed)
        return TK_ESTATE;
    if (s->q.len + n > SSE_MAX_QUEUED) {
        tk_logf(NULL, TK_LOG_WARN, "event stream: client too slow (%zu bytes queued); closing it",
                s->q.len);
        s->closed = 1;
        wake(s);
        return TK_ESTATE;
    }
    return TK_OK;
}

/* Appends under the lock (after sse_room). */
static int sse_put(tk_sse *s, const char *a, const char *b, const char *c)
{
    if (tk_buf_puts(&s->q, a) || tk_buf_puts(&s->q, b) || tk_buf_puts(&s->q, c))
        return TK_ENOMEM;
    clock_gettime(CLOCK_MONOTONIC, &s->last_put);
    wake(s);
    return TK_OK;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    tk_sse *s = cls;
    (void)pos;
    pthread_mutex_lock(&s->lock);
    if (s->q.len == 0) {
        if (s->closed) {
            pthread_mutex_unlock(&s->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        /* nothing to send: park the connection until sse_put wakes it */
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->lock);
        return 0;
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
    s->conn = NULL;
    s->suspended = 0;
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
    if (!req || !resp || resp->sse || !req->srv || req->admin)
        return NULL;
    tk_http_server *srv = req->srv;
    int limit = srv->opt.max_streams_per_client;
    /* one critical section for the checks and the insertion: concurrent opens cannot pass
     * the limit together, and tk_sse_close_all (stopping) sees every stream it let in */
    pthread_mutex_lock(&srv->sse_lock);
    int n = 0;
    for (tk_sse *o = srv->streams; o; o = o->next)
        n += strcmp(o->client, req->client) == 0;
    int stopping = atomic_load(&srv->stopping), over = limit > 0 && n >= limit;
    tk_sse *s = stopping || over ? NULL : calloc(1, sizeof(*s));
    if (s) {
        pthread_mutex_init(&s->lock, NULL);
        s->refs = 2; /* the connection's and the plugin's */
        s->on_close = on_close;
        s->ud = ud;
        s->srv = srv;
        s->conn = req->conn;
        snprintf(s->client, sizeof(s->client), "%s", req->client);
        clock_gettime(CLOCK_MONOTONIC, &s->last_put);
        s->next = srv->streams;
        srv->streams = s;
    }
    pthread_mutex_unlock(&srv->sse_lock);
    if (stopping) {
        tk_http_resp_error(resp, 503, "Server is shutting down");
        tk_http_resp_header(resp, "Retry-After", "1");
    } else if (over) {
        tk_http_count_refused(srv, "streams_per_client");
        tk_http_resp_error(resp, 429, "Too many event streams from this address");
        tk_http_resp_header(resp, "Retry-After", "30");
    } else if (s) {
        resp->sse = s;
        resp->status = 200;
    } else {
        tk_logf(NULL, TK_LOG_ERROR, "event stream: out of memory");
    }
    return s;
}

/* A field's value: one line (NULL passes: no such field). */
static int one_line(const char *v) { return !v || (!strchr(v, '\n') && !strchr(v, '\r')); }

int tk_sse_send_id(tk_sse *s, const char *id, const char *event, const char *data)
{
    if (!s || !data || !one_line(data) || !one_line(event) || !one_line(id))
        return TK_EINVAL;
    pthread_mutex_lock(&s->lock);
    /* room for the whole frame first: a stream never carries half an event */
    size_t n = strlen(data) + 8 + (id ? strlen(id) + 5 : 0) + (event ? strlen(event) + 8 : 0);
    int rc = sse_room(s, n);
    if (rc == TK_OK && id)
        rc = sse_put(s, "id: ", id, "\n");
    if (rc == TK_OK && event)
        rc = sse_put(s, "event: ", event, "\n");
    if (rc == TK_OK)
        rc = sse_put(s, "data: ", data, "\n\n");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int tk_sse_send(tk_sse *s, const char *event, const char *data)
{
    return tk_sse_send_id(s, NULL, event, data);
}

int tk_sse_comment(tk_sse *s, const char *text)
{
    if (!s || !text || strchr(text, '\n') || strchr(text, '\r'))
        return TK_EINVAL;
    pthread_mutex_lock(&s->lock);
    int rc = sse_room(s, strlen(text) + 4);
    if (rc == TK_OK)
        rc = sse_put(s, ": ", text, "\n\n");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void tk_sse_close(tk_sse *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    wake(s);
    pthread_mutex_unlock(&s->lock);
}

void tk_sse_release(tk_sse *s)
{
    if (s)
        sse_unref(s);
}

/* The last event of a stream the server ends: an EventSource reconnects after `retry` ms, by
 * then to another replica. No `id:`, so the client's Last-Event-ID stays its last real event's. */
#define SSE_RECONNECT "event: reconnect\ndata: {\"reason\":\"shutting down\"}\nretry: 1000\n\n"

void tk_sse_close_all(tk_http_server *srv)
{
    pthread_mutex_lock(&srv->sse_lock);
    for (tk_sse *s = srv->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (!s->closed)
            sse_put(s, SSE_RECONNECT, "", ""); /* a stream already ended gets nothing */
        s->closed = 1;
        wake(s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&srv->sse_lock);
}

void tk_sse_tick(tk_http_server *srv)
{
    pthread_mutex_lock(&srv->sse_lock);
    for (tk_sse *s = srv->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        /* a keepalive also finds clients that left: the write fails and the stream ends */
        if (!s->closed && tk_seconds_since(&s->last_put) * 1000.0 >= srv->sse_keepalive_ms &&
            sse_room(s, 13) == TK_OK)
            sse_put(s, ": keepalive\n\n", "", "");
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&srv->sse_lock);
}

void tk_sse_discard(tk_http_response *resp)
{
    tk_sse *s = resp->sse;
    resp->sse = NULL;
    if (!s)
        return;
    tk_sse_close(s);
    sse_connection_done(s);
}

enum MHD_Result tk_sse_send_response(tk_http_server *srv, tk_http_request *req)
{
    tk_http_response *resp = &req->resp;
    tk_sse *s = resp->sse;
    resp->sse = NULL;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader,
                                                               s, sse_connection_done);
    if (!r) {
        sse_connection_done(s);
        tk_http_resp_clear(resp);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* proxies: do not buffer */
    for (size_t i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    tk_http_common_headers(srv, req, r);
    tk_guard_stream(req->conn);
    enum MHD_Result ok = MHD_queue_response(req->conn, 200, r);
    MHD_destroy_response(r);
    req->state = REQ_SENT;
    const char *kv[] = {
        "method",     req->method,     "path",           req->path,  "status",
        "200",        "route",         req->route_label, "stream",   "text/event-stream",
        "request_id", req->request_id, "client",         req->client};
    tk_log_write(NULL, TK_LOG_INFO, "http request", kv, sizeof(kv) / sizeof(kv[0]) / 2);
    tk_http_resp_clear(resp);
    return ok;
}

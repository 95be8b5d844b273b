/* The core HTTP server (libmicrohttpd): plugin routes, /health, /ready, /metrics. */
#ifndef TK_CORE_HTTP_SERVER_H
#define TK_CORE_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>

#include "metrics.h"
#include "taskora/plugin.h"

typedef struct tk_http_server tk_http_server;

typedef struct tk_http_options {
    const char *listen;   /* "HOST:PORT" or "[V6]:PORT" */
    const char *app_id;   /* reported by /health */
    long long body_limit; /* bytes; larger bodies get 413 */
    json_t *cors_origins; /* array of strings (borrowed), "*" allows any */
    int max_connections;
    int timeout_s;
    int sse_keepalive_ms;           /* ": keepalive" on idle event streams (0: 30 s) */
    json_t *trusted_proxies;        /* array of "ADDR" / "ADDR/BITS" (borrowed), or NULL */
    const char *admin_listen;       /* "HOST:PORT" for /metrics (and probes), or NULL/"" */
    int read_timeout_s;             /* request line to complete body (0: 10 s) */
    int max_connections_per_client; /* per peer address; trusted proxies exempt (0: none) */
    int max_streams_per_client;     /* event streams per client address (0: none) */
    int workers;                    /* threads running handlers (0: 16) */
    int queue_limit;                /* requests waiting for a worker, then 503 (0: 1024) */
    int io_threads;                 /* threads reading and writing sockets (0: 2) */
} tk_http_options;

/* Creates a stopped server and registers the core routes. NULL with a reason in err. */
tk_http_server *tk_http_new(const tk_http_options *opt, tk_metrics *metrics, char *err,
                            size_t errlen);
/* Stops (if running) and frees. */
void tk_http_free(tk_http_server *srv);

/* Registers a route (see tk_host.http_route). Before tk_http_start only: else TK_ESTATE. */
int tk_http_route(tk_http_server *srv, const char *method, const char *pattern,
                  tk_http_handler handler, void *ud, const char *owner);

/* Binds and starts serving on its own threads. 0, or TK_ERR with a reason in err. */
int tk_http_start(tk_http_server *srv, char *err, size_t errlen);
/* The base URL it listens on ("http://127.0.0.1:8000"), after start. */
const char *tk_http_url(const tk_http_server *srv);
/*
 * Stops accepting connections, waits up to drain_ms for requests in
 * progress to finish and answer, then closes every connection.
 */
void tk_http_stop(tk_http_server *srv, int drain_ms);

/* What /ready answers: non-zero ready; `reason` (static) names why not. Any thread. */
void tk_http_set_ready(tk_http_server *srv, int ready, const char *reason);

/*
 * Makes /ready ask `probe` too: its answer appears as "<name>": "connected"
 * or "unreachable", and any 0 makes /ready 503 {"status":"not_ready",...}.
 * `name` is static. Before tk_http_start only (else TK_ESTATE); at most 4.
 */
int tk_http_add_probe(tk_http_server *srv, const char *name, int (*probe)(void *ud), void *ud);

/* Request accessors and response setters behind the host table. */
const char *tk_http_req_method(const tk_http_request *req);
const char *tk_http_req_path(const tk_http_request *req);
const char *tk_http_req_param(const tk_http_request *req, const char *name);
const char *tk_http_req_query(const tk_http_request *req, const char *name);
const char *tk_http_req_header(const tk_http_request *req, const char *name);
const char *tk_http_req_body(const tk_http_request *req, size_t *len);
const char *tk_http_req_id(const tk_http_request *req);
const char *tk_http_req_client(const tk_http_request *req);
void tk_http_resp_status(tk_http_response *resp, int status);
int tk_http_resp_header(tk_http_response *resp, const char *name, const char *value);
int tk_http_resp_body(tk_http_response *resp, const char *content_type, const void *body,
                      size_t len);
int tk_http_resp_error(tk_http_response *resp, int status, const char *detail);

/* The process's authenticator (see plugin.h): set before start; TK_EEXIST when set. */
int tk_http_set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, void *ud);
/* The 1.6 authenticator (TK_OK or a negative code); one of the two per process. */
int tk_http_set_authenticator2(tk_http_server *srv, tk_http_auth2_fn fn, void *ud);
/* The host table's http_authenticate (1 or 0) and http_authenticate2 (TK_OK or negative). */
int tk_http_authenticate(const tk_http_request *req, tk_http_response *resp, char *user, size_t len,
                         int allow_query_token);
int tk_http_authenticate2(const tk_http_request *req, tk_http_response *resp, char *user,
                          size_t len, int allow_query_token);

/* Server-sent event streams (the host table's sse_*; see plugin.h). */
tk_sse *tk_sse_open(const tk_http_request *req, tk_http_response *resp, void (*on_close)(void *),
                    void *ud);
int tk_sse_send(tk_sse *s, const char *event, const char *data);
int tk_sse_comment(tk_sse *s, const char *text);
void tk_sse_close(tk_sse *s);
void tk_sse_release(tk_sse *s);

#endif

/*
 * The HTTP server's internals, shared by http_server.c (requests and
 * responses), http_sse.c (event streams) and http_guard.c (connections:
 * limits, deadlines, lingering close). Not for plugins.
 *
 * Threads: libmicrohttpd's I/O threads (an epoll thread pool) read requests
 * and write responses and never block; a handler runs on a worker of
 * `work` while its connection is suspended, and the connection is resumed
 * to send the answer. Idle, slow and streaming connections hold no thread.
 */
#ifndef TK_CORE_HTTP_INTERNAL_H
#define TK_CORE_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "buf.h"
#include "http_server.h"
#include "netaddr.h"
#include "routes.h"
#include "workq.h"

#define MAX_RESP_HEADERS 32

typedef struct tk_http_guard tk_http_guard;

struct tk_http_server {
    tk_http_options opt;
    char *listen;
    char *admin_listen; /* NULL: /metrics is served on `listen` */
    char *app_id;
    atomic_int stopping;
    tk_metrics *metrics;
    tk_metric_family *requests, *duration, *inflight, *refused;
    tk_routes *routes;
    tk_routes *admin_routes; /* /metrics, /health, /ready on http.admin_listen */
    struct MHD_Daemon *mhd, *admin_mhd;
    tk_workq *work;
    tk_http_guard *guard;
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
    char url[96], admin_url[96];
    tk_cidr *trusted; /* http.trusted_proxies */
    size_t ntrusted;
    /* the process's authenticator (set during init): auth2, or a 1.4 auth, or neither */
    tk_http_auth_fn auth;
    tk_http_auth2_fn auth2;
    void *auth_ud;
    pthread_mutex_t sse_lock; /* guards the list of open event streams */
    struct tk_sse *streams;
    int sse_keepalive_ms;
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

enum req_state {
    REQ_READING = 0, /* headers and body arriving */
    REQ_QUEUED,      /* handed to a worker; the connection is suspended */
    REQ_DONE,        /* `resp` holds the answer, to be sent on the I/O thread */
    REQ_SENT,        /* a response was queued with MHD */
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
    int admin; /* arrived on the admin listener */
    enum req_state state;
    tk_http_response resp;
    const char *route_label;
    struct timespec start;
    char request_id[130];
    char client[48]; /* the client's address (see tk_http_req_client) */
};

/* ---- http_server.c ---- */
void tk_http_resp_clear(tk_http_response *resp);
/* Adds the headers every response carries (request id, CORS, security). */
void tk_http_common_headers(tk_http_server *srv, tk_http_request *req, struct MHD_Response *r,
                            int stream);
/* Counts a refusal by a limit ("connections", "streams", "queue", ...). */
void tk_http_count_refused(tk_http_server *srv, const char *what);

/* ---- http_sse.c ---- */
/* Queues the stream response of a handler that opened one (on the I/O thread). */
enum MHD_Result tk_sse_send_response(tk_http_server *srv, tk_http_request *req);
/* A failed handler's stream: closed and dropped without being sent. */
void tk_sse_discard(tk_http_response *resp);
/* Ends every open stream (server stopping). */
void tk_sse_close_all(tk_http_server *srv);
/* Writes ": keepalive" on streams idle for sse_keepalive_ms (the guard's timer). */
void tk_sse_tick(tk_http_server *srv);

/* ---- http_guard.c ---- */
typedef struct tk_guard_options {
    int max_per_client;  /* connections from one address (trusted proxies exempt) */
    int read_timeout_ms; /* request line to complete body */
    int idle_timeout_ms; /* end of a response to the next request line */
} tk_guard_options;

tk_http_guard *tk_guard_new(tk_http_server *srv, const tk_guard_options *o);
/* Starts the timer thread (deadlines, lingering closes, stream keepalives). */
int tk_guard_start(tk_http_guard *g);
void tk_guard_free(tk_http_guard *g);
/* MHD callbacks (cls = the guard). */
enum MHD_Result tk_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void tk_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* Phases of a connection, for its deadlines. */
/* A request line arrived; uri_flags (URI_*) say what was wrong with its raw URI. */
void tk_guard_reading(struct MHD_Connection *conn, int uri_flags);
int tk_guard_uri_flags(struct MHD_Connection *conn);
#define URI_TOO_LONG 1
#define URI_BAD 2 /* %00, a broken %-escape, or a control character */
void tk_guard_busy(struct MHD_Connection *conn);   /* the request is complete */
void tk_guard_idle(struct MHD_Connection *conn);   /* the response was sent */
void tk_guard_stream(struct MHD_Connection *conn); /* an event stream: no deadline */
/* Answered before the body was read: keep reading (and dropping) it after the close. */
void tk_guard_linger(struct MHD_Connection *conn);

#endif

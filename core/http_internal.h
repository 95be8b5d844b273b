/*
 * The HTTP server's shared state, for its modules: http_server.c (its
 * life), http_dispatch.c (a request's way to its handler), http_request.c
 * and http_response.c (what handlers read and set), http_auth.c (the
 * authenticator), http_sse.c (event streams), http_guard.c (connections:
 * limits, deadlines, lingering close), http_listen.c (listening sockets)
 * and http_core_routes.c. Types only; not for plugins.
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

#include "http_options.h"
#include "metrics.h"
#include "netaddr.h"
#include "routes.h"
#include "taskora/plugin.h"
#include "workq.h"

#define MAX_RESP_HEADERS 32

typedef struct tk_http_server tk_http_server;
typedef struct tk_http_guard tk_http_guard;
struct tk_openapi;

/* What the core's description routes serve (http_docs.c): the document, the page, its files. */
enum { TK_DOC_OPENAPI, TK_DOC_PAGE, TK_DOC_SCRIPT, TK_DOC_STYLE, TK_DOC_COUNT };
typedef struct tk_http_doc_route {
    tk_http_server *srv;
    int which; /* TK_DOC_* */
} tk_http_doc_route;

/* One listening socket: the API's, or the admin one (metrics and probes only). */
typedef struct tk_http_listener {
    tk_http_server *srv;
    int admin;
} tk_http_listener;

struct tk_http_server {
    tk_http_options opt;
    char *listen;
    char *admin_listen; /* NULL: /metrics is served on `listen` */
    char *app_id;
    atomic_int draining; /* SIGTERM's drain delay: serving, every answer closes its connection */
    atomic_int stopping; /* no new connections or streams; answers close their connections */
    int quiesced_fd;     /* the listening socket MHD let go of (tk_http_drain), or -1 */
    tk_metrics *metrics;
    tk_metric_family *requests, *duration, *inflight, *refused;
    tk_metric_family *ready_gauge; /* taskora_ready: what /ready answers, set at each scrape */
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
        const char *yes, *no; /* what /ready says for it: "connected", "unreachable" */
    } probes[4];              /* what /ready asks besides start-up: the database, Kafka */
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
    tk_http_listener listeners[2]; /* the API's, the admin one */
    /* the routes' descriptions (merged while plugins initialise) and, from start, the
     * document built from the route table with the ETags of it and of the docs page's files */
    struct tk_openapi *openapi;
    char *openapi_doc;
    size_t openapi_len;
    char doc_etags[TK_DOC_COUNT][24];
    tk_http_doc_route doc_routes[TK_DOC_COUNT];
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

#endif

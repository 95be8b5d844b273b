/* What the HTTP server is created with (http.* in the config). */
#ifndef TK_CORE_HTTP_OPTIONS_H
#define TK_CORE_HTTP_OPTIONS_H

#include <jansson.h>

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

#endif

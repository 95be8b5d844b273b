/* The core HTTP server (libmicrohttpd): plugin routes, /health, /ready, /metrics and the API
 * description (/openapi.json, /docs). Handlers read requests through http_request.h and
 * answer through http_response.h. */
#ifndef TK_CORE_HTTP_SERVER_H
#define TK_CORE_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>

#include "http_options.h"
#include "metrics.h"
#include "taskora/plugin.h"

typedef struct tk_http_server tk_http_server;

/* Creates a stopped server and registers the core routes. NULL with a reason in err. */
tk_http_server *tk_http_new(const tk_http_options *opt, tk_metrics *metrics, char *err,
                            size_t errlen);
/* Stops (if running) and frees. */
void tk_http_free(tk_http_server *srv);

/* Registers a route (see tk_host.http_route). Before tk_http_start only: else TK_ESTATE. */
int tk_http_route(tk_http_server *srv, const char *method, const char *pattern,
                  tk_http_handler handler, void *ud, const char *owner);

/*
 * Merges `owner`'s OpenAPI fragment into the description /openapi.json
 * serves (see tk_host.http_openapi and tk_openapi_add). Before tk_http_start
 * only: else TK_ESTATE. err says why it was refused.
 */
int tk_http_describe(tk_http_server *srv, const char *owner, const char *fragment, char *err,
                     size_t errlen);
/* The description of the tag `name` (an instance's routes), for /openapi.json and /docs. */
int tk_http_tag(tk_http_server *srv, const char *name, const char *description);

/* Binds and starts serving on its own threads. 0, or TK_ERR with a reason in err. */
int tk_http_start(tk_http_server *srv, char *err, size_t errlen);
/* The base URL it listens on ("http://127.0.0.1:8000"), after start. */
const char *tk_http_url(const tk_http_server *srv);
/*
 * The drain before a stop (SIGTERM): serves as usual for delay_ms, every
 * answer with `Connection: close`, then stops accepting connections without
 * resetting any the kernel already completed: a socket filter holds new
 * ones back (their clients retry, and then find the port closed), the
 * accept queue is emptied, and only then does accepting end. Where the
 * filter cannot be attached, it only waits delay_ms (tk_http_stop then
 * refuses as before). /ready is the caller's (tk_http_set_ready).
 */
void tk_http_drain(tk_http_server *srv, int delay_ms);
/*
 * Stops accepting connections (if tk_http_drain has not), ends event
 * streams (each with a last `reconnect` event), waits up to drain_ms for
 * requests in progress to finish and answer, then closes every connection.
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
/* A probe whose states /ready names `yes` and `no` (instead of "connected", "unreachable"). */
int tk_http_add_probe_named(tk_http_server *srv, const char *name, int (*probe)(void *ud), void *ud,
                            const char *yes, const char *no);

#endif

/* The routes the core serves itself: /health, /ready and /metrics. */
#ifndef TK_CORE_HTTP_CORE_ROUTES_H
#define TK_CORE_HTTP_CORE_ROUTES_H

#include "http_internal.h"

/*
 * Registers /health and /ready, and /metrics on the API listener; with an
 * admin listener, /metrics moves there and /health and /ready are served on
 * both. 0, or TK_ENOMEM.
 */
int tk_http_core_routes(tk_http_server *srv);

#endif

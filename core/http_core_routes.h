/* The routes the core serves itself: /health, /ready, /metrics and the API description. */
#ifndef TK_CORE_HTTP_CORE_ROUTES_H
#define TK_CORE_HTTP_CORE_ROUTES_H

#include <stddef.h>

#include "http_internal.h"

/*
 * Registers /health and /ready, and /metrics on the API listener; with an
 * admin listener, /metrics moves there and /health and /ready are served on
 * both. Then /openapi.json and /docs (http_docs.c). Each is described in the
 * document, as a plugin's routes are. 0, or TK_ENOMEM with err set.
 */
int tk_http_core_routes(tk_http_server *srv, char *err, size_t errlen);

#endif

/*
 * The API description as served: GET /openapi.json (the OpenAPI 3.1
 * document built from the route table) and GET /docs, a self-contained page
 * (with /docs/docs.js and /docs/docs.css) that renders it and can try each
 * operation. Revalidated with ETag / If-None-Match.
 */
#ifndef TK_CORE_HTTP_DOCS_H
#define TK_CORE_HTTP_DOCS_H

#include <stddef.h>

#include "http_internal.h"

/*
 * Registers the description's routes on the API listener and describes them,
 * with the components every fragment may refer to (schemas Error,
 * ErrorCode, ValidationIssue; the common error responses; securitySchemes
 * bearerAuth). 0, or a negative code with err set.
 */
int tk_http_docs_routes(tk_http_server *srv, char *err, size_t errlen);
/* Builds the document from the route table, once it is fixed (tk_http_start). 0 or TK_ENOMEM. */
int tk_http_docs_build(tk_http_server *srv);
/* Frees the descriptions and the document. */
void tk_http_docs_free(tk_http_server *srv);

#endif

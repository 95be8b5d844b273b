/*
 * The API description: each route owner's OpenAPI 3.1 fragment, checked
 * against the routes it registered and merged, and the one document built
 * from the route table, so what /openapi.json says cannot drift from what is
 * served.
 */
#ifndef TK_CORE_HTTP_OPENAPI_H
#define TK_CORE_HTTP_OPENAPI_H

#include <jansson.h>
#include <stddef.h>

#include "routes.h"

typedef struct tk_openapi tk_openapi;

tk_openapi *tk_openapi_new(void);
void tk_openapi_free(tk_openapi *oa);

/*
 * Merges `owner`'s fragment, JSON text {"paths": {...}, "components": {...}}.
 * Every operation (a lower-case method under a path) must be a route of
 * `routes` that `owner` registered, its pattern spelled as registered; a
 * path parameter must be one of the pattern's; every "#/components/..."
 * $ref must resolve (against what is merged so far and the fragment itself).
 * Components merge by name: one defined again identically is fine.
 * TK_EINVAL for anything else (err says what and where, with line and column
 * for text that is not JSON), TK_EEXIST for a component another fragment
 * defined differently or an operation described twice, TK_ENOMEM. On error
 * (out of memory aside) nothing is merged. Not thread-safe: before serving.
 */
int tk_openapi_add(tk_openapi *oa, const tk_routes *routes, const char *owner, const char *fragment,
                   char *err, size_t errlen);

/* The description of the tag `name` (an instance), shown beside its routes. Copied. */
int tk_openapi_tag(tk_openapi *oa, const char *name, const char *description);

/*
 * The whole document for `routes`: every route, described ones with their
 * operation and the defaults filled in (operationId, tags, path
 * parameters), the others marked "x-taskora-undescribed" and each logged
 * once as a warning. NULL when out of memory.
 */
json_t *tk_openapi_build(tk_openapi *oa, const tk_routes *routes, const char *version);

#endif

/*
 * The API description as served: /openapi.json, built once the route table
 * is fixed, and the /docs page that renders it, both revalidated by ETag.
 */
#include "http_docs.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs_assets.h"
#include "http_openapi.h"
#include "http_request.h"
#include "http_response.h"

#define JSON_CT "application/json; charset=utf-8"

/* The page loads only its own files, and may only talk to this origin. */
static const char CSP[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self'; connect-src 'self'; object-src 'none'; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* clang-format off */
/* What every fragment may refer to: the error shapes of API.md, the usual error answers, the
 * bearer token. */
static const char COMPONENTS_DOC[] =
    "{\"paths\": {}, \"components\": {"
    "\"securitySchemes\": {\"bearerAuth\": {\"type\": \"http\", \"scheme\": \"bearer\","
    " \"bearerFormat\": \"JWT\", \"description\": \"The access_token of POST /api/auth/login\"}},"
    "\"schemas\": {"
    "\"Error\": {\"type\": \"object\", \"required\": [\"detail\"], \"description\": \"Every error"
    " answer: a message, a code with a message, or the validation issues of a 422\","
    " \"properties\": {\"detail\": {\"oneOf\": [{\"type\": \"string\"},"
    " {\"$ref\": \"#/components/schemas/ErrorCode\"},"
    " {\"type\": \"array\", \"items\": {\"$ref\": \"#/components/schemas/ValidationIssue\"}}]}},"
    " \"examples\": [{\"detail\": \"Not Found\"}]},"
    "\"ErrorCode\": {\"type\": \"object\", \"required\": [\"code\", \"message\"],"
    " \"properties\": {\"code\": {\"type\": \"string\", \"examples\": [\"AI_UNAVAILABLE\"]},"
    " \"message\": {\"type\": \"string\"}}},"
    "\"ValidationIssue\": {\"type\": \"object\", \"required\": [\"loc\", \"msg\", \"type\"],"
    " \"properties\": {\"loc\": {\"type\": \"array\", \"items\": {\"type\": [\"string\", \"integer\"]},"
    " \"examples\": [[\"body\", \"title\"]]}, \"msg\": {\"type\": \"string\"},"
    " \"type\": {\"type\": \"string\", \"examples\": [\"missing\", \"json_invalid\"]}}}},"
    "\"headers\": {"
    "\"RetryAfter\": {\"description\": \"Seconds to wait before trying again\","
    " \"schema\": {\"type\": \"integer\", \"minimum\": 1}},"
    "\"WWWAuthenticate\": {\"description\": \"Bearer\", \"schema\": {\"type\": \"string\"}},"
    "\"ETag\": {\"description\": \"The version of the representation, for If-None-Match\","
    " \"schema\": {\"type\": \"string\"}}},"
    "\"parameters\": {\"IfNoneMatch\": {\"name\": \"If-None-Match\", \"in\": \"header\","
    " \"description\": \"An ETag seen before: 304 while it is still the current one\","
    " \"schema\": {\"type\": \"string\"}}},"
    "\"responses\": {"
    "\"BadRequest\": {\"description\": \"The request cannot be carried out as it is\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}},"
    "\"Unauthorized\": {\"description\": \"No token, or a bad, expired or revoked one\","
    " \"headers\": {\"WWW-Authenticate\": {\"$ref\": \"#/components/headers/WWWAuthenticate\"}},"
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"},"
    " \"example\": {\"detail\": \"Not authenticated\"}}}},"
    "\"Forbidden\": {\"description\": \"Not allowed for this user\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}},"
    "\"NotFound\": {\"description\": \"No such object (or not this user's)\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}},"
    "\"ValidationError\": {\"description\": \"The body, path or query is not valid\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"},"
    " \"example\": {\"detail\": [{\"loc\": [\"body\", \"title\"], \"msg\": \"Field required\","
    " \"type\": \"missing\"}]}}}},"
    "\"TooManyRequests\": {\"description\": \"A rate limit or quota refused it\","
    " \"headers\": {\"Retry-After\": {\"$ref\": \"#/components/headers/RetryAfter\"}},"
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}},"
    "\"ServiceUnavailable\": {\"description\": \"A dependency is down or the server is busy\","
    " \"headers\": {\"Retry-After\": {\"$ref\": \"#/components/headers/RetryAfter\"}},"
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}},"
    "\"InternalError\": {\"description\": \"An unexpected failure (the log says which)\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Error\"},"
    " \"example\": {\"detail\": \"Internal server error\"}}}}"
    "}}}";

/* One public GET of the description, with its answer's type and a 304. */
#define DOC_GET(path, id, summary, type, schema)                                                    \
    "\"" path "\": {\"get\": {\"operationId\": \"" id "\", \"summary\": \"" summary "\","           \
    " \"security\": [], \"parameters\": [{\"$ref\": \"#/components/parameters/IfNoneMatch\"}],"     \
    " \"responses\": {\"200\": {\"description\": \"" summary "\","                                 \
    " \"headers\": {\"ETag\": {\"$ref\": \"#/components/headers/ETag\"}},"                        \
    " \"content\": {\"" type "\": {\"schema\": " schema "}}},"                                     \
    " \"304\": {\"description\": \"Not modified since the ETag in If-None-Match\"}}}}"

static const char DOCS_DOC[] =
    "{\"paths\": {"
    DOC_GET("/openapi.json", "openapi", "This document (OpenAPI 3.1)", "application/json",
            "{\"type\": \"object\"}") ","
    DOC_GET("/docs", "docs", "A readable page of this document", "text/html",
            "{\"type\": \"string\"}") ","
    DOC_GET("/docs/docs.js", "docs_script", "The docs page's script", "text/javascript",
            "{\"type\": \"string\"}") ","
    DOC_GET("/docs/docs.css", "docs_style", "The docs page's style sheet", "text/css",
            "{\"type\": \"string\"}")
    "}}";
/* clang-format on */

static const struct doc_file {
    const char *path, *type;
} files[TK_DOC_COUNT] = {
    [TK_DOC_OPENAPI] = {"/openapi.json", JSON_CT},
    [TK_DOC_PAGE] = {"/docs", "text/html; charset=utf-8"},
    [TK_DOC_SCRIPT] = {"/docs/docs.js", "text/javascript; charset=utf-8"},
    [TK_DOC_STYLE] = {"/docs/docs.css", "text/css; charset=utf-8"},
};

/* What the route serves: the built document or one of the page's files. */
static const char *doc_body(const tk_http_server *srv, int which, size_t *len)
{
    switch (which) {
    case TK_DOC_PAGE: *len = tk_docs_html_len; return (const char *)tk_docs_html;
    case TK_DOC_SCRIPT: *len = tk_docs_js_len; return (const char *)tk_docs_js;
    case TK_DOC_STYLE: *len = tk_docs_css_len; return (const char *)tk_docs_css;
    default: *len = srv->openapi_len; return srv->openapi_doc;
    }
}

/* Whether If-None-Match (a list of ETags, weak ones too, or "*") names this one. */
static int etag_matches(const char *header, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = header; p && *p;) {
        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t len = strcspn(p, ",");
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if ((len == n && strncmp(p, etag, n) == 0) || (len == 1 && *p == '*'))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

static int route_doc(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    const tk_http_doc_route *d = ud;
    const char *etag = d->srv->doc_etags[d->which];
    int rc = tk_http_resp_header(resp, "ETag", etag);
    rc = rc ? rc : tk_http_resp_header(resp, "Cache-Control", "no-cache");
    if (!rc && d->which != TK_DOC_OPENAPI)
        rc = tk_http_resp_header(resp, "Content-Security-Policy", CSP);
    if (rc)
        return rc;
    if (etag_matches(tk_http_req_header(req, "If-None-Match"), etag)) {
        tk_http_resp_status(resp, 304);
        return TK_OK;
    }
    size_t len;
    const char *body = doc_body(d->srv, d->which, &len);
    return tk_http_resp_body(resp, files[d->which].type, body, len);
}

int tk_http_docs_routes(tk_http_server *srv, char *err, size_t errlen)
{
    for (int i = 0; i < TK_DOC_COUNT; i++) {
        srv->doc_routes[i] = (tk_http_doc_route){srv, i};
        if (tk_routes_add(srv->routes, "GET", files[i].path, route_doc, &srv->doc_routes[i],
                          "core")) {
            snprintf(err, errlen, "out of memory");
            return TK_ENOMEM;
        }
    }
    int rc = tk_openapi_add(srv->openapi, srv->routes, "core", COMPONENTS_DOC, err, errlen);
    return rc ? rc : tk_openapi_add(srv->openapi, srv->routes, "core", DOCS_DOC, err, errlen);
}

/* A strong ETag of the bytes (FNV-1a, 64 bits): "\"0123456789abcdef\"". */
static void etag_of(const void *p, size_t len, char out[24])
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

int tk_http_docs_build(tk_http_server *srv)
{
    json_t *doc = tk_openapi_build(srv->openapi, srv->routes, PACKAGE_VERSION);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return TK_ENOMEM;
    free(srv->openapi_doc);
    srv->openapi_doc = text;
    srv->openapi_len = strlen(text);
    for (int i = 0; i < TK_DOC_COUNT; i++) {
        size_t len;
        const char *body = doc_body(srv, i, &len);
        etag_of(body, len, srv->doc_etags[i]);
    }
    return TK_OK;
}

void tk_http_docs_free(tk_http_server *srv)
{
    tk_openapi_free(srv->openapi);
    srv->openapi = NULL;
    free(srv->openapi_doc);
    srv->openapi_doc = NULL;
}

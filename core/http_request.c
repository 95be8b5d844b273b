/* A request as handlers see it: method, path, parameters, query, headers, body, ids. */
#include "http_request.h"

#include <string.h>

#include "http_internal.h"

const char *tk_http_req_method(const tk_http_request *req) { return req->method; }

const char *tk_http_req_path(const tk_http_request *req) { return req->path; }

const char *tk_http_req_param(const tk_http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->match.nparams; i++) {
        const char *p = req->match.names[i]; /* "{name}" */
        if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}' && p[n + 2] == '\0')
            return req->match.values[i];
    }
    return NULL;
}

const char *tk_http_req_query(const tk_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *tk_http_req_header(const tk_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *tk_http_req_body(const tk_http_request *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *tk_http_req_id(const tk_http_request *req) { return req->request_id; }

const char *tk_http_req_client(const tk_http_request *req) { return req->client; }

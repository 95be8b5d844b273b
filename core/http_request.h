/* A request as handlers see it (the host table's http_* accessors). */
#ifndef TK_CORE_HTTP_REQUEST_H
#define TK_CORE_HTTP_REQUEST_H

#include <stddef.h>

#include "taskora/plugin.h"

const char *tk_http_req_method(const tk_http_request *req);
const char *tk_http_req_path(const tk_http_request *req);
const char *tk_http_req_param(const tk_http_request *req, const char *name);
const char *tk_http_req_query(const tk_http_request *req, const char *name);
const char *tk_http_req_header(const tk_http_request *req, const char *name);
const char *tk_http_req_body(const tk_http_request *req, size_t *len);
const char *tk_http_req_id(const tk_http_request *req);
/* The client's address: the peer, or the client a trusted proxy names (http.trusted_proxies). */
const char *tk_http_req_client(const tk_http_request *req);

#endif

/*
 * The HTTP server's answers: what handlers set (the host table's http_*
 * setters), the headers every answer carries (request id, security, CORS),
 * the CORS preflight, and sending an answer with its access log line.
 */
#ifndef TK_CORE_HTTP_RESPONSE_H
#define TK_CORE_HTTP_RESPONSE_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "http_internal.h"
#include "taskora/plugin.h"

void tk_http_resp_status(tk_http_response *resp, int status);
int tk_http_resp_header(tk_http_response *resp, const char *name, const char *value);
int tk_http_resp_body(tk_http_response *resp, const char *content_type, const void *body,
                      size_t len);
int tk_http_resp_error(tk_http_response *resp, int status, const char *detail);
/* Sets status and the compact JSON of o (consumed) as the body. */
int tk_http_json_reply(tk_http_response *resp, int status, json_t *o);
/* Frees what the response holds and empties it. */
void tk_http_resp_clear(tk_http_response *resp);

/*
 * Adds the headers every response carries, plain answers and event streams
 * alike: request id, security headers, no-store for requests with
 * credentials (unless the response set its own Cache-Control), and CORS.
 * Call after the response's own headers.
 */
void tk_http_common_headers(tk_http_server *srv, tk_http_request *req, struct MHD_Response *r);
/* Answers a CORS preflight (OPTIONS with Access-Control-Request-Method) in req->resp. */
void tk_http_preflight(tk_http_server *srv, tk_http_request *req);

/* Sends req->resp with the headers every response carries, and logs and counts it. */
enum MHD_Result tk_http_send_response(tk_http_server *srv, tk_http_request *req);
/* Replaces req->resp with a JSON error and sends it. */
enum MHD_Result tk_http_send_error(tk_http_server *srv, tk_http_request *req, int status,
                                   const char *detail);

/* Counts a refusal by a limit ("connections", "streams", "queue", ...). */
void tk_http_count_refused(tk_http_server *srv, const char *what);

#endif

/*
 * A request's way through the HTTP server: framing checks, routing, and the
 * handler on a worker (or on the I/O thread for cheap core routes).
 */
#ifndef TK_CORE_HTTP_DISPATCH_H
#define TK_CORE_HTTP_DISPATCH_H

#include <microhttpd.h>

#include "http_internal.h"

/* libmicrohttpd's callbacks; cls is the tk_http_listener the request arrived on. */
enum MHD_Result tk_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls);
void tk_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
/* Sees the raw request target before libmicrohttpd decodes it (cls: the server). */
void *tk_http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn);

/* A request still waiting for a worker when the server stops: answered 503 unstarted. */
void tk_http_cancel_job(void *arg);

#endif

/* Server-sent event streams (the host table's sse_*; see plugin.h). */
#ifndef TK_CORE_HTTP_SSE_H
#define TK_CORE_HTTP_SSE_H

#include <microhttpd.h>

#include "http_internal.h"
#include "taskora/plugin.h"

tk_sse *tk_sse_open(const tk_http_request *req, tk_http_response *resp, void (*on_close)(void *),
                    void *ud);
int tk_sse_send(tk_sse *s, const char *event, const char *data);
int tk_sse_send_id(tk_sse *s, const char *id, const char *event, const char *data);
int tk_sse_comment(tk_sse *s, const char *text);
void tk_sse_close(tk_sse *s);
void tk_sse_release(tk_sse *s);

/* Queues the stream response of a handler that opened one (on the I/O thread). */
enum MHD_Result tk_sse_send_response(tk_http_server *srv, tk_http_request *req);
/* A failed handler's stream: closed and dropped without being sent. */
void tk_sse_discard(tk_http_response *resp);
/* Ends every open stream (server stopping), each with a last `event: reconnect`. */
void tk_sse_close_all(tk_http_server *srv);
/* Writes ": keepalive" on streams idle for sse_keepalive_ms. */
void tk_sse_tick(tk_http_server *srv);

#endif

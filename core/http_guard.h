/*
 * The HTTP server's connections: a limit per client address, read and idle
 * deadlines that trickling cannot extend, lingering close after an early
 * answer. One timer thread runs them (and a tick for the server).
 */
#ifndef TK_CORE_HTTP_GUARD_H
#define TK_CORE_HTTP_GUARD_H

#include <microhttpd.h>

#include "http_internal.h"

typedef struct tk_guard_options {
    int max_per_client;     /* connections from one address (trusted proxies exempt) */
    int read_timeout_ms;    /* request line to complete body */
    int idle_timeout_ms;    /* end of a response to the next request line */
    void (*tick)(void *ud); /* called on the timer thread every 200 ms, or NULL */
    void *tick_ud;
} tk_guard_options;

tk_http_guard *tk_guard_new(tk_http_server *srv, const tk_guard_options *o);
/* Starts the timer thread (deadlines, lingering closes, the tick). */
int tk_guard_start(tk_http_guard *g);
void tk_guard_free(tk_http_guard *g);
/* MHD callbacks (cls = the guard). */
enum MHD_Result tk_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void tk_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* Phases of a connection, for its deadlines. */
/* A request line arrived; uri_flags (URI_*) say what was wrong with its raw URI. */
void tk_guard_reading(struct MHD_Connection *conn, int uri_flags);
int tk_guard_uri_flags(struct MHD_Connection *conn);
#define URI_TOO_LONG 1
#define URI_BAD 2 /* %00, a broken %-escape, or a control character */
void tk_guard_busy(struct MHD_Connection *conn);   /* the request is complete */
void tk_guard_idle(struct MHD_Connection *conn);   /* the response was sent */
void tk_guard_stream(struct MHD_Connection *conn); /* an event stream: no deadline */
/* Answered before the body was read: keep reading (and dropping) it after the close. */
void tk_guard_linger(struct MHD_Connection *conn);
/* Connections whose request has begun to arrive (a request line, not yet the whole request). */
int tk_guard_count_reading(tk_http_guard *g);

#endif

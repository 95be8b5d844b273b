/*
 * The HTTP server's listening sockets: listen addresses, the URLs they answer
 * on, libmicrohttpd's (rationed) messages, and the admin listener.
 */
#ifndef TK_CORE_HTTP_LISTEN_H
#define TK_CORE_HTTP_LISTEN_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_internal.h"

/* Parses "host:port" / "[v6]:port" into a socket address; `key` names it in err. */
int tk_http_parse_listen(const char *key, const char *listen, struct sockaddr_storage *ss,
                         socklen_t *sslen, char *err, size_t errlen);
/* The URL a listener answers on, for logs and tests. */
void tk_http_listen_url(struct MHD_Daemon *d, const struct sockaddr_storage *ss, char *url,
                        size_t len);
uint16_t tk_http_port_of(const struct sockaddr_storage *ss);
/* libmicrohttpd's messages: at most 10 logged in any 10 s (MHD_OPTION_EXTERNAL_LOGGER). */
void tk_http_mhd_log(void *cls, const char *fmt, va_list ap);
/*
 * Attaches a filter to a listening socket that drops new connection
 * requests (SYN) while handshakes already under way complete (Linux). 0,
 * or -1 with errno (ENOSYS elsewhere).
 */
int tk_http_listen_hold_new(int fd);
/* The length of a listening socket's accept queue, or -1 when it cannot be known. */
int tk_http_listen_backlog(int fd);
/* Starts the admin listener (http.admin_listen): metrics and probes. 0, or TK_ERR with err. */
int tk_http_start_admin(tk_http_server *srv, char *err, size_t errlen);

#endif

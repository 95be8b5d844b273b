/* The process's authenticator: the one plugin that checks every plugin's requests. */
#ifndef TK_CORE_HTTP_AUTH_H
#define TK_CORE_HTTP_AUTH_H

#include <stddef.h>

#include "http_internal.h"
#include "taskora/plugin.h"

/* The process's authenticator (see plugin.h): set before start; TK_EEXIST when set. */
int tk_http_set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, void *ud);
/* The 1.6 authenticator (TK_OK or a negative code); one of the two per process. */
int tk_http_set_authenticator2(tk_http_server *srv, tk_http_auth2_fn fn, void *ud);
/* The host table's http_authenticate (1 or 0) and http_authenticate2 (TK_OK or negative). */
int tk_http_authenticate(const tk_http_request *req, tk_http_response *resp, char *user, size_t len,
                         int allow_query_token);
int tk_http_authenticate2(const tk_http_request *req, tk_http_response *resp, char *user,
                          size_t len, int allow_query_token);

#endif

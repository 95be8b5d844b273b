/* The process's authenticator: the one plugin that checks every plugin's requests. */
#include "http_auth.h"

#include "http_response.h"

static int set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, tk_http_auth2_fn fn2,
                             void *ud)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    if (srv->auth || srv->auth2)
        return TK_EEXIST;
    srv->auth = fn;
    srv->auth2 = fn2;
    srv->auth_ud = ud;
    return TK_OK;
}

int tk_http_set_authenticator(tk_http_server *srv, tk_http_auth_fn fn, void *ud)
{
    return set_authenticator(srv, fn, NULL, ud);
}

int tk_http_set_authenticator2(tk_http_server *srv, tk_http_auth2_fn fn, void *ud)
{
    return set_authenticator(srv, NULL, fn, ud);
}

int tk_http_authenticate2(const tk_http_request *req, tk_http_response *resp, char *user,
                          size_t len, int allow_query_token)
{
    tk_http_server *srv = req ? req->srv : NULL;
    if (srv && srv->auth2) {
        int rc = srv->auth2(srv->auth_ud, req, resp, user, len, allow_query_token);
        return rc > 0 ? TK_OK : rc; /* a positive answer is not a plugin's to give; read it as OK */
    }
    if (srv && srv->auth) /* a 1.4 authenticator: 1 is success, anything else answered */
        return srv->auth(srv->auth_ud, req, resp, user, len, allow_query_token) == 1 ? TK_OK
                                                                                     : TK_EPERM;
    tk_http_resp_error(resp, 503, "No authenticator is loaded");
    return TK_EUNAVAILABLE;
}

int tk_http_authenticate(const tk_http_request *req, tk_http_response *resp, char *user, size_t len,
                         int allow_query_token)
{
    return tk_http_authenticate2(req, resp, user, len, allow_query_token) == TK_OK;
}

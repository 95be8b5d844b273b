/* The routes the core serves itself: /health, /ready and /metrics. */
#include "http_core_routes.h"

#include <stdlib.h>

#include "http_response.h"

static int route_health(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    return tk_http_json_reply(resp, 200,
                              json_pack("{s:s,s:s}", "status", "healthy", "service", srv->app_id));
}

static int route_ready(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    if (!atomic_load(&srv->ready)) {
        const char *reason = atomic_load(&srv->not_ready_reason);
        return tk_http_json_reply(
            resp, 503,
            json_pack("{s:s,s:s}", "status", "not_ready", "reason", reason ? reason : ""));
    }
    json_t *o = json_object();
    int ready = 1, failed = !o || json_object_set_new(o, "status", json_string("ready"));
    for (int i = 0; i < srv->nprobes; i++) {
        int ok = srv->probes[i].fn(srv->probes[i].ud);
        ready &= ok;
        failed |= json_object_set_new(o, srv->probes[i].name,
                                      json_string(ok ? srv->probes[i].yes : srv->probes[i].no)) != 0;
    }
    if (!ready)
        failed |= json_object_set_new(o, "status", json_string("not_ready")) != 0;
    if (failed) { /* an answer without a probe's line would hide it */
        json_decref(o);
        return TK_ENOMEM;
    }
    return tk_http_json_reply(resp, ready ? 200 : 503, o);
}

static int route_metrics(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    size_t len = 0;
    char *text = tk_metrics_render(srv->metrics, &len);
    if (!text)
        return TK_ENOMEM;
    int rc = tk_http_resp_body(resp, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

int tk_http_core_routes(tk_http_server *srv)
{
    tk_routes *probes = srv->admin_listen ? srv->admin_routes : srv->routes;
    if (tk_routes_add(srv->routes, "GET", "/health", route_health, srv, "core") ||
        tk_routes_add(srv->routes, "GET", "/ready", route_ready, srv, "core") ||
        tk_routes_add(probes, "GET", "/metrics", route_metrics, srv, "core") ||
        (srv->admin_listen &&
         (tk_routes_add(srv->admin_routes, "GET", "/health", route_health, srv, "core") ||
          tk_routes_add(srv->admin_routes, "GET", "/ready", route_ready, srv, "core"))))
        return TK_ENOMEM;
    return TK_OK;
}

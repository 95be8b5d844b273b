/* The routes the core serves itself: /health, /ready and /metrics, and their description. */
#include "http_core_routes.h"

#include <stdio.h>
#include <stdlib.h>

#include "http_docs.h"
#include "http_openapi.h"
#include "http_response.h"

/* clang-format off */
/* /health and /ready, public: probes of load balancers and Kubernetes. */
static const char PROBES_DOC[] =
    "{\"paths\": {"
    "\"/health\": {\"get\": {\"operationId\": \"health\", \"summary\": \"Liveness\","
    " \"description\": \"Answers while the process runs, whatever its dependencies do.\","
    " \"security\": [], \"responses\": {\"200\": {\"description\": \"The process runs\","
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Health\"}}}}}}},"
    "\"/ready\": {\"get\": {\"operationId\": \"ready\", \"summary\": \"Readiness\","
    " \"description\": \"200 once every plugin started and while the database answers (and the"
    " event consumers that decide it are in their group or positioned); 503 while not, and around"
    " start-up and shutdown (reason starting, draining or stopping).\","
    " \"security\": [], \"responses\": {"
    "\"200\": {\"description\": \"Ready to serve\", \"content\": {\"application/json\":"
    " {\"schema\": {\"$ref\": \"#/components/schemas/Readiness\"},"
    " \"example\": {\"status\": \"ready\", \"database\": \"connected\"}}}},"
    "\"503\": {\"description\": \"Not ready: a dependency is down, or it is starting or"
    " stopping\", \"content\": {\"application/json\": {\"schema\":"
    " {\"$ref\": \"#/components/schemas/Readiness\"}, \"examples\": {"
    "\"starting\": {\"value\": {\"status\": \"not_ready\", \"reason\": \"starting\"}},"
    "\"database\": {\"value\": {\"status\": \"not_ready\", \"database\": \"unreachable\"}}"
    "}}}}}}}},"
    "\"components\": {\"schemas\": {"
    "\"Health\": {\"type\": \"object\", \"required\": [\"status\", \"service\"],"
    " \"properties\": {\"status\": {\"const\": \"healthy\"},"
    " \"service\": {\"type\": \"string\", \"description\": \"The configured app_id\"}}},"
    "\"Readiness\": {\"type\": \"object\", \"required\": [\"status\"],"
    " \"description\": \"One field per dependency /ready asks, with its state\","
    " \"properties\": {\"status\": {\"enum\": [\"ready\", \"not_ready\"]},"
    " \"reason\": {\"enum\": [\"starting\", \"draining\", \"stopping\", \"\"]},"
    " \"database\": {\"enum\": [\"connected\", \"unreachable\"]},"
    " \"kafka\": {\"enum\": [\"connected\", \"unreachable\"]},"
    " \"event_push\": {\"enum\": [\"positioned\", \"positioning\"]}},"
    " \"additionalProperties\": {\"type\": \"string\"}}"
    "}}}";

/* /metrics, when the API listener serves it (no admin listener). */
static const char METRICS_DOC[] =
    "{\"paths\": {\"/metrics\": {\"get\": {\"operationId\": \"metrics\","
    " \"summary\": \"Prometheus metrics\", \"description\": \"The process's metrics in the"
    " Prometheus text format 0.0.4. With http.admin_listen set it is served there instead.\","
    " \"security\": [], \"responses\": {\"200\": {\"description\": \"The metrics\","
    " \"content\": {\"text/plain\": {\"schema\": {\"type\": \"string\"}}}}}}}}}";
/* clang-format on */

static int route_health(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    return tk_http_json_reply(resp, 200,
                              json_pack("{s:s,s:s}", "status", "healthy", "service", srv->app_id));
}

/* What /ready answers: 1 when started, not draining and every probe says yes. With `o`, each
 * probe's state is set in it; returns -1 when that fails (out of memory). */
static int ready_now(tk_http_server *srv, json_t *o)
{
    if (!atomic_load(&srv->ready))
        return 0;
    int ready = 1;
    for (int i = 0; i < srv->nprobes; i++) {
        int ok = srv->probes[i].fn(srv->probes[i].ud);
        ready &= ok;
        if (o && json_object_set_new(o, srv->probes[i].name,
                                     json_string(ok ? srv->probes[i].yes : srv->probes[i].no)))
            return -1;
    }
    return ready;
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
    int ready =
        o && !json_object_set_new(o, "status", json_string("ready")) ? ready_now(srv, o) : -1;
    if (ready == 0 && json_object_set_new(o, "status", json_string("not_ready")))
        ready = -1;
    if (ready < 0) { /* an answer without a probe's line would hide it */
        json_decref(o);
        return TK_ENOMEM;
    }
    return tk_http_json_reply(resp, ready ? 200 : 503, o);
}

static int route_metrics(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    tk_http_server *srv = ud;
    (void)req;
    if (srv->ready_gauge)
        tk_metric_set(srv->ready_gauge, NULL, ready_now(srv, NULL) == 1);
    size_t len = 0;
    char *text = tk_metrics_render(srv->metrics, &len);
    if (!text)
        return TK_ENOMEM;
    int rc = tk_http_resp_body(resp, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

int tk_http_core_routes(tk_http_server *srv, char *err, size_t errlen)
{
    tk_routes *probes = srv->admin_listen ? srv->admin_routes : srv->routes;
    if (tk_routes_add(srv->routes, "GET", "/health", route_health, srv, "core") ||
        tk_routes_add(srv->routes, "GET", "/ready", route_ready, srv, "core") ||
        tk_routes_add(probes, "GET", "/metrics", route_metrics, srv, "core") ||
        (srv->admin_listen &&
         (tk_routes_add(srv->admin_routes, "GET", "/health", route_health, srv, "core") ||
          tk_routes_add(srv->admin_routes, "GET", "/ready", route_ready, srv, "core")))) {
        snprintf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    int rc = tk_http_docs_routes(srv, err, errlen);
    if (!rc)
        rc = tk_openapi_add(srv->openapi, srv->routes, "core", PROBES_DOC, err, errlen);
    if (!rc && !srv->admin_listen)
        rc = tk_openapi_add(srv->openapi, srv->routes, "core", METRICS_DOC, err, errlen);
    if (!rc)
        rc = tk_openapi_tag(srv->openapi, "core",
                            "Served by taskorad itself: probes, metrics and this description");
    return rc;
}

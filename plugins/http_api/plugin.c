/* The HTTP API plugin: Taskora's REST contract (API.md) and the domain tables it owns. */
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

#include "schema.h"

typedef struct api {
    const tk_host *host;
    tk_instance *inst;
} api;

/* GET / : the service's greeting, as the existing front end expects. */
static int route_root(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    (void)req;
    static const char body[] = "{\"message\":\"Welcome to Taskora API\"}";
    return a->host->http_set_body(resp, "application/json; charset=utf-8", body, sizeof(body) - 1);
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    api *a = calloc(1, sizeof(*a));
    if (!a)
        return TK_ENOMEM;
    a->host = host;
    a->inst = inst;
    int rc = host->http_route(inst, "GET", "/", route_root, a);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *state = a;
    return TK_OK;
}

static void destroy(void *state) { free(state); }

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "http_api",
    .version = "0.1.0",
    .description = "Taskora's REST API and the domain tables it owns",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .migrations = http_api_migrations,
    .init = init,
    .destroy = destroy,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

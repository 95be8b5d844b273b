/*
 * A plugin for the API description's tests: registers three described routes and one it does
 * not describe, tries the descriptions the host must refuse, and appends what each call
 * answered ("INSTANCE CASE CODE") to the file named by config `record`.
 */
#include <stdio.h>
#include <string.h>

#include <taskora/plugin.h>

typedef struct state {
    const tk_host *host;
    tk_instance *inst;
} state;

static state states[4];
static int nstates;

static void record(const state *s, const char *what, int rc)
{
    const char *path = s->host->config_string(s->inst, "record");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%s %s %d\n", s->host->instance_name(s->inst), what, rc);
        fclose(f);
    }
}

static int reply(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    (void)req;
    return s->host->http_set_body(resp, "application/json", "{}", 2);
}

/* The item schema every instance defines; `title` differs only in the clash case. */
#define ITEM_SCHEMA(title)                                                                         \
    "{\"type\": \"object\", \"title\": \"" title "\", \"required\": [\"name\"],"                   \
    " \"properties\": {\"id\": {\"type\": \"integer\"}, \"name\": {\"type\": \"string\"}}}"

static const char GOOD[] =
    "{\"paths\": {"
    "\"%1$s/items/{id}\": {\"get\": {\"operationId\": \"%2$s_get_item\", \"summary\": \"Get an "
    "item\", \"description\": \"One item. <b>Shown as text</b>.\", \"security\": [],"
    " \"parameters\": [{\"name\": \"id\", \"in\": \"path\", \"required\": true,"
    " \"schema\": {\"type\": \"integer\"}}],"
    " \"responses\": {\"200\": {\"description\": \"The item\", \"content\": {\"application/json\":"
    " {\"schema\": {\"$ref\": \"#/components/schemas/OaItem\"}}}},"
    " \"404\": {\"$ref\": \"#/components/responses/NotFound\"}}}},"
    "\"%1$s/items\": {\"post\": {\"summary\": \"Add an item\", \"requestBody\": {\"required\": "
    "true,"
    " \"content\": {\"application/json\": {\"schema\": {\"$ref\": "
    "\"#/components/schemas/OaItem\"}}}},"
    " \"responses\": {\"201\": {\"description\": \"Added\"},"
    " \"401\": {\"$ref\": \"#/components/responses/Unauthorized\"},"
    " \"422\": {\"$ref\": \"#/components/responses/ValidationError\"}}}},"
    "\"%1$s/items/{id}/tags\": {\"get\": {\"summary\": \"An item's tags\","
    " \"responses\": {\"200\": {\"description\": \"Its tags\"}}}}"
    "}, \"components\": {\"schemas\": {\"OaItem\": " ITEM_SCHEMA("Item") "}}}";

static const char CLASH[] =
    "{\"paths\": {}, \"components\": {\"schemas\": {\"OaItem\": " ITEM_SCHEMA("Other") "}}}";

static int describe(state *s, const char *what, const char *fmt, const char *prefix)
{
    char text[8192];
    snprintf(text, sizeof(text), fmt, prefix, s->host->instance_name(s->inst));
    int rc = s->host->http_openapi(s->inst, text);
    record(s, what, rc);
    return rc;
}

static int init(const tk_host *host, tk_instance *inst, void **out)
{
    if (nstates == 4)
        return TK_ENOMEM;
    state *s = &states[nstates++];
    s->host = host;
    s->inst = inst;
    const char *p = host->config_string(inst, "prefix");
    char path[4][128];
    snprintf(path[0], sizeof(path[0]), "%s/items/{id}", p);
    snprintf(path[1], sizeof(path[1]), "%s/items", p);
    snprintf(path[2], sizeof(path[2]), "%s/items/{id}/tags", p);
    snprintf(path[3], sizeof(path[3]), "%s/undescribed", p);
    if (host->http_route(inst, "GET", path[0], reply, s) ||
        host->http_route(inst, "POST", path[1], reply, s) ||
        host->http_route(inst, "GET", path[2], reply, s) ||
        host->http_route(inst, "GET", path[3], reply, s))
        return TK_ERR;
    describe(s, "bad_json", "{\"paths\": {\"%s\": ", p);
    describe(s, "unregistered", "{\"paths\": {\"%s/nowhere\": {\"get\": {}}}}", p);
    describe(s, "other_owner", "{\"paths\": {\"/health\": {\"get\": {}}}}", p);
    describe(s, "good", GOOD, p);
    describe(s, "clash", CLASH, p);
    *out = s;
    return TK_OK;
}

static int start(void *ud)
{
    state *s = ud;
    record(s, "late", s->host->http_openapi(s->inst, "{\"paths\": {}}"));
    return TK_OK;
}

static void destroy(void *ud) { (void)ud; }

static const tk_config_field schema[] = {
    {"record", TK_CFG_STRING, 0, NULL, NULL, "file the results are appended to", NULL,
     TK_CFG_NO_RANGE},
    {"prefix", TK_CFG_STRING, 0, "\"/oa\"", NULL, "where its routes live", NULL, TK_CFG_NO_RANGE},
    {0},
};

static const tk_plugin plugin = {
    TK_PLUGIN_HEADER,
    .name = "openapi_plugin",
    .version = "1.0.0",
    .description = "describes some of its routes, for the API description's tests",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = schema,
    .init = init,
    .start = start,
    .destroy = destroy,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &plugin; }

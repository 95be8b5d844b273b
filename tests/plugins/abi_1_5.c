/*
 * A plugin as built against ABI 1.5: its descriptor says 1.5, its config schema has the
 * tk_config_field layout of 1.0-1.5 (no range members), and it authenticates with the 1.4
 * pair, where 1 is success. The host must read its schema with that layout, honour its
 * authenticator for plugins calling http_authenticate2, and answer its http_authenticate
 * calls with 1/0 whichever authenticator is loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

/* tk_config_field as taskora/plugin.h 1.5 declared it */
typedef struct field_1_5 {
    const char *name;
    tk_config_type type;
    int required;
    const char *default_json;
    const char *choices;
    const char *description;
    const struct field_1_5 *children;
} field_1_5;

typedef struct state {
    const tk_host *host;
    tk_instance *inst;
} state;

/* The 1.4 authenticator: the user named by X-Test-User, else 401. */
static int authenticate_1_4(void *ud, const tk_http_request *req, tk_http_response *resp,
                            char *user, size_t len, int allow_query_token)
{
    state *s = ud;
    (void)allow_query_token;
    const char *who = s->host->http_header(req, "X-Test-User");
    if (!who || !*who) {
        s->host->http_set_header(resp, "WWW-Authenticate", "Bearer");
        s->host->http_error(resp, 401, "Not authenticated");
        return 0;
    }
    snprintf(user, len, "%s", who);
    return 1;
}

/* GET /old/whoami through the 1.4 http_authenticate. */
static int route_whoami(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    char user[64], body[128];
    if (s->host->http_authenticate(req, resp, user, sizeof(user), 0) != 1)
        return TK_OK; /* answered */
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"via\":\"1.4\"}", user);
    return s->host->http_set_body(resp, "application/json", body, strlen(body));
}

/* GET /old/config: what the host made of the 1.5-layout schema. */
static int route_config(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    (void)req;
    char body[256];
    snprintf(body, sizeof(body), "{\"greeting\":\"%s\",\"mode\":\"%s\",\"depth\":%lld}",
             s->host->config_string(s->inst, "greeting"), s->host->config_string(s->inst, "mode"),
             (long long)s->host->config_int(s->inst, "nested.depth"));
    return s->host->http_set_body(resp, "application/json", body, strlen(body));
}

static int init(const tk_host *host, tk_instance *inst, void **out)
{
    state *s = calloc(1, sizeof(*s));
    if (!s)
        return TK_ENOMEM;
    s->host = host;
    s->inst = inst;
    int rc = host->http_route(inst, "GET", "/old/whoami", route_whoami, s);
    rc = rc ? rc : host->http_route(inst, "GET", "/old/config", route_config, s);
    if (!rc && host->config_bool(inst, "authenticator"))
        rc = host->http_set_authenticator(inst, authenticate_1_4, s);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return TK_OK;
}

static void destroy(void *st) { free(st); }

static const field_1_5 nested[] = {
    {"depth", TK_CFG_INT, 0, "3", NULL, "a nested integer", NULL},
    {0},
};

static const field_1_5 config[] = {
    {"greeting", TK_CFG_STRING, 0, "\"hello\"", NULL, "a string", NULL},
    {"mode", TK_CFG_STRING, 0, "\"a\"", "a|b", "an enumerated value", NULL},
    {"authenticator", TK_CFG_BOOL, 0, "false", NULL, "register the 1.4 authenticator", NULL},
    {"nested", TK_CFG_OBJECT, 0, NULL, NULL, "nested settings", nested},
    {0},
};

static const tk_plugin desc = {
    .abi_major = 1,
    .abi_minor = 5,
    .struct_size = sizeof(tk_plugin),
    .name = "abi_1_5",
    .version = "1.5.0",
    .description = "a plugin built against ABI 1.5",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = (const tk_config_field *)(const void *)config,
    .init = init,
    .destroy = destroy,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

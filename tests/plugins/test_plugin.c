/* A plugin for the host's tests: records its lifecycle, serves routes, fails on request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskora/plugin.h>

typedef struct state {
    const tk_host *host;
    tk_instance *inst;
    tk_metric *hits;
    char prefix[64];
} state;

/* Appends "EVENT INSTANCE" to the file named by config `record`, if any. */
static void record(const state *s, const char *event)
{
    const char *path = s->host->config_string(s->inst, "record");
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s %s\n", event, s->host->instance_name(s->inst));
        fclose(f);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int reply_json(const state *s, tk_http_response *resp, const char *json)
{
    return s->host->http_set_body(resp, "application/json", json, strlen(json));
}

static int route_hello(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    const char *labels[] = {"hello"};
    s->host->metric_add(s->hits, labels, 1);
    const char *q = s->host->http_query(req, "q");
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"instance\":\"%s\",\"name\":\"%s\",\"q\":\"%s\",\"greeting\":\"%s\","
             "\"level\":\"%s\",\"max\":%lld}",
             s->host->instance_name(s->inst), s->host->http_param(req, "name"), q ? q : "",
             s->host->config_string(s->inst, "greeting"), s->host->config_string(s->inst, "level"),
             (long long)s->host->config_int(s->inst, "limits.max"));
    return reply_json(s, resp, body);
}

static int route_echo(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    size_t len = 0;
    const char *body = s->host->http_body(req, &len);
    s->host->http_status(resp, 201);
    s->host->http_set_header(resp, "X-Echo-Length", "yes");
    return s->host->http_set_body(resp, "application/json", body, len);
}

static int route_fail(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    (void)ud;
    (void)req;
    (void)resp;
    return TK_ERR;
}

static int route_slow(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    const char *ms = s->host->http_query(req, "ms");
    record(s, "slow-begin");
    sleep_ms(ms ? atol(ms) : 100);
    record(s, "slow-end");
    return reply_json(s, resp, "{\"slow\":true}");
}

/* The 1.6 authenticator: the user named by X-Test-User, else 401 and TK_EPERM. */
static int authenticate2(void *ud, const tk_http_request *req, tk_http_response *resp, char *user,
                         size_t len, int allow_query_token)
{
    state *s = ud;
    (void)allow_query_token;
    const char *who = s->host->http_header(req, "X-Test-User");
    if (!who || !*who) {
        s->host->http_set_header(resp, "WWW-Authenticate", "Bearer");
        s->host->http_error(resp, 401, "Not authenticated");
        return TK_EPERM;
    }
    snprintf(user, len, "%s", who);
    return TK_OK;
}

/* GET {prefix}/whoami2 through http_authenticate2: its negative code carries the answer. */
static int route_whoami2(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    char user[64], body[160];
    int rc = s->host->http_authenticate2(req, resp, user, sizeof(user), 0);
    if (rc != TK_OK)
        return rc;
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"via\":\"1.6\",\"percent\":%lld}", user,
             (long long)s->host->config_int(s->inst, "percent"));
    return reply_json(s, resp, body);
}

/* An event stream that sends one event and ends. */
static int route_stream(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    state *s = ud;
    tk_sse *sse = s->host->sse_open(req, resp, NULL, NULL);
    if (!sse)
        return TK_ERR;
    int rc = s->host->sse_send(sse, "hello", "{}");
    s->host->sse_close(sse);
    s->host->sse_release(sse);
    return rc;
}

static int init(const tk_host *host, tk_instance *inst, void **out)
{
    state *s = calloc(1, sizeof(*s));
    if (!s)
        return TK_ENOMEM;
    s->host = host;
    s->inst = inst;
    record(s, "init");
    if (host->config_int(inst, "init_delay_ms") > 0)
        sleep_ms((long)host->config_int(inst, "init_delay_ms"));
    if (host->config_bool(inst, "fail_init")) {
        host->log(inst, TK_LOG_ERROR, "failing init as configured");
        free(s);
        return TK_EUNAVAILABLE;
    }
    static const char *const labels[] = {"route", NULL};
    s->hits = host->metric_counter(inst, "test_plugin_hits_total", "Hits per route", labels);
    snprintf(s->prefix, sizeof(s->prefix), "%s", host->config_string(inst, "route_prefix"));
    if (*s->prefix) {
        char p[128];
        int rc = 0;
        snprintf(p, sizeof(p), "%s/hello/{name}", s->prefix);
        rc = rc ? rc : host->http_route(inst, "GET", p, route_hello, s);
        snprintf(p, sizeof(p), "%s/echo", s->prefix);
        rc = rc ? rc : host->http_route(inst, "POST", p, route_echo, s);
        snprintf(p, sizeof(p), "%s/fail", s->prefix);
        rc = rc ? rc : host->http_route(inst, "GET", p, route_fail, s);
        snprintf(p, sizeof(p), "%s/slow", s->prefix);
        rc = rc ? rc : host->http_route(inst, "GET", p, route_slow, s);
        snprintf(p, sizeof(p), "%s/whoami2", s->prefix);
        rc = rc ? rc : host->http_route(inst, "GET", p, route_whoami2, s);
        if (!rc && host->config_bool(inst, "authenticator2"))
            rc = host->http_set_authenticator2(inst, authenticate2, s);
        snprintf(p, sizeof(p), "%s/stream", s->prefix);
        rc = rc ? rc : host->http_route(inst, "GET", p, route_stream, s);
        if (rc) {
            free(s);
            return rc;
        }
    }
    host->log_kv(inst, TK_LOG_INFO, "initialised", "prefix", s->prefix, "password", "hunter2",
                 NULL);
    *out = s;
    return TK_OK;
}

static int start(void *st)
{
    state *s = st;
    record(s, "start");
    return s->host->config_bool(s->inst, "fail_start") ? TK_ERR : TK_OK;
}

static void stop(void *st)
{
    state *s = st;
    record(s, "stop-begin");
    long ms = (long)s->host->config_int(s->inst, "stop_delay_ms");
    if (ms > 0)
        sleep_ms(ms);
    record(s, "stop");
}

static void destroy(void *st)
{
    state *s = st;
    record(s, "destroy");
    free(s);
}

static const tk_config_field limits_fields[] = {
    {"max", TK_CFG_INT, 0, "10", NULL, "a nested integer", NULL, TK_CFG_NO_RANGE},
    {0},
};

static const tk_config_field config[] = {
    {"record", TK_CFG_STRING, 0, NULL, NULL, "file to append lifecycle events to", NULL,
     TK_CFG_NO_RANGE},
    {"greeting", TK_CFG_STRING, 0, "\"hi\"", NULL, "returned by the hello route", NULL,
     TK_CFG_NO_RANGE},
    {"level", TK_CFG_STRING, 0, "\"low\"", "low|high", "an enumerated value", NULL,
     TK_CFG_NO_RANGE},
    {"route_prefix", TK_CFG_STRING, 0, "\"/test\"", NULL, "prefix of the routes; empty for none",
     NULL, TK_CFG_NO_RANGE},
    {"fail_init", TK_CFG_BOOL, 0, "false", NULL, "make init fail", NULL, TK_CFG_NO_RANGE},
    {"fail_start", TK_CFG_BOOL, 0, "false", NULL, "make start fail", NULL, TK_CFG_NO_RANGE},
    {"stop_delay_ms", TK_CFG_INT, 0, "0", NULL, "how long stop takes", NULL, TK_CFG_NO_RANGE},
    {"init_delay_ms", TK_CFG_INT, 0, "0", NULL, "how long init takes", NULL, TK_CFG_NO_RANGE},
    {"limits", TK_CFG_OBJECT, 0, NULL, NULL, "nested settings", limits_fields, TK_CFG_NO_RANGE},
    {"percent", TK_CFG_INT, 0, "50", NULL, "a ranged integer", NULL, TK_CFG_RANGE(0, 100)},
    {"ratio", TK_CFG_DOUBLE, 0, "0.5", NULL, "a ranged number", NULL, TK_CFG_RANGE(0, 1)},
    {"authenticator2", TK_CFG_BOOL, 0, "false", NULL, "register the 1.6 authenticator", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

static const char *const migrations[] = {
    "CREATE TABLE test_plugin_items (id bigserial PRIMARY KEY, name text NOT NULL)",
    "ALTER TABLE test_plugin_items ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()",
    NULL,
};

static const tk_plugin desc = {
    TK_PLUGIN_HEADER,
    .name = "test_plugin",
    .version = "1.2.3",
    .description = "lifecycle recorder for the host's tests",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = migrations,
    .init = init,
    .start = start,
    .stop = stop,
    .destroy = destroy,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

/*
 * Fuzzes the http_api plugin's request handling up to the database: the plugin is
 * initialised on a small fake host, and each input is one request,
 *   METHOD /path?query
 *   body...
 * routed through core/routes.c to the plugin's handler with a valid token for user 7
 * (paths /api/7/...). Every database call fails (no connection), so what runs is the path,
 * query and body validation of tasks, tags, conversations, chat and auth, and the answers
 * to failures; each answer must be JSON. "TOOL name" instead of a method runs the
 * assistant's task tool `name` with the body as its arguments (api_task_tool).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/http_api/api.h"
#include "routes.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tk_instance {
    json_t *config;
};
struct tk_http_request {
    const char *method, *path, *body;
    size_t body_len;
    const tk_route_match *match;
    json_t *query;
    const char *authorization;
};
struct tk_http_response {
    int status;
    char *body;
    size_t len;
};

static tk_instance inst;
static tk_routes *routes;
static api *state;
static char authorization[512];

static const char *f_name(const tk_instance *i) { return (void)i, "api"; }
static void f_log(const tk_instance *i, tk_log_level l, const char *fmt, ...)
{
    (void)i, (void)l, (void)fmt;
}
static int f_log_enabled(const tk_instance *i, tk_log_level l) { return (void)i, l >= TK_LOG_INFO; }
static const char *f_config_string(const tk_instance *i, const char *k)
{
    return json_string_value(json_object_get(i->config, k));
}
static int64_t f_config_int(const tk_instance *i, const char *k)
{
    return json_integer_value(json_object_get(i->config, k));
}
static size_t f_list_size(const tk_instance *i, const char *k)
{
    return json_array_size(json_object_get(i->config, k));
}
static const char *f_list_get(const tk_instance *i, const char *k, size_t n)
{
    return json_string_value(json_array_get(json_object_get(i->config, k), n));
}
static int f_route(tk_instance *i, const char *method, const char *pattern, tk_http_handler h,
                   void *ud)
{
    (void)i;
    return tk_routes_add(routes, method, pattern, h, ud, "api");
}
static const char *f_param(const tk_http_request *r, const char *name)
{
    for (size_t i = 0; r->match && i < r->match->nparams; i++)
        if (strncmp(r->match->names[i] + 1, name, strlen(name)) == 0 &&
            r->match->names[i][strlen(name) + 1] == '}')
            return r->match->values[i];
    return NULL;
}
static const char *f_query(const tk_http_request *r, const char *n)
{
    return json_string_value(json_object_get(r->query, n));
}
static const char *f_header(const tk_http_request *r, const char *n)
{
    return strcasecmp(n, "Authorization") == 0 ? r->authorization : NULL;
}
static const char *f_body(const tk_http_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}
static void f_status(tk_http_response *resp, int status) { resp->status = status; }
static int f_set_header(tk_http_response *resp, const char *n, const char *v)
{
    (void)resp, (void)n, (void)v;
    return TK_OK;
}
static int f_set_body(tk_http_response *resp, const char *ct, const void *body, size_t len)
{
    (void)ct;
    free(resp->body);
    resp->body = malloc(len + 1);
    memcpy(resp->body, body, len);
    resp->body[len] = '\0';
    resp->len = len;
    return TK_OK;
}
static int f_set_authenticator(tk_instance *i, tk_http_auth_fn fn, void *ud)
{
    (void)i, (void)fn, (void)ud;
    return TK_OK;
}
/* No database: a connection that is NULL, on which every libpq call fails. */
static int f_pg_acquire(tk_instance *i, int timeout_ms, tk_pg **out)
{
    (void)i, (void)timeout_ms;
    *out = (tk_pg *)&inst;
    return TK_OK;
}
static void f_pg_release(tk_pg *c) { (void)c; }
static void *f_pg_conn(tk_pg *c) { return (void)c, NULL; }
static int f_pg_tx(tk_instance *i, tk_pg_fn fn, void *ud) { return (void)i, fn(NULL, ud); }
static int f_outbox_append(tk_instance *i, void *conn, const char *topic, const char *type,
                           const char *user_id, const char *subject, const char *payload,
                           const char *traceparent, char *id_out)
{
    (void)i, (void)conn, (void)topic, (void)type, (void)user_id, (void)subject;
    (void)traceparent, (void)id_out;
    json_t *p = json_loads(payload, 0, NULL);
    if (!p)
        abort(); /* events carry JSON */
    json_decref(p);
    return TK_OK;
}
static int f_ai_chat(tk_instance *i, const char *provider, const char *request, char **response,
                     tk_failure *f)
{
    (void)i, (void)provider, (void)request, (void)response;
    f->kind = TK_FAIL_UNAVAILABLE;
    snprintf(f->message, sizeof(f->message), "no provider");
    return TK_EUNAVAILABLE;
}
static void f_free(void *p) { free(p); }

static const tk_host host = {
    .struct_size = sizeof(tk_host),
    .abi_major = TK_PLUGIN_ABI_MAJOR,
    .abi_minor = TK_PLUGIN_ABI_MINOR,
    .instance_name = f_name,
    .log = f_log,
    .log_enabled = f_log_enabled,
    .config_string = f_config_string,
    .config_int = f_config_int,
    .config_list_size = f_list_size,
    .config_list_get = f_list_get,
    .free = f_free,
    .http_route = f_route,
    .http_param = f_param,
    .http_query = f_query,
    .http_header = f_header,
    .http_body = f_body,
    .http_status = f_status,
    .http_set_header = f_set_header,
    .http_set_body = f_set_body,
    .pg_acquire = f_pg_acquire,
    .pg_release = f_pg_release,
    .pg_conn = f_pg_conn,
    .pg_tx = f_pg_tx,
    .outbox_append = f_outbox_append,
    .ai_chat = f_ai_chat,
    .http_set_authenticator = f_set_authenticator,
};

const tk_plugin *taskora_plugin_entry(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    routes = tk_routes_new();
    inst.config =
        json_pack("{s:s,s:i,s:i,s:s,s:s,s:s,s:s,s:[],s:i,s:i,s:s}", "jwt_secret",
                  "fuzz-secret-fuzz-secret-fuzz-secret!", "token_ttl_s", 3600, "bcrypt_cost", 4,
                  "task_topic", "task-events", "user_topic", "user-events", "chat_topic",
                  "chat-events", "ai_provider", "gemini", "ai_fallback", "chat_history", 20,
                  "chat_max_rounds", 5, "chat_system_prompt", "You are a fuzzer's assistant.");
    void *st = NULL;
    if (!routes || !inst.config || taskora_plugin_entry()->init(&host, &inst, &st) != TK_OK)
        abort();
    state = st;
    char *token = api_jwt_issue(state, "7");
    snprintf(authorization, sizeof(authorization), "Bearer %s", token);
    free(token);
    return 0;
}

/* %XX and '+' decoded in place, as the HTTP server does for query arguments. */
static void decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '+') {
            *o++ = ' ';
        } else if (*s == '%' && s[1] && s[2] && strchr("0123456789abcdefABCDEF", s[1]) &&
                   strchr("0123456789abcdefABCDEF", s[2])) {
            char hex[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static json_t *parse_query(char *q)
{
    json_t *args = json_object();
    char *save = NULL;
    for (char *kv = q ? strtok_r(q, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq++ = '\0';
        decode(kv);
        if (eq)
            decode(eq);
        if (!json_object_get(args, kv)) /* the first one counts */
            json_object_set_new(args, kv, json_string(eq ? eq : ""));
    }
    return args;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t llen = nl ? (size_t)(nl - data) : size;
    if (llen > 4096 || memchr(data, '\0', llen))
        return 0;
    char line[4097];
    memcpy(line, data, llen);
    line[llen] = '\0';
    size_t blen = nl ? size - llen - 1 : 0;
    char *body = malloc(blen ? blen : 1); /* exactly the body: a read past it is caught */
    if (!body)
        return 0;
    if (blen)
        memcpy(body, nl + 1, blen);
    char *sp = strchr(line, ' ');
    if (!sp) {
        free(body);
        return 0;
    }
    *sp = '\0';
    char *path = sp + 1;
    if (strcmp(line, "TOOL") == 0) {
        json_t *args = json_loadb(body, blen, 0, NULL);
        json_t *result = api_task_tool(state, "7", path, args);
        if (!json_is_object(result))
            abort(); /* always an object for the model to read */
        json_decref(result);
        json_decref(args);
        free(body);
        return 0;
    }
    char *q = strchr(path, '?');
    if (q)
        *q++ = '\0';
    tk_route_match m;
    if (tk_routes_match(routes, line, path, &m) == 0) {
        tk_http_request req = {.method = line,
                               .path = path,
                               .body = body,
                               .body_len = blen,
                               .match = &m,
                               .query = parse_query(q),
                               .authorization = authorization};
        tk_http_response resp = {0};
        int rc = m.route->handler(m.route->ud, &req, &resp);
        if (resp.body) {
            json_t *answer = json_loadb(resp.body, resp.len, 0, NULL);
            if (!answer || resp.status < 200 || resp.status > 599)
                abort(); /* every answer is JSON with a status */
            json_decref(answer);
        } else if (rc >= 0) {
            abort(); /* a handler that succeeded has answered */
        }
        free(resp.body);
        json_decref(req.query);
    }
    tk_route_match_clear(&m);
    free(body);
    return 0;
}

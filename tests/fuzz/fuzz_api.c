/*
 * Fuzzes the http_api plugin's request handling up to the database: the plugin is
 * initialised on a small fake host, and each input is one request,
 *   METHOD /path?query
 *   body...
 * routed through core/routes.c to the plugin's handler with a valid token for user 7
 * (paths /api/7/...). There is no database: the connection is NULL and every libpq call on
 * it fails, except the token check every authenticated route makes first (auth.c's prepared
 * statement taskora_token_standing), which this file answers "the user exists, the token is
 * not revoked" (see PQexecPrepared below; FUZZ_API_DEAD_AUTH=1 in the environment turns that
 * off, and every route past auth answers 503). So what runs is the path, query and body
 * validation of tasks, tags, conversations, chat and auth, and the answers to failures; each
 * answer must be JSON. "TOOL name" instead of a method runs the assistant's task tool `name`
 * with the body as its arguments (api_task_tool).
 *
 * The fake host serves the plugin's whole config schema the way the real one does: the
 * config below is validated against the descriptor's `config` fields by core/config.c,
 * which fills in every default (nested objects too), and read by dotted paths.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/http_api/api.h"
#include "config.h"
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
static void f_log_kv(const tk_instance *i, tk_log_level l, const char *msg, ...)
{
    (void)i, (void)l, (void)msg;
}
static const char *f_app_id(const tk_instance *i) { return (void)i, "taskora-fuzz"; }
/* The config, validated against the plugin's schema (defaults filled in), by dotted path. */
static json_t *cfg(const tk_instance *i, const char *path)
{
    return tk_config_get(i->config, path);
}
static const char *f_config_string(const tk_instance *i, const char *k)
{
    return json_string_value(cfg(i, k));
}
static int64_t f_config_int(const tk_instance *i, const char *k)
{
    return json_integer_value(cfg(i, k));
}
static int f_config_bool(const tk_instance *i, const char *k) { return json_is_true(cfg(i, k)); }
static double f_config_double(const tk_instance *i, const char *k)
{
    return json_number_value(cfg(i, k));
}
static size_t f_list_size(const tk_instance *i, const char *k)
{
    return json_array_size(cfg(i, k));
}
static const char *f_list_get(const tk_instance *i, const char *k, size_t n)
{
    return json_string_value(json_array_get(cfg(i, k), n));
}
static char *f_config_json(const tk_instance *i, const char *k)
{
    json_t *v = cfg(i, k);
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}
/* Metrics: a handle that counts nothing. */
static char metric_dummy;
static tk_metric *f_metric(tk_instance *i, const char *name, const char *help,
                           const char *const *labels)
{
    (void)i, (void)name, (void)help, (void)labels;
    return (tk_metric *)&metric_dummy;
}
static tk_metric *f_histogram(tk_instance *i, const char *name, const char *help,
                              const char *const *labels, const double *buckets, size_t n)
{
    (void)buckets, (void)n;
    return f_metric(i, name, help, labels);
}
static void f_metric_update(tk_metric *m, const char *const *values, double v)
{
    if (m != (tk_metric *)&metric_dummy)
        abort(); /* only handles the host gave out */
    (void)values, (void)v;
}
static int f_route(tk_instance *i, const char *method, const char *pattern, tk_http_handler h,
                   void *ud)
{
    (void)i;
    return tk_routes_add(routes, method, pattern, h, ud, "api");
}
/* The plugin's description is checked against its routes by check_openapi; here only that
 * it is a JSON object, as the host requires. */
static int f_openapi(tk_instance *i, const char *fragment)
{
    (void)i;
    json_t *j = json_loads(fragment, 0, NULL);
    int rc = json_is_object(j) ? TK_OK : TK_EINVAL;
    json_decref(j);
    return rc;
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
static const char *f_method(const tk_http_request *r) { return r->method; }
static const char *f_path(const tk_http_request *r) { return r->path; }
static const char *f_request_id(const tk_http_request *r) { return (void)r, "fuzz"; }
static const char *f_client_addr(const tk_http_request *r) { return (void)r, "203.0.113.7"; }
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
static int f_error(tk_http_response *resp, int status, const char *detail)
{
    json_t *b = json_pack("{s:s}", "detail", detail);
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!text)
        return TK_ENOMEM;
    f_status(resp, status);
    int rc = f_set_body(resp, "application/json", text, strlen(text));
    free(text);
    return rc;
}
static int f_set_authenticator2(tk_instance *i, tk_http_auth2_fn fn, void *ud)
{
    (void)i, (void)fn, (void)ud;
    return TK_OK;
}
/* No database: a connection that is NULL, on which every libpq call fails ... */
static int f_pg_acquire(tk_instance *i, int timeout_ms, tk_pg **out)
{
    (void)i, (void)timeout_ms;
    *out = (tk_pg *)&inst;
    return TK_OK;
}
static void f_pg_release(tk_pg *c) { (void)c; }
static void *f_pg_conn(tk_pg *c) { return (void)c, NULL; }
static int f_pg_tx(tk_instance *i, tk_pg_fn fn, void *ud) { return (void)i, fn(NULL, ud); }

/*
 * ... but the token check. auth.c runs it as the prepared statement below; on the fake (NULL)
 * connection this answers it as PostgreSQL would for a live user and a token not revoked: one
 * row (t, f), built with libpq's own result functions, so PQresultStatus, PQntuples,
 * PQgetvalue and PQclear work on it unchanged. Every other call, and this one for any other
 * statement, goes to libpq, which refuses the NULL connection: route code after the check
 * still sees a dead database. (The definition here wins over libpq's at link time.)
 */
#define STANDING_STMT "taskora_token_standing"
static int dead_auth; /* FUZZ_API_DEAD_AUTH: leave the token check to libpq too */

static PGresult *standing_result(void)
{
    PGresAttDesc cols[2] = {
        {.name = (char *)"exists", .typid = 16 /* bool */, .typlen = 1, .atttypmod = -1},
        {.name = (char *)"exists", .typid = 16, .typlen = 1, .atttypmod = -1},
    };
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (!res || !PQsetResultAttrs(res, 2, cols) || !PQsetvalue(res, 0, 0, (char *)"t", 1) ||
        !PQsetvalue(res, 0, 1, (char *)"f", 1))
        abort();
    return res;
}

typedef PGresult *exec_prepared_fn(PGconn *, const char *, int, const char *const *, const int *,
                                   const int *, int);

PGresult *PQexecPrepared(PGconn *conn, const char *stmtName, int nParams,
                         const char *const *paramValues, const int *paramLengths,
                         const int *paramFormats, int resultFormat)
{
    if (!conn && !dead_auth && stmtName && strcmp(stmtName, STANDING_STMT) == 0) {
        /* asked about the harness's token: user 7, revoked by its jti */
        if (nParams != 2 || strcmp(paramValues[0], "7") != 0 ||
            strncmp(paramValues[1], "j:", 2) != 0)
            abort();
        return standing_result();
    }
    static exec_prepared_fn *real;
    if (!real && !(real = (exec_prepared_fn *)dlsym(RTLD_NEXT, "PQexecPrepared")))
        abort();
    return real(conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat);
}

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
    .app_id = f_app_id,
    .log = f_log,
    .log_kv = f_log_kv,
    .log_enabled = f_log_enabled,
    .config_string = f_config_string,
    .config_int = f_config_int,
    .config_bool = f_config_bool,
    .config_double = f_config_double,
    .config_list_size = f_list_size,
    .config_list_get = f_list_get,
    .config_json = f_config_json,
    .free = f_free,
    .metric_counter = f_metric,
    .metric_gauge = f_metric,
    .metric_histogram = f_histogram,
    .metric_add = f_metric_update,
    .metric_set = f_metric_update,
    .metric_observe = f_metric_update,
    .http_route = f_route,
    .http_openapi = f_openapi,
    .http_method = f_method,
    .http_path = f_path,
    .http_param = f_param,
    .http_query = f_query,
    .http_header = f_header,
    .http_body = f_body,
    .http_request_id = f_request_id,
    .http_status = f_status,
    .http_set_header = f_set_header,
    .http_set_body = f_set_body,
    .http_error = f_error,
    .pg_acquire = f_pg_acquire,
    .pg_release = f_pg_release,
    .pg_conn = f_pg_conn,
    .pg_tx = f_pg_tx,
    .outbox_append = f_outbox_append,
    .ai_chat = f_ai_chat,
    .http_client_addr = f_client_addr,
    .http_set_authenticator2 = f_set_authenticator2,
};

const tk_plugin *taskora_plugin_entry(void);

/*
 * What differs from the schema's defaults. No rate limit (per_minute 0 turns one off) and no
 * login failure delay: the fuzzer repeats requests from one address and account far faster
 * than any limit allows; a hash pool no request waits for.
 */
static const char config_text[] =
    "{\"jwt_secret\": \"fuzz-secret-fuzz-secret-fuzz-secret!\", \"token_ttl_s\": 3600,"
    " \"bcrypt_cost\": 4, \"ai_provider\": \"gemini\","
    " \"chat_system_prompt\": \"You are a fuzzer's assistant.\","
    " \"limits\": {\"login_per_address\": {\"per_minute\": 0},"
    "  \"login_per_account\": {\"per_minute\": 0}, \"register_per_address\": {\"per_minute\": 0},"
    "  \"chat_per_address\": {\"per_minute\": 0}, \"chat_per_user\": {\"per_minute\": 0},"
    "  \"login_failures_before_delay\": 0, \"buckets\": 64,"
    "  \"password_hashes\": 64, \"password_hash_queue\": 1000}}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dead = getenv("FUZZ_API_DEAD_AUTH");
    dead_auth = dead && *dead && strcmp(dead, "0") != 0;
    const tk_plugin *plugin = taskora_plugin_entry();
    json_error_t je;
    char err[512];
    if (!(inst.config = json_loads(config_text, 0, &je))) {
        fprintf(stderr, "fuzz_api: config: %s\n", je.text);
        abort();
    }
    /* as the host does before init: unknown keys refused, defaults filled in */
    if (tk_config_validate(&inst.config, plugin->config, "", err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_api: config: %s\n", err);
        abort();
    }
    void *st = NULL;
    if (!(routes = tk_routes_new()) || plugin->init(&host, &inst, &st) != TK_OK) {
        fprintf(stderr, "fuzz_api: the plugin's init failed\n");
        abort();
    }
    state = st;
    char *token = api_jwt_issue(state, "7");
    if (!token)
        abort();
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

/* The host function table handed to plugins: each entry forwards to a core module. */
#include "host.h"

#include <jansson.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_registry.h"
#include "config.h"
#include "http_auth.h"
#include "http_request.h"
#include "http_response.h"
#include "http_server.h"
#include "http_sse.h"
#include "instance.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "pg_pool.h"
#include "resilience.h"
#include "runtime.h"

#define MAX_KV 32
#define MAX_LABELS 16

struct tk_metric_handle {
    tk_metric_family *family;
    tk_instance *inst;
    struct tk_metric_handle *next;
};

static const char *h_instance_name(const tk_instance *inst) { return inst->name; }
static const char *h_app_id(const tk_instance *inst) { return inst->rt->app_id; }

static void h_log(const tk_instance *inst, tk_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tk_logv(inst ? inst->name : NULL, level, fmt, ap);
    va_end(ap);
}

static void h_log_kv(const tk_instance *inst, tk_log_level level, const char *msg, ...)
{
    const char *kv[2 * MAX_KV];
    size_t n = 0;
    va_list ap;
    va_start(ap, msg);
    for (const char *k = va_arg(ap, const char *); k && n < MAX_KV; k = va_arg(ap, const char *)) {
        kv[2 * n] = k;
        kv[2 * n + 1] = va_arg(ap, const char *);
        n++;
    }
    va_end(ap);
    tk_log_write(inst ? inst->name : NULL, level, msg, kv, n);
}

static int h_log_enabled(const tk_instance *inst, tk_log_level level)
{
    (void)inst;
    return tk_log_enabled(level);
}

/* The value at path, or NULL (logging a misuse) when it is not of the wanted kind. */
static json_t *cfg(const tk_instance *inst, const char *path, int (*is)(const json_t *),
                   const char *kind)
{
    json_t *v = tk_config_get(inst->config, path);
    if (!v || json_is_null(v))
        return NULL;
    if (!is(v)) {
        tk_logf(inst->name, TK_LOG_ERROR, "config key %s is not %s (plugin reads it as one)", path,
                kind);
        return NULL;
    }
    return v;
}

static int is_string(const json_t *v) { return json_is_string(v); }
static int is_integer(const json_t *v) { return json_is_integer(v); }
static int is_boolean(const json_t *v) { return json_is_boolean(v); }
static int is_number(const json_t *v) { return json_is_number(v); }
static int is_array(const json_t *v) { return json_is_array(v); }
static int is_any(const json_t *v) { return v != NULL; }

static const char *h_config_string(const tk_instance *inst, const char *path)
{
    return json_string_value(cfg(inst, path, is_string, "a string"));
}

static int64_t h_config_int(const tk_instance *inst, const char *path)
{
    return (int64_t)json_integer_value(cfg(inst, path, is_integer, "an integer"));
}

static int h_config_bool(const tk_instance *inst, const char *path)
{
    return json_is_true(cfg(inst, path, is_boolean, "a boolean"));
}

static double h_config_double(const tk_instance *inst, const char *path)
{
    return json_number_value(cfg(inst, path, is_number, "a number"));
}

static size_t h_config_list_size(const tk_instance *inst, const char *path)
{
    return json_array_size(cfg(inst, path, is_array, "a list"));
}

static const char *h_config_list_get(const tk_instance *inst, const char *path, size_t i)
{
    return json_string_value(json_array_get(cfg(inst, path, is_array, "a list"), i));
}

static char *h_config_json(const tk_instance *inst, const char *path)
{
    json_t *v = cfg(inst, path, is_any, "a value");
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;
    if (v && !text)
        tk_logf(inst->name, TK_LOG_ERROR, "config key %s: out of memory", path);
    return text;
}

static void h_free(void *p) { free(p); }

static tk_metric *metric_new(tk_instance *inst, tk_metric_kind kind, const char *name,
                             const char *help, const char *const *labels, const double *buckets,
                             size_t nbuckets)
{
    const char *all[MAX_LABELS + 2] = {"plugin"};
    size_t n = 1;
    for (; labels && labels[n - 1]; n++) {
        if (n > MAX_LABELS || strcmp(labels[n - 1], "plugin") == 0) {
            tk_logf(inst->name, TK_LOG_ERROR, "metric %s: too many labels or a label named plugin",
                    name);
            return NULL;
        }
        all[n] = labels[n - 1];
    }
    all[n] = NULL;
    char err[256];
    tk_metric_family *f = tk_metrics_family(inst->rt->metrics, kind, name, help, all, buckets,
                                            nbuckets, err, sizeof(err));
    if (!f) {
        tk_logf(inst->name, TK_LOG_ERROR, "%s", err);
        return NULL;
    }
    tk_metric_handle *h = calloc(1, sizeof(*h));
    if (!h) {
        tk_logf(inst->name, TK_LOG_ERROR, "metric %s: out of memory", name);
        return NULL;
    }
    h->family = f;
    h->inst = inst;
    h->next = inst->metrics;
    inst->metrics = h;
    return (tk_metric *)h;
}

void tk_instance_free_metrics(tk_instance *inst)
{
    while (inst->metrics) {
        tk_metric_handle *h = inst->metrics;
        inst->metrics = h->next;
        free(h);
    }
}

static tk_metric *h_metric_counter(tk_instance *inst, const char *name, const char *help,
                                   const char *const *labels)
{
    return metric_new(inst, TK_METRIC_COUNTER, name, help, labels, NULL, 0);
}

static tk_metric *h_metric_gauge(tk_instance *inst, const char *name, const char *help,
                                 const char *const *labels)
{
    return metric_new(inst, TK_METRIC_GAUGE, name, help, labels, NULL, 0);
}

static tk_metric *h_metric_histogram(tk_instance *inst, const char *name, const char *help,
                                     const char *const *labels, const double *buckets,
                                     size_t nbuckets)
{
    return metric_new(inst, TK_METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

/* The series values with the instance name in front. */
static void with_plugin(const tk_metric_handle *h, const char *const *values, const char **out)
{
    size_t n = tk_metric_family_nlabels(h->family);
    out[0] = h->inst->name;
    for (size_t i = 1; i < n && i <= MAX_LABELS; i++)
        out[i] = values ? values[i - 1] : "";
}

/* Forwards an update to the family with the instance name as the first label value. */
static void update(tk_metric *m, const char *const *values, double v,
                   void (*op)(tk_metric_family *, const char *const *, double))
{
    const char *all[MAX_LABELS + 1];
    if (!m)
        return;
    with_plugin((tk_metric_handle *)m, values, all);
    op(((tk_metric_handle *)m)->family, all, v);
}

static void h_metric_add(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, tk_metric_add);
}

static void h_metric_set(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, tk_metric_set);
}

static void h_metric_observe(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, tk_metric_observe);
}

/* The instance's tag in /openapi.json says what serves its routes: "http_api 1.0: ...". */
static int describe_tag(const tk_instance *inst)
{
    const tk_plugin *d = inst->type->desc;
    char text[512];
    snprintf(text, sizeof(text), "%s %s%s%s", d->name, d->version ? d->version : "",
             d->description ? ": " : "", d->description ? d->description : "");
    return tk_http_tag(inst->rt->http, inst->name, text);
}

static int h_http_route(tk_instance *inst, const char *method, const char *pattern,
                        tk_http_handler handler, void *ud)
{
    if (!inst->rt->in_init) {
        tk_logf(inst->name, TK_LOG_ERROR, "route %s %s: routes can only be added in init()",
                method ? method : "?", pattern ? pattern : "?");
        return TK_ESTATE;
    }
    if (!inst->rt->http) {
        tk_logf(inst->name, TK_LOG_ERROR,
                "route %s %s: the HTTP server is disabled (http.enabled is false)",
                method ? method : "?", pattern ? pattern : "?");
        return TK_EUNAVAILABLE;
    }
    int rc = tk_http_route(inst->rt->http, method, pattern, handler, ud, inst->name);
    if (rc == 0)
        rc = describe_tag(inst);
    if (rc == TK_EEXIST)
        tk_logf(inst->name, TK_LOG_ERROR, "route %s %s is already registered", method, pattern);
    else if (rc == TK_EINVAL)
        tk_logf(inst->name, TK_LOG_ERROR,
                "route %s %s: bad method or pattern (patterns start with / and parameters are "
                "whole segments like {id})",
                method ? method : "?", pattern ? pattern : "?");
    return rc;
}

/* The pool, or NULL after logging why there is none. */
static tk_pg_pool *pool_of(const tk_instance *inst)
{
    if (!inst->rt->pg)
        tk_logf(inst->name, TK_LOG_ERROR, "no database: the config has no postgres.url");
    return inst->rt->pg;
}

static int h_pg_acquire(tk_instance *inst, int timeout_ms, tk_pg **out)
{
    *out = NULL;
    tk_pg_pool *p = pool_of(inst);
    return p ? tk_pg_acquire(p, timeout_ms, out) : TK_EUNAVAILABLE;
}

static void *h_pg_conn(tk_pg *c) { return tk_pg_conn(c); }

static int h_pg_tx(tk_instance *inst, tk_pg_fn fn, void *ud)
{
    tk_pg_pool *p = pool_of(inst);
    return p ? tk_pg_tx(p, fn, ud) : TK_EUNAVAILABLE;
}

static int h_pg_once(tk_instance *inst, const char *group, const char *event_id, tk_pg_fn fn,
                     void *ud, int *duplicate)
{
    *duplicate = 0;
    tk_pg_pool *p = pool_of(inst);
    return p ? tk_pg_once(p, group, event_id, fn, ud, duplicate) : TK_EUNAVAILABLE;
}

static int h_outbox_append_event(tk_instance *inst, void *conn, const char *topic, const char *type,
                                 const char *user_id, const char *subject, const char *payload_json,
                                 const char *traceparent, char *event_id_out, char **event_json_out)
{
    if (event_json_out)
        *event_json_out = NULL;
    int rc = tk_outbox_append(conn, inst->rt->app_id, topic, type, user_id, subject, payload_json,
                              traceparent, event_id_out, event_json_out);
    if (rc == TK_EINVAL)
        tk_logf(inst->name, TK_LOG_ERROR,
                "outbox_append: needs a connection, a topic, a type and a JSON object payload");
    return rc;
}

static int h_outbox_append(tk_instance *inst, void *conn, const char *topic, const char *type,
                           const char *user_id, const char *subject, const char *payload_json,
                           const char *traceparent, char *event_id_out)
{
    return h_outbox_append_event(inst, conn, topic, type, user_id, subject, payload_json,
                                 traceparent, event_id_out, NULL);
}

/* ---- resiliency and AI providers (ABI 1.3) ---------------------------------------- */

static int h_resilient_call(tk_instance *inst, const char *target, tk_attempt_fn fn, void *ud,
                            tk_failure *f)
{
    if (!target || !fn || !f)
        return TK_EINVAL;
    return tk_resilient_call(inst->rt->resilience, target, fn, ud, f);
}

static int h_ai_chat(tk_instance *inst, const char *provider, const char *request_json,
                     char **response_json, tk_failure *f)
{
    return tk_ai_chat(inst, provider, request_json, response_json, f);
}

/* ---- users (ABI 1.4) ------------------------------------------------------------ */

/* Whether inst may set the process's authenticator now: 0, or the code to answer. */
static int can_set_authenticator(const tk_instance *inst, int has_fn)
{
    if (!has_fn)
        return TK_EINVAL;
    if (!inst->rt->http)
        return TK_EUNAVAILABLE;
    return inst->rt->in_init ? 0 : TK_ESTATE;
}

/* The answer of setting it, with the refusal logged when another plugin was first. */
static int authenticator_set(const tk_instance *inst, int rc)
{
    if (rc == TK_EEXIST)
        tk_logf(inst->name, TK_LOG_ERROR,
                "another plugin already authenticates this process's requests");
    return rc;
}

static int h_http_set_authenticator(tk_instance *inst, tk_http_auth_fn fn, void *ud)
{
    int rc = can_set_authenticator(inst, fn != NULL);
    return rc ? rc : authenticator_set(inst, tk_http_set_authenticator(inst->rt->http, fn, ud));
}

static int h_http_set_authenticator2(tk_instance *inst, tk_http_auth2_fn fn, void *ud)
{
    int rc = can_set_authenticator(inst, fn != NULL);
    return rc ? rc : authenticator_set(inst, tk_http_set_authenticator2(inst->rt->http, fn, ud));
}

static int h_http_openapi(tk_instance *inst, const char *fragment)
{
    if (!inst->rt->in_init || inst->initialized) {
        tk_logf(inst->name, TK_LOG_ERROR, "http_openapi: routes are described only in init()");
        return TK_ESTATE;
    }
    if (!inst->rt->http) {
        tk_logf(inst->name, TK_LOG_ERROR,
                "http_openapi: the HTTP server is disabled (http.enabled is false)");
        return TK_EUNAVAILABLE;
    }
    char err[1024];
    int rc = tk_http_describe(inst->rt->http, inst->name, fragment, err, sizeof(err));
    if (rc)
        tk_logf(inst->name, TK_LOG_ERROR, "http_openapi: %s", err);
    return rc;
}

static const char *h_config_file(const tk_instance *inst)
{
    return inst && inst->config_file ? inst->config_file : "";
}

static void h_consume_reason(tk_instance *inst, const char *reason)
{
    (void)inst;
    tk_consume_reason_set(reason);
}

static int h_consume_rewind(tk_instance *inst, int64_t ms)
{
    if (!inst)
        return TK_EINVAL;
    if (inst->initialized)
        return TK_ESTATE;
    if (ms < 0 || !inst->consume || !json_is_true(json_object_get(inst->consume, "broadcast")))
        return TK_EINVAL;
    inst->rewind_ms = ms;
    return TK_OK;
}

static int h_pg_mark_processed(tk_instance *inst, void *conn, const char *group,
                               const char *const *event_ids, size_t n, int *fresh)
{
    int rc = tk_pg_mark_processed(conn, group, event_ids, n, fresh);
    if (rc == TK_EINVAL)
        tk_logf(inst->name, TK_LOG_ERROR,
                "pg_mark_processed: needs a connection, a group and n event ids");
    return rc;
}

static const tk_host host_table = {
    .struct_size = sizeof(tk_host),
    .abi_major = TK_PLUGIN_ABI_MAJOR,
    .abi_minor = TK_PLUGIN_ABI_MINOR,
    .instance_name = h_instance_name,
    .app_id = h_app_id,
    .log = h_log,
    .log_kv = h_log_kv,
    .log_enabled = h_log_enabled,
    .config_string = h_config_string,
    .config_int = h_config_int,
    .config_bool = h_config_bool,
    .config_double = h_config_double,
    .config_list_size = h_config_list_size,
    .config_list_get = h_config_list_get,
    .config_json = h_config_json,
    .free = h_free,
    .metric_counter = h_metric_counter,
    .metric_gauge = h_metric_gauge,
    .metric_histogram = h_metric_histogram,
    .metric_add = h_metric_add,
    .metric_set = h_metric_set,
    .metric_observe = h_metric_observe,
    .http_route = h_http_route,
    .http_method = tk_http_req_method,
    .http_path = tk_http_req_path,
    .http_param = tk_http_req_param,
    .http_query = tk_http_req_query,
    .http_header = tk_http_req_header,
    .http_body = tk_http_req_body,
    .http_request_id = tk_http_req_id,
    .http_status = tk_http_resp_status,
    .http_set_header = tk_http_resp_header,
    .http_set_body = tk_http_resp_body,
    .http_error = tk_http_resp_error,
    .pg_acquire = h_pg_acquire,
    .pg_release = tk_pg_release,
    .pg_conn = h_pg_conn,
    .pg_tx = h_pg_tx,
    .pg_once = h_pg_once,
    .outbox_append = h_outbox_append,
    .resilient_call = h_resilient_call,
    .ai_chat = h_ai_chat,
    .http_set_authenticator = h_http_set_authenticator,
    .http_authenticate = tk_http_authenticate,
    .sse_open = tk_sse_open,
    .sse_send = tk_sse_send,
    .sse_comment = tk_sse_comment,
    .sse_close = tk_sse_close,
    .sse_release = tk_sse_release,
    .http_client_addr = tk_http_req_client,
    .http_set_authenticator2 = h_http_set_authenticator2,
    .http_authenticate2 = tk_http_authenticate2,
    .outbox_append_event = h_outbox_append_event,
    .pg_mark_processed = h_pg_mark_processed,
    .sse_send_id = tk_sse_send_id,
    .consume_rewind = h_consume_rewind,
    .http_openapi = h_http_openapi,
    .config_file = h_config_file,
    .consume_reason = h_consume_reason,
};

const tk_host *tk_host_table(void) { return &host_table; }

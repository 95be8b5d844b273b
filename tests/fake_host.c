/* A fake of the whole host table, so a plugin can be unit-tested without taskorad. */
#include "fake_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake_series {
    tk_instance *inst;
    char name[128];
    int nlabels;
} fake_series;

static fake_series metrics[64];
static int nmetrics;

void fake_instance_init(tk_instance *inst, const char *name, const char *config_json)
{
    memset(inst, 0, sizeof(*inst));
    inst->name = name;
    inst->config = json_loads(config_json, 0, NULL);
    inst->metrics = json_object();
}

void fake_instance_clear(tk_instance *inst)
{
    json_decref(inst->config);
    json_decref(inst->metrics);
}

static const char *f_instance_name(const tk_instance *inst) { return inst->name; }
static const char *f_app_id(const tk_instance *inst)
{
    (void)inst;
    return "fake-app";
}

static void f_log(const tk_instance *inst, tk_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] %d ", inst->name, (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void f_log_kv(const tk_instance *inst, tk_log_level level, const char *msg, ...)
{
    fprintf(stderr, "[%s] %d %s\n", inst->name, (int)level, msg);
}

static int f_log_enabled(const tk_instance *inst, tk_log_level level)
{
    (void)inst;
    (void)level;
    return 1;
}

/* Reads config with the plugin's schema defaults applied by hand in the test's JSON. */
static json_t *get(const tk_instance *inst, const char *path)
{
    json_t *v = inst->config;
    char key[128];
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        v = json_object_get(v, key);
        path = dot ? dot + 1 : path + n;
    }
    return v;
}

static const char *f_config_string(const tk_instance *inst, const char *path)
{
    return json_string_value(get(inst, path));
}
static int64_t f_config_int(const tk_instance *inst, const char *path)
{
    return json_integer_value(get(inst, path));
}
static int f_config_bool(const tk_instance *inst, const char *path)
{
    return json_is_true(get(inst, path));
}
static double f_config_double(const tk_instance *inst, const char *path)
{
    return json_number_value(get(inst, path));
}
static size_t f_config_list_size(const tk_instance *inst, const char *path)
{
    return json_array_size(get(inst, path));
}
static const char *f_config_list_get(const tk_instance *inst, const char *path, size_t i)
{
    return json_string_value(json_array_get(get(inst, path), i));
}
static char *f_config_json(const tk_instance *inst, const char *path)
{
    json_t *v = get(inst, path);
    return v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
}
static void f_free(void *p) { free(p); }

static tk_metric *metric_new(tk_instance *inst, const char *name, const char *const *labels)
{
    if (nmetrics == 64)
        return NULL;
    fake_series *m = &metrics[nmetrics++];
    m->inst = inst;
    snprintf(m->name, sizeof(m->name), "%s", name);
    while (labels && labels[m->nlabels])
        m->nlabels++;
    return (tk_metric *)m;
}

static tk_metric *f_metric_counter(tk_instance *inst, const char *name, const char *help,
                                   const char *const *labels)
{
    (void)help;
    return metric_new(inst, name, labels);
}
static tk_metric *f_metric_gauge(tk_instance *inst, const char *name, const char *help,
                                 const char *const *labels)
{
    (void)help;
    return metric_new(inst, name, labels);
}
static tk_metric *f_metric_histogram(tk_instance *inst, const char *name, const char *help,
                                     const char *const *labels, const double *b, size_t nb)
{
    (void)help, (void)b, (void)nb;
    return metric_new(inst, name, labels);
}

static void series_key(const fake_series *m, const char *const *values, char *key, size_t len)
{
    size_t n = (size_t)snprintf(key, len, "%s{", m->name);
    for (int i = 0; i < m->nlabels && n < len; i++)
        n += (size_t)snprintf(key + n, len - n, "%s%s", i ? "," : "", values[i]);
    if (n < len)
        snprintf(key + n, len - n, "}");
}

static void update(tk_metric *mm, const char *const *values, double v, int set)
{
    fake_series *m = (fake_series *)mm;
    if (!m)
        return;
    char key[512];
    series_key(m, values, key, sizeof(key));
    double old = json_number_value(json_object_get(m->inst->metrics, key));
    json_object_set_new(m->inst->metrics, key, json_real(set ? v : old + v));
}

static void f_metric_add(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, 0);
}
static void f_metric_set(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, 1);
}
static void f_metric_observe(tk_metric *m, const char *const *values, double v)
{
    update(m, values, v, 0);
}

double fake_metric(const tk_instance *inst, const char *key)
{
    return json_number_value(json_object_get(inst->metrics, key));
}

static int f_http_route(tk_instance *inst, const char *method, const char *pattern,
                        tk_http_handler handler, void *ud)
{
    if (inst->nroutes == 16)
        return TK_ENOMEM;
    fake_route *r = &inst->routes[inst->nroutes++];
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->pattern, sizeof(r->pattern), "%s", pattern);
    r->handler = handler;
    r->ud = ud;
    return TK_OK;
}

int fake_call(tk_instance *inst, const char *method, const char *pattern,
              const tk_http_request *req, tk_http_response *resp)
{
    for (int i = 0; i < inst->nroutes; i++)
        if (strcmp(inst->routes[i].method, method) == 0 &&
            strcmp(inst->routes[i].pattern, pattern) == 0)
            return inst->routes[i].handler(inst->routes[i].ud, req, resp);
    return TK_ENOTFOUND;
}

static const char *f_http_method(const tk_http_request *r) { return r->method; }
static const char *f_http_path(const tk_http_request *r) { return r->path; }
static const char *f_http_param(const tk_http_request *r, const char *n)
{
    return json_string_value(json_object_get(r->params, n));
}
static const char *f_http_query(const tk_http_request *r, const char *n)
{
    return json_string_value(json_object_get(r->query, n));
}
static const char *f_http_header(const tk_http_request *r, const char *n)
{
    return json_string_value(json_object_get(r->headers, n));
}
static const char *f_http_body(const tk_http_request *r, size_t *len)
{
    const char *b = r->body ? r->body : "";
    if (len)
        *len = strlen(b);
    return b;
}
static const char *f_http_request_id(const tk_http_request *r)
{
    (void)r;
    return "fake-request";
}

static void f_http_status(tk_http_response *resp, int status) { resp->status = status; }
static int f_http_set_header(tk_http_response *resp, const char *n, const char *v)
{
    if (!resp->headers)
        resp->headers = json_object();
    return json_object_set_new(resp->headers, n, json_string(v)) ? TK_ENOMEM : TK_OK;
}
static int f_http_set_body(tk_http_response *resp, const char *ct, const void *body, size_t len)
{
    free(resp->body);
    free(resp->content_type);
    resp->body = malloc(len + 1);
    memcpy(resp->body, body, len);
    resp->body[len] = '\0';
    resp->len = len;
    resp->content_type = strdup(ct);
    return TK_OK;
}
static int f_http_error(tk_http_response *resp, int status, const char *detail)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"detail\":\"%s\"}", detail);
    resp->status = status;
    return f_http_set_body(resp, "application/json", buf, strlen(buf));
}

/* The real host checks the fragment against the routes; this one only that it is JSON. */
static int f_http_openapi(tk_instance *inst, const char *fragment)
{
    json_error_t e;
    json_t *j = json_loads(fragment ? fragment : "", 0, &e);
    if (!j) {
        fprintf(stderr, "fake host: %s: http_openapi: not JSON: %s (line %d, column %d)\n",
                inst->name, e.text, e.line, e.column);
        return TK_EINVAL;
    }
    json_decref(j);
    return TK_OK;
}

void fake_response_clear(tk_http_response *resp)
{
    free(resp->body);
    free(resp->content_type);
    json_decref(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

const tk_host fake_host = {
    .struct_size = sizeof(tk_host),
    .abi_major = TK_PLUGIN_ABI_MAJOR,
    .abi_minor = TK_PLUGIN_ABI_MINOR,
    .instance_name = f_instance_name,
    .app_id = f_app_id,
    .log = f_log,
    .log_kv = f_log_kv,
    .log_enabled = f_log_enabled,
    .config_string = f_config_string,
    .config_int = f_config_int,
    .config_bool = f_config_bool,
    .config_double = f_config_double,
    .config_list_size = f_config_list_size,
    .config_list_get = f_config_list_get,
    .config_json = f_config_json,
    .free = f_free,
    .metric_counter = f_metric_counter,
    .metric_gauge = f_metric_gauge,
    .metric_histogram = f_metric_histogram,
    .metric_add = f_metric_add,
    .metric_set = f_metric_set,
    .metric_observe = f_metric_observe,
    .http_route = f_http_route,
    .http_method = f_http_method,
    .http_path = f_http_path,
    .http_param = f_http_param,
    .http_query = f_http_query,
    .http_header = f_http_header,
    .http_body = f_http_body,
    .http_request_id = f_http_request_id,
    .http_status = f_http_status,
    .http_set_header = f_http_set_header,
    .http_set_body = f_http_set_body,
    .http_error = f_http_error,
    .http_openapi = f_http_openapi,
};

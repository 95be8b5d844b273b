/* AI providers by instance name, and the chat calls made through them (the host's ai_chat). */
#include "ai_registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "resilience.h"

struct tk_ai_registry {
    tk_instance **inst;
    size_t n, cap;
};

tk_ai_registry *tk_ai_registry_new(void) { return calloc(1, sizeof(tk_ai_registry)); }

void tk_ai_registry_free(tk_ai_registry *r)
{
    if (!r)
        return;
    free(r->inst);
    free(r);
}

int tk_ai_registry_add(tk_ai_registry *r, tk_instance *inst)
{
    if (!tk_plugin_ai(inst->type->desc))
        return TK_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 4;
        tk_instance **p = realloc(r->inst, cap * sizeof(*p));
        if (!p)
            return TK_ENOMEM;
        r->inst = p;
        r->cap = cap;
    }
    r->inst[r->n++] = inst;
    return TK_OK;
}

tk_instance *tk_ai_registry_find(const tk_ai_registry *r, const char *name,
                                 const tk_ai_provider **ai)
{
    for (size_t i = 0; r && i < r->n; i++) {
        tk_instance *p = r->inst[i];
        if (strcmp(p->name, name) == 0 && p->initialized) {
            *ai = tk_plugin_ai(p->type->desc);
            return p;
        }
    }
    return NULL;
}

typedef struct ai_attempt {
    tk_instance *provider;
    const tk_ai_provider *ai;
    const char *request;
    char *response;
} ai_attempt;

static int ai_attempt_fn(void *ud, tk_failure *f)
{
    ai_attempt *a = ud;
    free(a->response); /* a failed attempt's leftovers, if a provider left any */
    a->response = NULL;
    int rc = a->ai->chat(a->provider->state, a->request, &a->response, f);
    if (rc >= 0 && !a->response) {
        f->kind = TK_FAIL_UNAVAILABLE;
        snprintf(f->message, sizeof(f->message), "provider returned no response");
        rc = TK_ERR;
    }
    return rc;
}

/* Counts a finished call: its outcome, its time, and the tokens its answer reports. */
static void count_call(tk_metrics *m, const char *provider, int rc, const tk_failure *f,
                       double secs, const char *response)
{
    char e[256];
    static const char *const l_req[] = {"provider", "outcome", NULL},
                             *const l_lat[] = {"provider", NULL},
                             *const l_tok[] = {"provider", "model", "direction", NULL};
    tk_metric_family *req =
        tk_metrics_family(m, TK_METRIC_COUNTER, "taskora_ai_requests_total",
                          "AI provider calls by outcome", l_req, NULL, 0, e, sizeof(e));
    tk_metric_family *lat =
        tk_metrics_family(m, TK_METRIC_HISTOGRAM, "taskora_ai_request_seconds",
                          "AI provider calls, retries included", l_lat, NULL, 0, e, sizeof(e));
    tk_metric_family *tok = tk_metrics_family(m, TK_METRIC_COUNTER, "taskora_ai_tokens_total",
                                              "Tokens sent to and received from AI providers",
                                              l_tok, NULL, 0, e, sizeof(e));
    const char *vr[] = {provider, rc >= 0 ? "ok" : tk_failure_kind_name(f->kind)};
    const char *vl[] = {provider};
    if (req)
        tk_metric_add(req, vr, 1);
    if (lat)
        tk_metric_observe(lat, vl, secs);
    json_t *resp = rc >= 0 ? json_loads(response, 0, NULL) : NULL;
    const char *model = json_string_value(json_object_get(resp, "model"));
    json_t *usage = json_object_get(resp, "usage");
    if (tok && resp) {
        const char *vi[] = {provider, model ? model : "", "in"},
                   *vo[] = {provider, model ? model : "", "out"};
        tk_metric_add(tok, vi, (double)json_integer_value(json_object_get(usage, "input_tokens")));
        tk_metric_add(tok, vo, (double)json_integer_value(json_object_get(usage, "output_tokens")));
    }
    json_decref(resp);
}

int tk_ai_chat(const tk_instance *caller, const char *provider, const char *request_json,
               char **response_json, tk_failure *f)
{
    if (!provider || !request_json || !response_json || !f)
        return TK_EINVAL;
    *response_json = NULL;
    const tk_runtime *rt = caller->rt;
    const tk_ai_provider *ai = NULL;
    tk_instance *p = tk_ai_registry_find(rt->ai, provider, &ai);
    if (!p) {
        memset(f, 0, sizeof(*f));
        f->kind = TK_FAIL_UNAVAILABLE;
        f->retry_after_ms = -1;
        snprintf(f->message, sizeof(f->message), "no AI provider instance named \"%s\"", provider);
        return TK_ENOTFOUND;
    }
    char target[160];
    snprintf(target, sizeof(target), "ai.%s", provider);
    ai_attempt a = {.provider = p, .ai = ai, .request = request_json};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = tk_resilient_call(rt->resilience, target, ai_attempt_fn, &a, f);
    if (rt->metrics)
        count_call(rt->metrics, provider, rc, f, tk_seconds_since(&t0), a.response);
    if (rc < 0) {
        tk_logf(caller->name, TK_LOG_WARN, "AI provider %s failed (%s): %s", provider,
                tk_failure_kind_name(f->kind), f->message);
        free(a.response);
        return rc;
    }
    *response_json = a.response;
    return TK_OK;
}

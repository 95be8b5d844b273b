/*
 * Resiliency for remote calls (AI providers, webhooks): a retry policy with
 * exponential backoff that honours the server's requested delay, and a
 * circuit breaker per target, so a dead dependency costs no waiting.
 *
 * Breaker: closed -> (N consecutive failed attempts) -> open -> (open_ms)
 * -> half-open: one trial call; success closes it, failure opens it again.
 * Only failures that say the target is down or overloaded count (timeout,
 * unavailable, rate limited): a target that answers "bad request" is up.
 */
#include "resilience.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "log.h"

static const tk_config_field retry_fields[] = {
    {"attempts", TK_CFG_INT, 0, "3", NULL, "tries in all (1: no retries)", NULL,
     TK_CFG_RANGE(1, 100)},
    {"delay_ms", TK_CFG_INT, 0, "1000", NULL, "wait before the first retry", NULL,
     TK_CFG_RANGE(0, 3600000)},
    {"backoff", TK_CFG_DOUBLE, 0, "2.0", NULL, "each further wait is this many times longer", NULL,
     TK_CFG_RANGE(1, 100)},
    {"max_delay_ms", TK_CFG_INT, 0, "30000", NULL,
     "longest wait, a server's Retry-After included; longer fails at once", NULL,
     TK_CFG_RANGE(0, INT_MAX)},
    {0}};
static const tk_config_field breaker_fields[] = {
    {"failures", TK_CFG_INT, 0, "5", NULL, "consecutive failed attempts that open the circuit",
     NULL, TK_CFG_RANGE(1, 1000000)},
    {"open_ms", TK_CFG_INT, 0, "30000", NULL, "time open before one trial call", NULL,
     TK_CFG_RANGE(0, INT_MAX)},
    {0}};

const tk_config_field tk_resilience_fields[] = {
    {"retry", TK_CFG_OBJECT, 0, NULL, NULL, "retries of failed calls", retry_fields,
     TK_CFG_NO_RANGE},
    {"circuit_breaker", TK_CFG_OBJECT, 0, NULL, NULL, "per target", breaker_fields,
     TK_CFG_NO_RANGE},
    {"timeout_ms", TK_CFG_INT, 0, "60000", NULL, "a whole call, attempts and waits together", NULL,
     TK_CFG_RANGE(1, INT_MAX)},
    {"targets", TK_CFG_JSON, 0, "{}", NULL,
     "per-target overrides of these keys, e.g. {\"ai.gemini\": {\"retry\": {\"attempts\": 5}}}",
     NULL, TK_CFG_NO_RANGE},
    {0}};

/* The same keys without defaults: an override names only what it changes. */
static const tk_config_field retry_over[] = {
    {"attempts", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(1, 100)},
    {"delay_ms", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(0, 3600000)},
    {"backoff", TK_CFG_DOUBLE, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(1, 100)},
    {"max_delay_ms", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(0, INT_MAX)},
    {0}};
static const tk_config_field breaker_over[] = {
    {"failures", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(1, 1000000)},
    {"open_ms", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(0, INT_MAX)},
    {0}};
static const tk_config_field target_over[] = {
    {"retry", TK_CFG_OBJECT, 0, NULL, NULL, NULL, retry_over, TK_CFG_NO_RANGE},
    {"circuit_breaker", TK_CFG_OBJECT, 0, NULL, NULL, NULL, breaker_over, TK_CFG_NO_RANGE},
    {"timeout_ms", TK_CFG_INT, 0, NULL, NULL, NULL, NULL, TK_CFG_RANGE(1, INT_MAX)},
    {0}};

typedef enum { CLOSED = 0, HALF_OPEN = 1, OPEN = 2 } breaker_state;
static const char *const state_names[] = {"closed", "half-open", "open"};

typedef struct target {
    char *name;
    tk_resilience_policy p;
    breaker_state state;
    int consecutive;           /* failed attempts in a row */
    struct timespec opened_at; /* CLOCK_MONOTONIC */
    int trial;                 /* a half-open trial call is running */
    struct target *next;
} target;

struct tk_resilience {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* retry waits end here early when the process stops */
    int stopping;
    tk_resilience_policy base;
    json_t *overrides; /* {"target": {validated keys}} */
    target *targets;
    tk_metric_family *m_state, *m_transitions, *m_retries, *m_rejected;
};

/* Applies the keys present in obj (validated) to p. */
static void apply(tk_resilience_policy *p, json_t *obj)
{
    json_t *v;
    if ((v = tk_config_get(obj, "retry.attempts")))
        p->attempts = (int)json_integer_value(v);
    if ((v = tk_config_get(obj, "retry.delay_ms")))
        p->delay_ms = (int)json_integer_value(v);
    if ((v = tk_config_get(obj, "retry.backoff")))
        p->backoff = json_number_value(v);
    if ((v = tk_config_get(obj, "retry.max_delay_ms")))
        p->max_delay_ms = (int)json_integer_value(v);
    if ((v = tk_config_get(obj, "circuit_breaker.failures")))
        p->failures = (int)json_integer_value(v);
    if ((v = tk_config_get(obj, "circuit_breaker.open_ms")))
        p->open_ms = (int)json_integer_value(v);
    if ((v = tk_config_get(obj, "timeout_ms")))
        p->timeout_ms = (int)json_integer_value(v);
}

tk_resilience *tk_resilience_new(json_t *section, tk_metrics *metrics, char *err, size_t errlen)
{
    tk_resilience *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    tk_cond_init_monotonic(&r->wake);
    r->base = (tk_resilience_policy){.attempts = 3,
                                     .delay_ms = 1000,
                                     .backoff = 2.0,
                                     .max_delay_ms = 30000,
                                     .timeout_ms = 60000,
                                     .failures = 5,
                                     .open_ms = 30000};
    if (section)
        apply(&r->base, section);
    r->overrides = json_object();
    if (!r->overrides) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    json_t *targets = section ? json_object_get(section, "targets") : NULL;
    if (targets && !json_is_object(targets)) {
        snprintf(err, errlen, "resiliency.targets: expected an object of target names");
        goto fail;
    }
    const char *name;
    json_t *over;
    json_object_foreach(targets, name, over)
    {
        char path[300];
        snprintf(path, sizeof(path), "resiliency.targets.%s", name);
        json_t *copy = json_deep_copy(over);
        if (!copy)
            snprintf(err, errlen, "%s: out of memory", path);
        if (!copy || tk_config_validate(&copy, target_over, path, err, errlen)) {
            json_decref(copy);
            goto fail;
        }
        if (json_object_set_new(r->overrides, name, copy)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (metrics) {
        char e[256];
        static const char *const l1[] = {"target", NULL}, *const l2[] = {"target", "state", NULL};
        r->m_state = tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_circuit_state",
                                       "Circuit breaker state: 0 closed, 1 half-open, 2 open", l1,
                                       NULL, 0, e, sizeof(e));
        r->m_transitions =
            tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_circuit_transitions_total",
                              "Circuit breaker state changes", l2, NULL, 0, e, sizeof(e));
        r->m_retries =
            tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_retries_total",
                              "Retried attempts of remote calls", l1, NULL, 0, e, sizeof(e));
        r->m_rejected = tk_metrics_family(
            metrics, TK_METRIC_COUNTER, "taskora_circuit_rejected_total",
            "Calls failed at once because the circuit was open", l1, NULL, 0, e, sizeof(e));
    }
    return r;
fail:
    tk_resilience_free(r);
    return NULL;
}

void tk_resilience_free(tk_resilience *r)
{
    if (!r)
        return;
    for (target *t = r->targets, *n; t; t = n) {
        n = t->next;
        free(t->name);
        free(t);
    }
    json_decref(r->overrides);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The target's record, created on first use. Under the lock. */
static target *find(tk_resilience *r, const char *name)
{
    for (target *t = r->targets; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    target *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->p = r->base;
    apply(&t->p, json_object_get(r->overrides, name));
    t->next = r->targets;
    r->targets = t;
    if (r->m_state) {
        const char *v[] = {name};
        tk_metric_set(r->m_state, v, CLOSED);
    }
    return t;
}

tk_resilience_policy tk_resilience_policy_for(tk_resilience *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    target *t = find(r, name);
    tk_resilience_policy p = t ? t->p : r->base;
    pthread_mutex_unlock(&r->lock);
    return p;
}

const char *tk_resilience_state(tk_resilience *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    target *t = find(r, name);
    const char *s = state_names[t ? t->state : CLOSED];
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* Under the lock. */
static void set_state(tk_resilience *r, target *t, breaker_state s)
{
    if (t->state == s)
        return;
    tk_logf(NULL, s == OPEN ? TK_LOG_WARN : TK_LOG_INFO, "circuit %s: %s -> %s%s", t->name,
            state_names[t->state], state_names[s],
            s == OPEN ? " (calls fail at once until a trial call succeeds)" : "");
    t->state = s;
    if (s == OPEN)
        clock_gettime(CLOCK_MONOTONIC, &t->opened_at);
    const char *v1[] = {t->name}, *v2[] = {t->name, state_names[s]};
    if (r->m_state) {
        tk_metric_set(r->m_state, v1, s);
        tk_metric_add(r->m_transitions, v2, 1);
    }
}

/*
 * May a call go out now? 1 yes (*trial set when it is the half-open trial),
 * 0 no with *wait_ms until the next trial.
 */
static int admit(tk_resilience *r, target *t, int *trial, int64_t *wait_ms)
{
    *trial = 0;
    if (t->state == OPEN) {
        double open_for = tk_seconds_since(&t->opened_at) * 1000;
        if (open_for < t->p.open_ms) {
            *wait_ms = (int64_t)(t->p.open_ms - open_for) + 1;
            return 0;
        }
        set_state(r, t, HALF_OPEN);
    }
    if (t->state == HALF_OPEN) {
        if (t->trial) {
            *wait_ms = 1000; /* the trial call decides */
            return 0;
        }
        t->trial = *trial = 1;
    }
    return 1;
}

/* Records an attempt's outcome; `down`: a failure that counts. Under the lock. */
static void record(tk_resilience *r, target *t, int trial, int down)
{
    if (trial)
        t->trial = 0;
    if (!down) {
        t->consecutive = 0;
        if (t->state == HALF_OPEN)
            set_state(r, t, CLOSED);
        return;
    }
    t->consecutive++;
    /* (an attempt admitted before the circuit opened may fail after: it changes nothing) */
    if (t->state == HALF_OPEN || (t->state == CLOSED && t->consecutive >= t->p.failures))
        set_state(r, t, OPEN);
}

static int retryable(const tk_failure *f)
{
    return (f->kind == TK_FAIL_RATE_LIMITED && !f->fail_fast) || f->kind == TK_FAIL_UNAVAILABLE ||
           f->kind == TK_FAIL_TIMEOUT;
}

/* Waits ms, or less when the process stops; 0 when the whole wait passed. */
static int pause_ms(tk_resilience *r, int64_t ms)
{
    struct timespec deadline = tk_deadline_ms((int)ms);
    pthread_mutex_lock(&r->lock);
    while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->lock, &deadline) == 0)
        ;
    int stopped = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return stopped ? -1 : 0;
}

void tk_resilience_stop(tk_resilience *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

int tk_resilient_call(tk_resilience *r, const char *name, tk_attempt_fn fn, void *ud, tk_failure *f)
{
    if (!r) { /* e.g. outside `taskorad run`: one attempt */
        memset(f, 0, sizeof(*f));
        f->retry_after_ms = -1;
        return fn(ud, f);
    }
    pthread_mutex_lock(&r->lock);
    target *t = find(r, name);
    if (!t) {
        pthread_mutex_unlock(&r->lock);
        memset(f, 0, sizeof(*f));
        f->kind = TK_FAIL_UNAVAILABLE;
        f->retry_after_ms = -1;
        snprintf(f->message, sizeof(f->message), "out of memory");
        return TK_ENOMEM;
    }
    tk_resilience_policy p = t->p;
    pthread_mutex_unlock(&r->lock);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    const char *v[] = {name};
    int rc = TK_ERR;
    for (int attempt = 1; attempt <= p.attempts; attempt++) {
        int trial;
        int64_t wait_ms = 0;
        pthread_mutex_lock(&r->lock);
        int go = admit(r, t, &trial, &wait_ms);
        int failures = t->consecutive;
        pthread_mutex_unlock(&r->lock);
        if (!go) {
            memset(f, 0, sizeof(*f));
            f->kind = TK_FAIL_UNAVAILABLE;
            f->retry_after_ms = wait_ms;
            snprintf(f->message, sizeof(f->message),
                     "circuit open for %s after %d consecutive failures; next trial in %lld ms",
                     name, failures, (long long)wait_ms);
            if (r->m_rejected)
                tk_metric_add(r->m_rejected, v, 1);
            return TK_EUNAVAILABLE;
        }
        memset(f, 0, sizeof(*f));
        f->retry_after_ms = -1;
        rc = fn(ud, f);
        if (rc >= 0) {
            pthread_mutex_lock(&r->lock);
            record(r, t, trial, 0);
            pthread_mutex_unlock(&r->lock);
            return rc;
        }
        if (f->kind == TK_FAIL_NONE)
            f->kind = TK_FAIL_UNAVAILABLE;
        /* TK_EUNAVAILABLE is kept for the open circuit, so callers can tell it apart */
        rc = f->kind == TK_FAIL_TIMEOUT ? TK_ETIMEDOUT : TK_ERR;
        int again = retryable(f);
        pthread_mutex_lock(&r->lock);
        record(r, t, trial, again || f->kind == TK_FAIL_RATE_LIMITED);
        int opened = t->state == OPEN;
        pthread_mutex_unlock(&r->lock);
        if (!again || attempt == p.attempts)
            break;
        if (opened)
            continue; /* no waiting: the next round reports the open circuit */
        double wait = p.delay_ms * pow(p.backoff, attempt - 1);
        if (f->retry_after_ms > wait)
            wait = (double)f->retry_after_ms;
        double spent_ms = tk_seconds_since(&start) * 1000;
        if (wait > p.max_delay_ms || spent_ms + wait > p.timeout_ms) {
            tk_logf(NULL, TK_LOG_INFO,
                    "%s: not retrying: a wait of %.0f ms is past the policy (max %d ms, %.0f of "
                    "%d ms spent)",
                    name, wait, p.max_delay_ms, spent_ms, p.timeout_ms);
            break;
        }
        tk_logf(NULL, TK_LOG_INFO, "%s: attempt %d of %d failed (%s); retrying in %.0f ms", name,
                attempt, p.attempts, f->message, wait);
        if (r->m_retries)
            tk_metric_add(r->m_retries, v, 1);
        if (pause_ms(r, (int64_t)wait) != 0)
            break; /* stopping: the last failure is the answer */
    }
    return rc;
}

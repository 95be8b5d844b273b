/* The metrics registry and its Prometheus text rendering. */
#include "metrics.h"

#include "buf.h"
#include "log.h"

#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double default_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};

typedef struct series {
    char **values;
    double value;     /* counter, gauge */
    uint64_t *counts; /* histogram: per bucket, not cumulative */
    uint64_t count;
    double sum;
    struct series *next;
} series;

struct tk_metric_family {
    tk_metric_kind kind;
    char *name, *help;
    char **labels;
    size_t nlabels;
    double *buckets;
    size_t nbuckets;
    series *head, **tail;
    struct tk_metric_family *next;
};

struct tk_metrics {
    pthread_mutex_t lock;
    tk_metric_family *head, **tail;
};

/* The registry's lock, reached from a family for updates. One registry per process. */
static pthread_mutex_t *g_lock;

tk_metrics *tk_metrics_new(void)
{
    tk_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->head;
    g_lock = &m->lock;
    return m;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void tk_metrics_free(tk_metrics *m)
{
    if (!m)
        return;
    tk_metric_family *f = m->head;
    while (f) {
        tk_metric_family *fn = f->next;
        series *s = f->head;
        while (s) {
            series *sn = s->next;
            free_strv(s->values, f->nlabels);
            free(s->counts);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free_strv(f->labels, f->nlabels);
        free(f->buckets);
        free(f);
        f = fn;
    }
    if (g_lock == &m->lock)
        g_lock = NULL;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int tk_metric_name_valid(const char *name, int is_label)
{
    if (!name || !*name || strlen(name) > TK_METRIC_NAME_MAX)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (!is_label && c == ':') || (p != name && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return !(is_label && strncmp(name, "__", 2) == 0);
}

static size_t strv_len(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static int same_family(const tk_metric_family *f, tk_metric_kind kind, const char *const *labels,
                       const double *buckets, size_t nbuckets)
{
    if (f->kind != kind || f->nlabels != strv_len(labels))
        return 0;
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return 0;
    if (kind == TK_METRIC_HISTOGRAM && buckets) {
        if (nbuckets != f->nbuckets)
            return 0;
        for (size_t i = 0; i < nbuckets; i++)
            if (buckets[i] != f->buckets[i])
                return 0;
    }
    return 1;
}

tk_metric_family *tk_metrics_family(tk_metrics *m, tk_metric_kind kind, const char *name,
                                    const char *help, const char *const *labels,
                                    const double *buckets, size_t nbuckets, char *err,
                                    size_t errlen)
{
    if (!tk_metric_name_valid(name, 0)) {
        snprintf(err, errlen, "metric name \"%s\" is not a valid Prometheus name",
                 name ? name : "");
        return NULL;
    }
    size_t nl = strv_len(labels);
    for (size_t i = 0; i < nl; i++) {
        if (!tk_metric_name_valid(labels[i], 1) || strcmp(labels[i], "le") == 0) {
            snprintf(err, errlen, "metric %s: label name \"%s\" is not allowed", name, labels[i]);
            return NULL;
        }
    }
    if (kind == TK_METRIC_HISTOGRAM && buckets) {
        for (size_t i = 0; i < nbuckets; i++) {
            if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
                snprintf(err, errlen, "metric %s: buckets must be finite and ascending", name);
                return NULL;
            }
        }
    }
    pthread_mutex_lock(&m->lock);
    for (tk_metric_family *f = m->head; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            int ok = same_family(f, kind, labels, buckets, nbuckets);
            pthread_mutex_unlock(&m->lock);
            if (!ok)
                snprintf(err, errlen,
                         "metric %s is already registered with another kind, labels or buckets",
                         name);
            return ok ? f : NULL;
        }
    }
    tk_metric_family *f = calloc(1, sizeof(*f));
    if (!f)
        goto nomem;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->nlabels = nl;
    f->labels = calloc(nl + 1, sizeof(char *));
    f->tail = &f->head;
    if (!f->name || !f->help || !f->labels)
        goto nomem_f;
    for (size_t i = 0; i < nl; i++)
        if (!(f->labels[i] = strdup(labels[i])))
            goto nomem_f;
    if (kind == TK_METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            nbuckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
        }
        f->nbuckets = nbuckets;
        f->buckets = malloc(sizeof(double) * (nbuckets ? nbuckets : 1));
        if (!f->buckets)
            goto nomem_f;
        memcpy(f->buckets, buckets, sizeof(double) * nbuckets);
    }
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->lock);
    return f;
nomem_f:
    free(f->name);
    free(f->help);
    free_strv(f->labels, nl);
    free(f->buckets);
    free(f);
nomem:
    pthread_mutex_unlock(&m->lock);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* Finds or creates a series; called with the lock held. NULL when out of memory. */
static series *series_get(tk_metric_family *f, const char *const *values)
{
    for (series *s = f->head; s; s = s->next) {
        size_t i = 0;
        for (; i < f->nlabels; i++)
            if (strcmp(s->values[i], values && values[i] ? values[i] : "") != 0)
                break;
        if (i == f->nlabels)
            return s;
    }
    series *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->values = calloc(f->nlabels + 1, sizeof(char *));
    if (f->kind == TK_METRIC_HISTOGRAM)
        s->counts = calloc(f->nbuckets + 1, sizeof(uint64_t));
    int ok = s->values && (f->kind != TK_METRIC_HISTOGRAM || s->counts);
    for (size_t i = 0; ok && i < f->nlabels; i++)
        ok = (s->values[i] = strdup(values && values[i] ? values[i] : "")) != NULL;
    if (!ok) {
        free_strv(s->values, f->nlabels);
        free(s->counts);
        free(s);
        return NULL;
    }
    *f->tail = s;
    f->tail = &s->next;
    return s;
}

static void update(tk_metric_family *f, const char *const *values, double v, int op)
{
    if (!f || !g_lock)
        return;
    pthread_mutex_lock(g_lock);
    series *s = series_get(f, values);
    if (!s)
        tk_logf(NULL, TK_LOG_ERROR, "metric %s: out of memory for a new series; update dropped",
                f->name);
    if (s) {
        if (op == 0)
            s->value += v;
        else if (op == 1)
            s->value = v;
        else {
            size_t i = 0;
            while (i < f->nbuckets && v > f->buckets[i])
                i++;
            s->counts[i]++;
            s->count++;
            s->sum += v;
        }
    }
    pthread_mutex_unlock(g_lock);
}

void tk_metric_add(tk_metric_family *f, const char *const *values, double v)
{
    if (f && f->kind == TK_METRIC_COUNTER && !(v >= 0))
        return; /* counters never go down */
    if (f && f->kind != TK_METRIC_HISTOGRAM)
        update(f, values, v, 0);
}

void tk_metric_set(tk_metric_family *f, const char *const *values, double v)
{
    if (f && f->kind == TK_METRIC_GAUGE)
        update(f, values, v, 1);
}

void tk_metric_observe(tk_metric_family *f, const char *const *values, double v)
{
    if (f && f->kind == TK_METRIC_HISTOGRAM && !isnan(v))
        update(f, values, v, 2);
}

tk_metric_kind tk_metric_family_kind(const tk_metric_family *f) { return f->kind; }
size_t tk_metric_family_nlabels(const tk_metric_family *f) { return f->nlabels; }

/* Escapes HELP text (backslash, newline) or a label value (also double quote). */
static void put_escaped(tk_buf *b, const char *s, int label)
{
    for (; *s; s++) {
        if (*s == '\\')
            tk_buf_put(b, "\\\\", 2);
        else if (*s == '\n')
            tk_buf_put(b, "\\n", 2);
        else if (label && *s == '"')
            tk_buf_put(b, "\\\"", 2);
        else
            tk_buf_put(b, s, 1);
    }
}

static void put_number(tk_buf *b, double v)
{
    if (isnan(v))
        tk_buf_put(b, "NaN", 3);
    else if (isinf(v))
        tk_buf_printf(b, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (fabs(v) < 1e15 && v == (double)(long long)v)
        tk_buf_printf(b, "%lld", (long long)v);
    else
        tk_buf_printf(b, "%.17g", v);
}

/* Writes {a="x",b="y"[,le="..."]}, or nothing when there are no labels. */
static void put_labels(tk_buf *b, const tk_metric_family *f, const series *s, const char *le)
{
    if (f->nlabels == 0 && !le)
        return;
    tk_buf_put(b, "{", 1);
    for (size_t i = 0; i < f->nlabels; i++) {
        tk_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(b, s->values[i], 1);
        tk_buf_put(b, "\"", 1);
    }
    if (le)
        tk_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    tk_buf_put(b, "}", 1);
}

char *tk_metrics_render(tk_metrics *m, size_t *len)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    tk_buf b = {0};
    tk_buf_put(&b, "", 0); /* an empty registry renders as "" */
    pthread_mutex_lock(&m->lock);
    for (tk_metric_family *f = m->head; f; f = f->next) {
        tk_buf_printf(&b, "# HELP %s ", f->name);
        put_escaped(&b, f->help, 0);
        tk_buf_printf(&b, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
        for (series *s = f->head; s; s = s->next) {
            if (f->kind != TK_METRIC_HISTOGRAM) {
                tk_buf_printf(&b, "%s", f->name);
                put_labels(&b, f, s, NULL);
                tk_buf_put(&b, " ", 1);
                put_number(&b, s->value);
                tk_buf_put(&b, "\n", 1);
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i <= f->nbuckets; i++) {
                char le[64];
                cum += s->counts[i];
                if (i == f->nbuckets)
                    snprintf(le, sizeof(le), "+Inf");
                else
                    snprintf(le, sizeof(le), "%.15g", f->buckets[i]);
                tk_buf_printf(&b, "%s_bucket", f->name);
                put_labels(&b, f, s, le);
                tk_buf_printf(&b, " %llu\n", (unsigned long long)cum);
            }
            tk_buf_printf(&b, "%s_sum", f->name);
            put_labels(&b, f, s, NULL);
            tk_buf_put(&b, " ", 1);
            put_number(&b, s->sum);
            tk_buf_printf(&b, "\n%s_count", f->name);
            put_labels(&b, f, s, NULL);
            tk_buf_printf(&b, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (b.oom) {
        tk_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

/* The metrics registry: counters, gauges and histograms with labels, as Prometheus text. */
#ifndef TK_CORE_METRICS_H
#define TK_CORE_METRICS_H

#include <stddef.h>

typedef enum tk_metric_kind {
    TK_METRIC_COUNTER,
    TK_METRIC_GAUGE,
    TK_METRIC_HISTOGRAM
} tk_metric_kind;

typedef struct tk_metrics tk_metrics;
typedef struct tk_metric_family tk_metric_family;

tk_metrics *tk_metrics_new(void);
void tk_metrics_free(tk_metrics *m);

/*
 * Registers a family, or returns the existing one of that name when kind,
 * labels and buckets agree; NULL (with a reason in err) otherwise or on a
 * bad name. `labels` is NULL-terminated (or NULL). Owned by the registry.
 */
tk_metric_family *tk_metrics_family(tk_metrics *m, tk_metric_kind kind, const char *name,
                                    const char *help, const char *const *labels,
                                    const double *buckets, size_t nbuckets, char *err,
                                    size_t errlen);

/* Updates the series named by `values` (one per label; NULL when none). Any thread. */
void tk_metric_add(tk_metric_family *f, const char *const *values, double v);
void tk_metric_set(tk_metric_family *f, const char *const *values, double v);
void tk_metric_observe(tk_metric_family *f, const char *const *values, double v);
tk_metric_kind tk_metric_family_kind(const tk_metric_family *f);
size_t tk_metric_family_nlabels(const tk_metric_family *f);

/* Renders every family as Prometheus text (version 0.0.4). Caller frees. */
char *tk_metrics_render(tk_metrics *m, size_t *len);

/* Longest metric or label name accepted (keeps every rendered line within its buffer). */
#define TK_METRIC_NAME_MAX 128

/* Non-zero when name matches [a-zA-Z_:][a-zA-Z0-9_:]* (label names: no ':'), at most
 * TK_METRIC_NAME_MAX long. */
int tk_metric_name_valid(const char *name, int is_label);

#endif

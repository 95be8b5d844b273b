/* The process's shared services, which host functions reach through an instance. */
#ifndef TK_CORE_RUNTIME_H
#define TK_CORE_RUNTIME_H

#include "http_server.h"
#include "metrics.h"
#include "pg_pool.h"

typedef struct tk_runtime {
    const char *app_id;
    tk_metrics *metrics;
    tk_http_server *http;             /* NULL when HTTP is disabled */
    tk_pg_pool *pg;                   /* NULL when no database is configured */
    struct tk_resilience *resilience; /* NULL: calls are made once, no breaker */
    struct tk_ai_registry *ai;        /* AI provider instances by name (ai_chat), or NULL */
    int in_init;                      /* routes and metrics may be registered */
} tk_runtime;

#endif

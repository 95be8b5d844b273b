/* The plugin loader: finds, checks and loads plugin types, and runs instances' lifecycles. */
#ifndef TK_CORE_LOADER_H
#define TK_CORE_LOADER_H

#include <jansson.h>
#include <stddef.h>

#include "http_server.h"
#include "metrics.h"
#include "pg_pool.h"
#include "settings.h"
#include "taskora/plugin.h"

/* What host functions reach through an instance. */
typedef struct tk_runtime {
    const char *app_id;
    tk_metrics *metrics;
    tk_http_server *http;             /* NULL when HTTP is disabled */
    tk_pg_pool *pg;                   /* NULL when no database is configured */
    struct tk_resilience *resilience; /* NULL: calls are made once, no breaker */
    struct tk_loader *loader;         /* the instances, for lookups by name (ai_chat) */
    int in_init;                      /* routes and metrics may be registered */
} tk_runtime;

/* A loaded .so. Shared by every instance of that type. */
typedef struct tk_plugin_type {
    char *path;
    void *dl;
    const tk_plugin *desc;
    const tk_config_field *schema; /* desc->config in this host's layout, or NULL */
    tk_config_field *schema_copy;  /* owned: desc->config of a plugin built for ABI < 1.6 */
    struct tk_plugin_type *next;
} tk_plugin_type;

typedef struct tk_metric_handle tk_metric_handle;

struct tk_instance {
    char *name;
    tk_plugin_type *type;
    json_t *config;  /* validated against the type's schema, defaults filled */
    json_t *consume; /* the consume section (borrowed from the settings), or NULL */
    void *state;
    int initialized, started;
    tk_runtime *rt;
    tk_metric_handle *metrics; /* handles given out, freed at close */
};

typedef struct tk_loader {
    tk_plugin_type *types;
    tk_instance **inst;
    size_t n;
    tk_runtime *rt;
} tk_loader;

/*
 * Loads every configured plugin type and checks it (file, ELF, entry
 * symbol, ABI, descriptor) and each instance's config, running no plugin
 * code but the entry function. On failure: one line in err naming the file
 * and reason; the loader is left for tk_loader_close.
 */
int tk_loader_open(tk_loader *l, const tk_settings *s, tk_runtime *rt, char *err, size_t errlen);
/* init() each instance in order; on failure destroys the ones already initialised. */
int tk_loader_init(tk_loader *l, char *err, size_t errlen);
/* start() each instance in order; on failure stops the ones already started. */
int tk_loader_start(tk_loader *l, char *err, size_t errlen);
/* stop() started instances in reverse order. */
void tk_loader_stop(tk_loader *l);
/* destroy() initialised instances in reverse order. */
void tk_loader_destroy(tk_loader *l);
/* Frees everything and unloads the plugin files. */
void tk_loader_close(tk_loader *l);

/* The folders searched for a plugin name, in order (colon-separated), for messages. */
void tk_loader_search_path(const tk_settings *s, char *buf, size_t len);

/* Frees the metric handles an instance was given (host.c). */
void tk_instance_free_metrics(tk_instance *inst);

/* The host function table given to plugins. */
const tk_host *tk_host_table(void);

/* "http,consume,migrations,config" for a descriptor. */
void tk_plugin_capabilities(const tk_plugin *d, char *buf, size_t len);
/* The descriptor's AI provider functions, or NULL (none, or a descriptor older than 1.3). */
const tk_ai_provider *tk_plugin_ai(const tk_plugin *d);
/* The descriptor's batch handler, or NULL (none, or a descriptor older than 1.4). */
typedef void (*tk_consume_batch_fn)(void *state, const tk_event *const *events, size_t n,
                                    tk_consume_result *results);
tk_consume_batch_fn tk_plugin_consume_batch(const tk_plugin *d);
/* The instance of that name, or NULL. */
tk_instance *tk_loader_find(tk_loader *l, const char *name);

#endif

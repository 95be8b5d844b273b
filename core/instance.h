/* Plugin instances: a loaded plugin type (its descriptor) with a name, a config and a state. */
#ifndef TK_CORE_INSTANCE_H
#define TK_CORE_INSTANCE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"
#include "taskora/plugin.h"

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
    int64_t
        rewind_ms; /* a broadcast consumer starts this far back (consume_rewind), 0: at the end */
    void *state;
    int initialized, started;
    tk_runtime *rt;
    const char *config_file;   /* the settings' path (borrowed), "" when none */
    tk_metric_handle *metrics; /* handles given out, freed at close (host.c) */
};

/* "http,consume,migrations,config" for a descriptor. */
void tk_plugin_capabilities(const tk_plugin *d, char *buf, size_t len);
/* The descriptor's AI provider functions, or NULL (none, or a descriptor older than 1.3). */
const tk_ai_provider *tk_plugin_ai(const tk_plugin *d);
/* The descriptor's batch handler, or NULL (none, or a descriptor older than 1.4). */
typedef void (*tk_consume_batch_fn)(void *state, const tk_event *const *events, size_t n,
                                    tk_consume_result *results);
tk_consume_batch_fn tk_plugin_consume_batch(const tk_plugin *d);

/* The descriptor's 1.9 hooks, or NULL (none, or a descriptor older than 1.9). */
typedef int (*tk_check_fn)(const tk_host *host, tk_instance *inst, char *err, size_t errlen);
typedef int (*tk_instance_migrations_fn)(const tk_host *host, tk_instance *inst, char ***steps,
                                         char *err, size_t errlen);
typedef void (*tk_reload_fn)(void *state);
tk_check_fn tk_plugin_check(const tk_plugin *d);
tk_instance_migrations_fn tk_plugin_instance_migrations(const tk_plugin *d);
tk_reload_fn tk_plugin_reload(const tk_plugin *d);

/*
 * The consumer group of an instance with a consume section: its "group", else
 * "taskora-<instance>". Written to buf (truncated to len), which is returned.
 */
const char *tk_instance_group(const tk_instance *inst, char *buf, size_t len);

/*
 * Hands n decoded events to the instance's consume handler, the one way the
 * Kafka consumer and Dapr deliveries reach a plugin: one event goes through
 * `consume` when the plugin has it, else consume_batch with n = 1; several go
 * through consume_batch when it has one (ABI 1.4), else `consume` one by one.
 * results[i] answers events[i]; RETRY where the handler set nothing.
 */
void tk_instance_consume(const tk_instance *inst, const tk_event *const *events, size_t n,
                         tk_consume_result *results);

/*
 * Why the last handler call on this thread failed (host consume_reason):
 * set by the plugin during tk_instance_consume, which starts each call
 * without one. tk_consume_reason copies it into buf (NUL-terminated) and
 * returns 1, or returns 0 when none was given.
 */
void tk_consume_reason_set(const char *reason);
int tk_consume_reason(char *buf, size_t len);

#endif

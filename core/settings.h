/* The host's own configuration: the schema of taskorad's config file and its values. */
#ifndef TK_CORE_SETTINGS_H
#define TK_CORE_SETTINGS_H

#include <jansson.h>
#include <stddef.h>

#include "log.h"

/* One entry of "plugins": an instance to create. */
typedef struct tk_plugin_conf {
    const char *name; /* instance name, unique */
    const char *load; /* plugin type: a name searched in plugin_dir, or a path */
    json_t *config;   /* the instance config as written (validated after loading) */
    json_t *consume;  /* the validated consume section, or NULL */
    char jpath[32];   /* "plugins[3]" for messages */
} tk_plugin_conf;

typedef struct tk_settings {
    char *path;   /* the config file */
    char *dir;    /* its directory, for relative plugin paths */
    json_t *root; /* validated, with defaults filled in */
    const char *app_id;
    tk_log_level log_level;
    tk_log_format log_format;
    const char *plugin_dir; /* colon-separated list, or NULL */
    const char *pg_url;     /* NULL when no database is configured */
    int pg_pool_size;
    int pg_acquire_timeout_ms;
    int pg_connect_timeout_s;
    const char *kafka_brokers;
    int kafka_partitions;
    json_t *kafka_topics;
    json_t *kafka_props, *kafka_producer_props, *kafka_consumer_props;
    int outbox_relay, outbox_batch, outbox_poll_ms, outbox_retention_s;
    int http_enabled;
    const char *http_listen;
    long long http_body_limit;
    json_t *http_cors_origins;
    int http_max_connections;
    int http_timeout_s;
    int http_sse_keepalive_s;
    json_t *http_trusted_proxies;
    const char *http_admin_listen;
    int http_read_timeout_s, http_max_per_client, http_max_streams_per_client;
    int http_workers, http_queue, http_io_threads;
    int shutdown_timeout_ms;
    int drain_delay_ms; /* SIGTERM: serve this long (not ready) before accepting no more */
    json_t *resiliency; /* the validated "resiliency" section (borrowed from root) */
    int dapr_enabled;
    const char *dapr_pubsub, *dapr_app_token;
    tk_plugin_conf *plugins;
    size_t nplugins;
} tk_settings;

/*
 * Reads, substitutes and validates a config file. On error returns NULL
 * with a one-line message naming the file and line:column or JSON path.
 */
tk_settings *tk_settings_load(const char *path, char *err, size_t errlen);
void tk_settings_free(tk_settings *s);

#endif

/* The host's own configuration: the schema of taskorad's config file and its values. */
#include "settings.h"

#include "resilience.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "netaddr.h"

static const tk_config_field log_fields[] = {{"level", TK_CFG_STRING, 0, "\"info\"",
                                              "debug|info|warn|error", "lowest level printed", NULL,
                                              TK_CFG_NO_RANGE},
                                             {"format", TK_CFG_STRING, 0, "\"json\"", "json|text",
                                              "JSON lines or readable text", NULL, TK_CFG_NO_RANGE},
                                             {0}};

static const tk_config_field postgres_fields[] = {
    {"url", TK_CFG_STRING, 0, NULL, NULL, "libpq connection URL (TLS and all parameters)", NULL,
     TK_CFG_NO_RANGE},
    {"pool_size", TK_CFG_INT, 0, "8", NULL, "connections in the pool", NULL, TK_CFG_RANGE(1, 1000)},
    {"acquire_timeout_ms", TK_CFG_INT, 0, "5000", NULL, "longest wait for a free connection", NULL,
     TK_CFG_RANGE(0, 3600000)},
    {"connect_timeout_s", TK_CFG_INT, 0, "5", NULL,
     "longest wait for a new connection (when the url sets no connect_timeout)", NULL,
     TK_CFG_RANGE(1, 3600)},
    {0}};

static const tk_config_field kafka_fields[] = {
    {"brokers", TK_CFG_STRING, 0, "\"embedded\"", NULL,
     "bootstrap servers, or \"embedded\" for the in-process Kafka-protocol cluster", NULL,
     TK_CFG_NO_RANGE},
    {"partitions", TK_CFG_INT, 0, "6", NULL,
     "partitions of each topic the embedded cluster creates", NULL, TK_CFG_RANGE(1, 1000)},
    {"topics", TK_CFG_STRING_LIST, 0, "[\"task-events\",\"user-events\",\"chat-events\"]", NULL,
     "topics the embedded cluster creates (with their .dlq topics)", NULL, TK_CFG_NO_RANGE},
    {"librdkafka", TK_CFG_JSON, 0, "{}", NULL, "librdkafka properties for every client", NULL,
     TK_CFG_NO_RANGE},
    {"producer", TK_CFG_JSON, 0, "{}", NULL, "librdkafka properties for the producer", NULL,
     TK_CFG_NO_RANGE},
    {"consumer", TK_CFG_JSON, 0, "{}", NULL, "librdkafka properties for consumers", NULL,
     TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field outbox_fields[] = {
    {"relay", TK_CFG_BOOL, 0, "true", NULL, "publish the outbox from this process", NULL,
     TK_CFG_NO_RANGE},
    {"batch", TK_CFG_INT, 0, "500", NULL, "events per relay round", NULL, TK_CFG_RANGE(1, 100000)},
    {"poll_ms", TK_CFG_INT, 0, "1000", NULL, "look for events at least this often", NULL,
     TK_CFG_RANGE(1, 3600000)},
    {"retention_s", TK_CFG_INT, 0, "60", NULL, "keep published events this long", NULL,
     TK_CFG_RANGE(0, 86400 * 30)},
    {0}};

static const tk_config_field retry_fields[] = {
    {"attempts", TK_CFG_INT, 0, "3", NULL, "handler calls before the DLQ", NULL, TK_CFG_NO_RANGE},
    {"delay_ms", TK_CFG_INT, 0, "1000", NULL, "wait between calls", NULL, TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field consume_fields[] = {
    {"topics", TK_CFG_STRING_LIST, 1, NULL, NULL, "topics to consume", NULL, TK_CFG_NO_RANGE},
    {"group", TK_CFG_STRING, 0, NULL, NULL, "consumer group (default taskora-<instance>)", NULL,
     TK_CFG_NO_RANGE},
    {"workers", TK_CFG_INT, 0, "4", NULL, "handler threads (partitions run in parallel)", NULL,
     TK_CFG_NO_RANGE},
    {"retry", TK_CFG_OBJECT, 0, NULL, NULL, "retry policy for RETRY answers", retry_fields,
     TK_CFG_NO_RANGE},
    {"dlq", TK_CFG_STRING, 0, NULL, NULL, "dead-letter topic (default <topic>.dlq)", NULL,
     TK_CFG_NO_RANGE},
    {"queue_max", TK_CFG_INT, 0, "1000", NULL, "queued messages per partition before pausing it",
     NULL, TK_CFG_NO_RANGE},
    {"broadcast", TK_CFG_BOOL, 0, "false", NULL,
     "every process sees every event: every partition assigned, from the end, no group", NULL,
     TK_CFG_NO_RANGE},
    {"ready", TK_CFG_BOOL, 0, NULL, NULL,
     "whether /ready waits for this consumer: its group (broadcast: until it has read up to the "
     "end it had at start-up); default yes",
     NULL,
     TK_CFG_NO_RANGE},
    {"dapr_route", TK_CFG_STRING, 0, NULL, NULL,
     "where Dapr delivers these topics (listed by GET /dapr/subscribe)", NULL, TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field http_fields[] = {
    {"enabled", TK_CFG_BOOL, 0, "true", NULL, "serve HTTP (health, metrics, plugin routes)", NULL,
     TK_CFG_NO_RANGE},
    {"listen", TK_CFG_STRING, 0, "\"0.0.0.0:8000\"", NULL,
     "HOST:PORT, [IPv6]:PORT; port 0 picks one", NULL, TK_CFG_NO_RANGE},
    {"body_limit", TK_CFG_INT, 0, "1048576", NULL, "largest request body in bytes (else 413)", NULL,
     TK_CFG_RANGE(0, 1LL << 31)},
    {"cors_origins", TK_CFG_STRING_LIST, 0, "[]", NULL, "allowed CORS origins, or \"*\"", NULL,
     TK_CFG_NO_RANGE},
    {"max_connections", TK_CFG_INT, 0, "512", NULL, "concurrent connections", NULL,
     TK_CFG_RANGE(1, 100000)},
    {"timeout_s", TK_CFG_INT, 0, "60", NULL, "idle connection timeout", NULL,
     TK_CFG_RANGE(1, 86400)},
    {"sse_keepalive_s", TK_CFG_INT, 0, "30", NULL,
     "a \": keepalive\" line on event streams idle this long", NULL, TK_CFG_RANGE(1, 3600)},
    {"admin_listen", TK_CFG_STRING, 0, "\"\"", NULL,
     "HOST:PORT serving /metrics (then not on listen), /health and /ready", NULL, TK_CFG_NO_RANGE},
    {"read_timeout_s", TK_CFG_INT, 0, "10", NULL,
     "a request's headers and body must arrive within this time of its first line", NULL,
     TK_CFG_RANGE(1, 3600)},
    {"max_connections_per_client", TK_CFG_INT, 0, "64", NULL,
     "open connections from one address (trusted proxies exempt); 0 no limit", NULL,
     TK_CFG_RANGE(0, 100000)},
    {"max_streams_per_client", TK_CFG_INT, 0, "16", NULL,
     "open event streams from one client address; 0 no limit", NULL, TK_CFG_RANGE(0, 100000)},
    {"workers", TK_CFG_INT, 0, "16", NULL, "threads running request handlers", NULL,
     TK_CFG_RANGE(1, 1024)},
    {"queue", TK_CFG_INT, 0, "1024", NULL, "requests waiting for a worker before 503", NULL,
     TK_CFG_RANGE(1, 1000000)},
    {"io_threads", TK_CFG_INT, 0, "2", NULL, "threads reading and writing connections", NULL,
     TK_CFG_RANGE(1, 64)},
    {"trusted_proxies", TK_CFG_STRING_LIST, 0, "[]", NULL,
     "proxies (ADDR or ADDR/BITS) whose X-Forwarded-For names the client", NULL, TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field dapr_fields[] = {
    {"enabled", TK_CFG_BOOL, 0, "false", NULL,
     "serve GET /dapr/subscribe and (with app_token) POST /dapr/events/{instance}", NULL,
     TK_CFG_NO_RANGE},
    {"pubsub", TK_CFG_STRING, 0, "\"pubsub\"", NULL, "the Dapr pub/sub component's name", NULL,
     TK_CFG_NO_RANGE},
    {"app_token", TK_CFG_STRING, 0, "\"\"", NULL,
     "the sidecar's app API token (APP_API_TOKEN): deliveries must carry it in dapr-api-token;"
     " empty: deliveries are not served",
     NULL, TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field top_fields[] = {
    {"app_id", TK_CFG_STRING, 0, "\"taskora-backend\"", NULL, "service name and event source", NULL,
     TK_CFG_NO_RANGE},
    {"log", TK_CFG_OBJECT, 0, NULL, NULL, "logging", log_fields, TK_CFG_NO_RANGE},
    {"plugin_dir", TK_CFG_STRING, 0, NULL, NULL, "colon-separated folders searched for plugins",
     NULL, TK_CFG_NO_RANGE},
    {"postgres", TK_CFG_OBJECT, 0, NULL, NULL, "the shared PostgreSQL database", postgres_fields,
     TK_CFG_NO_RANGE},
    {"kafka", TK_CFG_OBJECT, 0, NULL, NULL, "Kafka", kafka_fields, TK_CFG_NO_RANGE},
    {"http", TK_CFG_OBJECT, 0, NULL, NULL, "the HTTP server", http_fields, TK_CFG_NO_RANGE},
    {"outbox", TK_CFG_OBJECT, 0, NULL, NULL, "the outbox relay", outbox_fields, TK_CFG_NO_RANGE},
    {"shutdown_timeout_ms", TK_CFG_INT, 0, "10000", NULL,
     "longest graceful shutdown before exiting anyway (after the drain delay)", NULL,
     TK_CFG_RANGE(1, 3600000)},
    {"drain_delay_ms", TK_CFG_INT, 0, "5000", NULL,
     "on SIGTERM, go on serving this long with /ready 503 before accepting no more "
     "connections (load balancers stop routing here meanwhile); SIGINT and 0 skip it",
     NULL, TK_CFG_RANGE(0, 3600000)},
    {"dapr", TK_CFG_OBJECT, 0, NULL, NULL, "interop with a Dapr sidecar", dapr_fields,
     TK_CFG_NO_RANGE},
    {"resiliency", TK_CFG_OBJECT, 0, NULL, NULL,
     "retries and circuit breakers of remote calls (AI providers, webhooks)", tk_resilience_fields,
     TK_CFG_NO_RANGE},
    {"plugins", TK_CFG_JSON, 0, "[]", NULL, "plugin instances, started in this order", NULL,
     TK_CFG_NO_RANGE},
    {0}};

static const tk_config_field plugin_entry_fields[] = {
    {"name", TK_CFG_STRING, 1, NULL, NULL, "instance name, unique in the file", NULL,
     TK_CFG_NO_RANGE},
    {"load", TK_CFG_STRING, 1, NULL, NULL, "plugin type (searched in plugin_dir) or a path", NULL,
     TK_CFG_NO_RANGE},
    {"config", TK_CFG_JSON, 0, NULL, NULL, "the instance's config, checked by the plugin's schema",
     NULL, TK_CFG_NO_RANGE},
    {"consume", TK_CFG_JSON, 0, NULL, NULL, "a consumer group for the instance's consume handler",
     NULL, TK_CFG_NO_RANGE},
    {0}};

static int fail(char *err, size_t errlen, const char *file, const char *msg)
{
    snprintf(err, errlen, "%s: %s", file, msg);
    return TK_EINVAL;
}

static int load_plugins(tk_settings *s, char *err, size_t errlen)
{
    json_t *arr = json_object_get(s->root, "plugins");
    if (!json_is_array(arr))
        return fail(err, errlen, s->path, "plugins: expected an array of plugin instances");
    s->nplugins = json_array_size(arr);
    s->plugins = calloc(s->nplugins ? s->nplugins : 1, sizeof(*s->plugins));
    if (!s->plugins) {
        fail(err, errlen, s->path, "out of memory");
        return TK_ENOMEM;
    }
    for (size_t i = 0; i < s->nplugins; i++) {
        tk_plugin_conf *pc = &s->plugins[i];
        snprintf(pc->jpath, sizeof(pc->jpath), "plugins[%zu]", i);
        json_t *entry = json_incref(json_array_get(arr, i));
        char msg[900];
        if (!json_is_object(entry)) {
            snprintf(msg, sizeof(msg), "%s: expected an object, got %s", pc->jpath,
                     tk_config_json_kind(entry));
            json_decref(entry);
            return fail(err, errlen, s->path, msg);
        }
        int rc = tk_config_validate(&entry, plugin_entry_fields, pc->jpath, msg, sizeof(msg));
        json_decref(entry); /* the array keeps it */
        if (rc)
            return fail(err, errlen, s->path, msg);
        pc->name = json_string_value(json_object_get(entry, "name"));
        pc->load = json_string_value(json_object_get(entry, "load"));
        pc->config = json_object_get(entry, "config");
        json_t *consume = json_object_get(entry, "consume");
        if (consume && !json_is_null(consume)) {
            char cpath[64];
            snprintf(cpath, sizeof(cpath), "%s.consume", pc->jpath);
            json_incref(consume);
            rc = tk_config_validate(&consume, consume_fields, cpath, msg, sizeof(msg));
            if (rc == 0 && json_object_set(entry, "consume", consume)) {
                snprintf(msg, sizeof(msg), "%s: out of memory", cpath);
                rc = TK_ENOMEM;
            }
            json_decref(consume);
            if (rc)
                return fail(err, errlen, s->path, msg);
            pc->consume = json_object_get(entry, "consume");
            if (json_array_size(json_object_get(pc->consume, "topics")) == 0) {
                snprintf(msg, sizeof(msg), "%s.topics: name at least one topic", cpath);
                return fail(err, errlen, s->path, msg);
            }
        }
        if (!*pc->name || strchr(pc->name, '"') || strchr(pc->name, ' ')) {
            snprintf(msg, sizeof(msg), "%s.name: \"%s\" is not a usable instance name", pc->jpath,
                     pc->name);
            return fail(err, errlen, s->path, msg);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->plugins[j].name, pc->name) == 0) {
                snprintf(msg, sizeof(msg), "%s.name: duplicate instance name \"%s\" (also %s)",
                         pc->jpath, pc->name, s->plugins[j].jpath);
                return fail(err, errlen, s->path, msg);
            }
        }
    }
    return 0;
}

/* The validated values, as the rest of taskorad reads them. */
static void read_values(tk_settings *s)
{
    json_t *r = s->root;
    s->app_id = json_string_value(tk_config_get(r, "app_id"));
    tk_log_level_parse(json_string_value(tk_config_get(r, "log.level")), &s->log_level);
    tk_log_format_parse(json_string_value(tk_config_get(r, "log.format")), &s->log_format);
    s->plugin_dir = json_string_value(tk_config_get(r, "plugin_dir"));
    s->pg_url = json_string_value(tk_config_get(r, "postgres.url"));
    s->kafka_brokers = json_string_value(tk_config_get(r, "kafka.brokers"));
    s->pg_pool_size = (int)json_integer_value(tk_config_get(r, "postgres.pool_size"));
    s->pg_acquire_timeout_ms =
        (int)json_integer_value(tk_config_get(r, "postgres.acquire_timeout_ms"));
    s->pg_connect_timeout_s =
        (int)json_integer_value(tk_config_get(r, "postgres.connect_timeout_s"));
    s->kafka_partitions = (int)json_integer_value(tk_config_get(r, "kafka.partitions"));
    s->kafka_topics = tk_config_get(r, "kafka.topics");
    s->kafka_props = tk_config_get(r, "kafka.librdkafka");
    s->kafka_producer_props = tk_config_get(r, "kafka.producer");
    s->kafka_consumer_props = tk_config_get(r, "kafka.consumer");
    s->outbox_relay = json_is_true(tk_config_get(r, "outbox.relay"));
    s->outbox_batch = (int)json_integer_value(tk_config_get(r, "outbox.batch"));
    s->outbox_poll_ms = (int)json_integer_value(tk_config_get(r, "outbox.poll_ms"));
    s->outbox_retention_s = (int)json_integer_value(tk_config_get(r, "outbox.retention_s"));
    s->http_enabled = json_is_true(tk_config_get(r, "http.enabled"));
    s->http_listen = json_string_value(tk_config_get(r, "http.listen"));
    s->http_body_limit = json_integer_value(tk_config_get(r, "http.body_limit"));
    s->http_cors_origins = tk_config_get(r, "http.cors_origins");
    s->http_max_connections = (int)json_integer_value(tk_config_get(r, "http.max_connections"));
    s->http_timeout_s = (int)json_integer_value(tk_config_get(r, "http.timeout_s"));
    s->shutdown_timeout_ms = (int)json_integer_value(tk_config_get(r, "shutdown_timeout_ms"));
    s->drain_delay_ms = (int)json_integer_value(tk_config_get(r, "drain_delay_ms"));
    s->http_sse_keepalive_s = (int)json_integer_value(tk_config_get(r, "http.sse_keepalive_s"));
    s->http_trusted_proxies = tk_config_get(r, "http.trusted_proxies");
    s->http_admin_listen = json_string_value(tk_config_get(r, "http.admin_listen"));
    s->http_read_timeout_s = (int)json_integer_value(tk_config_get(r, "http.read_timeout_s"));
    s->http_max_per_client =
        (int)json_integer_value(tk_config_get(r, "http.max_connections_per_client"));
    s->http_max_streams_per_client =
        (int)json_integer_value(tk_config_get(r, "http.max_streams_per_client"));
    s->http_workers = (int)json_integer_value(tk_config_get(r, "http.workers"));
    s->http_queue = (int)json_integer_value(tk_config_get(r, "http.queue"));
    s->http_io_threads = (int)json_integer_value(tk_config_get(r, "http.io_threads"));
    s->resiliency = tk_config_get(r, "resiliency");
    s->dapr_enabled = json_is_true(tk_config_get(r, "dapr.enabled"));
    s->dapr_pubsub = json_string_value(tk_config_get(r, "dapr.pubsub"));
    s->dapr_app_token = json_string_value(tk_config_get(r, "dapr.app_token"));
}

/* What the schema cannot say: property objects, proxy addresses, per-target overrides. */
static int check_values(const tk_settings *s, char *msg, size_t len)
{
    const char *props[] = {"kafka.librdkafka", "kafka.producer", "kafka.consumer"};
    json_t *const values[] = {s->kafka_props, s->kafka_producer_props, s->kafka_consumer_props};
    for (int i = 0; i < 3; i++) {
        if (!json_is_object(values[i])) {
            snprintf(msg, len, "%s: expected an object of librdkafka properties", props[i]);
            return TK_EINVAL;
        }
    }
    size_t i;
    json_t *it;
    tk_cidr net;
    json_array_foreach(s->http_trusted_proxies, i, it)
    {
        if (tk_cidr_parse(json_string_value(it), &net)) {
            snprintf(msg, len, "http.trusted_proxies[%zu]: \"%s\" is not an address or ADDR/BITS",
                     i, json_string_value(it));
            return TK_EINVAL;
        }
    }
    /* per-target overrides, checked here so check-config sees them */
    tk_resilience *probe = tk_resilience_new(s->resiliency, NULL, msg, len);
    if (!probe)
        return TK_EINVAL;
    tk_resilience_free(probe);
    return 0;
}

tk_settings *tk_settings_load(const char *path, char *err, size_t errlen)
{
    tk_settings *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->path = strdup(path);
    char *tmp = strdup(path);
    s->dir = tmp ? strdup(dirname(tmp)) : NULL;
    free(tmp);
    if (!s->path || !s->dir) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->root = tk_config_parse_file(path, err, errlen);
    if (!s->root)
        goto fail;
    char msg[900];
    if (tk_config_subst_env(s->root, msg, sizeof(msg)) ||
        tk_config_validate(&s->root, top_fields, "", msg, sizeof(msg))) {
        fail(err, errlen, path, msg);
        goto fail;
    }
    if (load_plugins(s, err, errlen))
        goto fail;
    read_values(s);
    if (check_values(s, msg, sizeof(msg))) {
        fail(err, errlen, path, msg);
        goto fail;
    }
    return s;
fail:
    tk_settings_free(s);
    return NULL;
}

void tk_settings_free(tk_settings *s)
{
    if (!s)
        return;
    free(s->plugins);
    json_decref(s->root);
    free(s->path);
    free(s->dir);
    free(s);
}

/*
 * hello_consumer: a complete Taskora consumer plugin, small enough to read in one sitting.
 *
 * It counts the events it consumes by type, serves the counts at GET /hello and on /metrics,
 * and (with "persist": true) keeps them in its own table, hello_event_counts, created by its
 * own migration. Each event is counted exactly once even when Kafka delivers it twice: the
 * host's pg_once records (consumer group, event id) in the same transaction as the count.
 *
 * The parts, in the order the host uses them:
 *   taskora_plugin_entry() -> descriptor: ABI version, name, config schema, migrations, hooks
 *   init()     one instance's state; routes and metrics are registered here
 *   consume()  each event, on a worker thread (one partition's events in order)
 *   route_counts()  an HTTP handler, on an HTTP thread
 *   destroy()  at shutdown, after events and requests have stopped
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

#define MAX_TYPES 32

/* Everything an instance owns. One per configured instance. */
typedef struct hello {
    const tk_host *host;
    tk_instance *inst;
    int persist;       /* counts in hello_event_counts too */
    tk_metric *events; /* taskora_hello_events_total{plugin,type} */
    pthread_mutex_t lock;
    size_t ntypes;
    struct {
        char type[64];
        long count;
    } seen[MAX_TYPES];
} hello;

/* The event's type: decoded by the host from the CloudEvent (ABI 1.2), else the ce_type header. */
static void event_type(const tk_event *ev, char *out, size_t len)
{
    if (ev->struct_size >= offsetof(tk_event, type) + sizeof(ev->type) && ev->type) {
        snprintf(out, len, "%s", ev->type);
        return;
    }
    snprintf(out, len, "unknown");
    for (size_t i = 0; i < ev->header_count; i++) {
        const tk_event_header *h = &ev->headers[i];
        if (strcmp(h->name, "ce_type") == 0 && h->value) {
            size_t n = h->value_len < len - 1 ? h->value_len : len - 1;
            memcpy(out, h->value, n);
            out[n] = '\0';
            return;
        }
    }
}

/* In memory: the counts GET /hello shows when nothing is persisted. */
static void count_in_memory(hello *h, const char *type)
{
    pthread_mutex_lock(&h->lock);
    size_t i = 0;
    while (i < h->ntypes && strcmp(h->seen[i].type, type) != 0)
        i++;
    if (i == h->ntypes && h->ntypes < MAX_TYPES) {
        snprintf(h->seen[i].type, sizeof(h->seen[i].type), "%s", type);
        h->ntypes++;
    }
    if (i < h->ntypes)
        h->seen[i].count++;
    pthread_mutex_unlock(&h->lock);
}

/* Runs inside pg_once's transaction: one more of this type. Return < 0 to roll back. */
static int add_one(void *conn, void *ud)
{
    const char *params[] = {ud};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO hello_event_counts (event_type, count) VALUES ($1, 1)"
                               " ON CONFLICT (event_type)"
                               " DO UPDATE SET count = hello_event_counts.count + 1",
                               1, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? TK_OK : TK_ERR;
}

/*
 * Called on a worker thread for each event; events of one partition arrive in order.
 * OK: done (the host stores the offset). RETRY: try again later (the retry policy of the
 * consume section, then the dead-letter topic). FAIL: straight to the dead-letter topic.
 */
static tk_consume_result consume(void *state, const tk_event *ev)
{
    hello *h = state;
    char type[64];
    event_type(ev, type, sizeof(type));
    if (h->persist) {
        /* exactly once in the table: pg_once skips an event id this group recorded before */
        int duplicate = 0;
        int rc = h->host->pg_once(h->inst, ev->group, ev->id, add_one, type, &duplicate);
        if (rc < 0) {
            h->host->log(h->inst, TK_LOG_WARN, "counting %s failed (%d); will retry", type, rc);
            return TK_CONSUME_RETRY; /* e.g. the database is restarting */
        }
        if (duplicate)
            return TK_CONSUME_OK; /* seen before: nothing to do */
    }
    count_in_memory(h, type);
    const char *labels[] = {type};
    h->host->metric_add(h->events, labels, 1);
    return TK_CONSUME_OK;
}

/* The persisted counts as a JSON object's members ("a":1,"b":2); 0 or -1. */
static int counts_from_table(hello *h, char *out, size_t len, size_t *n)
{
    tk_pg *pg = NULL;
    if (h->host->pg_acquire(h->inst, -1, &pg) != TK_OK)
        return -1;
    PGresult *r = PQexec(h->host->pg_conn(pg), "SELECT event_type, count FROM hello_event_counts"
                                               " ORDER BY event_type");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < len; i++)
        *n += (size_t)snprintf(out + *n, len - *n, "%s\"%s\":%s", i ? "," : "", PQgetvalue(r, i, 0),
                               PQgetvalue(r, i, 1));
    PQclear(r);
    h->host->pg_release(pg);
    return rc;
}

/* GET {route}: {"greeting": ..., "instance": ..., "events": {"task.created": 2, ...}} */
static int route_counts(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    hello *h = ud;
    (void)req;
    char body[4096];
    size_t n = (size_t)snprintf(
        body, sizeof(body), "{\"greeting\":\"%s\",\"instance\":\"%s\",\"events\":{",
        h->host->config_string(h->inst, "greeting"), h->host->instance_name(h->inst));
    if (h->persist) {
        if (counts_from_table(h, body, sizeof(body), &n) != 0)
            return h->host->http_error(resp, 503, "Database unavailable");
    } else {
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->ntypes && n < sizeof(body); i++)
            n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"%s\":%ld", i ? "," : "",
                                  h->seen[i].type, h->seen[i].count);
        pthread_mutex_unlock(&h->lock);
    }
    if (n >= sizeof(body) - 2)
        return TK_ENOMEM; /* the host answers 500 */
    n += (size_t)snprintf(body + n, sizeof(body) - n, "}}");
    return h->host->http_set_body(resp, "application/json", body, n);
}

/* The route's description for /openapi.json and /docs (OpenAPI 3.1): the host checks that it
 * describes a route this instance registered. The path is the configured one, as a JSON
 * string; one the fragment cannot hold is left undescribed (the host lists it as such). */
static void describe(const tk_host *host, tk_instance *inst, const char *route)
{
    char text[2048];
    if (strpbrk(route, "\"\\") || strlen(route) > 256)
        return;
    snprintf(text, sizeof(text),
             "{\"paths\": {\"%s\": {\"get\": {\"summary\": \"Events seen, by type\","
             " \"description\": \"How many events of each type this instance consumed.\","
             " \"security\": [], \"responses\": {\"200\": {\"description\": \"The counts\","
             " \"content\": {\"application/json\": {\"schema\": {\"type\": \"object\","
             " \"required\": [\"greeting\", \"instance\", \"events\"], \"properties\":"
             " {\"greeting\": {\"type\": \"string\"}, \"instance\": {\"type\": \"string\"},"
             " \"events\": {\"type\": \"object\", \"additionalProperties\":"
             " {\"type\": \"integer\"}}}}}}}}}}}}",
             route);
    host->http_openapi(inst, text); /* a refusal is logged by the host; the route still works */
}

/* Main thread, once per instance: allocate state, register the route and the metric. */
static int init(const tk_host *host, tk_instance *inst, void **state)
{
    hello *h = calloc(1, sizeof(*h));
    if (!h)
        return TK_ENOMEM;
    h->host = host;
    h->inst = inst;
    h->persist = host->config_bool(inst, "persist");
    pthread_mutex_init(&h->lock, NULL);
    static const char *const labels[] = {"type", NULL};
    h->events = host->metric_counter(inst, "taskora_hello_events_total",
                                     "Events seen by the hello consumer, by type", labels);
    int rc = host->http_route(inst, "GET", host->config_string(inst, "route"), route_counts, h);
    if (rc < 0) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return rc;
    }
    describe(host, inst, host->config_string(inst, "route"));
    host->log(inst, TK_LOG_INFO, "ready; counts at GET %s%s", host->config_string(inst, "route"),
              h->persist ? " (kept in hello_event_counts)" : "");
    *state = h;
    return TK_OK;
}

/* Main thread, at shutdown, after the host stopped delivering events and requests. */
static void destroy(void *state)
{
    hello *h = state;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* The keys an instance's "config" may hold; the host checks them (and fills defaults) before
 * init, so a typo in the config file is an error naming the key, not a silent default. */
static const tk_config_field config[] = {
    {"greeting", TK_CFG_STRING, 0, "\"hello\"", NULL, "returned with the counts", NULL,
     TK_CFG_NO_RANGE},
    {"route", TK_CFG_STRING, 0, "\"/hello\"", NULL, "path of the counts route", NULL,
     TK_CFG_NO_RANGE},
    {"persist", TK_CFG_BOOL, 0, "false", NULL,
     "count in the hello_event_counts table, each event exactly once (needs postgres)", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

/* Tables this plugin owns; `taskorad migrate` applies each step once, in order. Never edit a
 * shipped step: append a new one. */
static const char *const migrations[] = {
    "CREATE TABLE IF NOT EXISTS hello_event_counts ("
    " event_type text PRIMARY KEY,"
    " count bigint NOT NULL DEFAULT 0)",
    NULL,
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "hello_consumer",
    .version = "0.2.0",
    .description = "counts consumed events by type (in its own table) and serves the counts",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = migrations,
    .init = init,
    .destroy = destroy,
    .consume = consume,
};

/* The one exported symbol. */
TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

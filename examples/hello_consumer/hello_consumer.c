/* hello_consumer: the smallest useful Taskora plugin: counts events by type, serves the counts. */
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
    tk_metric *events; /* taskora_hello_events_total{type} */
    pthread_mutex_t lock;
    size_t ntypes;
    struct {
        char type[64];
        long count;
    } seen[MAX_TYPES];
} hello;

/* The event type: the CloudEvents `ce_type` header, as Taskora's producer sets it. */
static void event_type(const tk_event *ev, char *out, size_t len)
{
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

/* Called on a worker thread for each event; events of one partition arrive in order. */
static tk_consume_result consume(void *state, const tk_event *ev)
{
    hello *h = state;
    char type[64];
    event_type(ev, type, sizeof(type));
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
    const char *labels[] = {type};
    h->host->metric_add(h->events, labels, 1);
    return TK_CONSUME_OK;
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
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->ntypes && n < sizeof(body); i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"%s\":%ld", i ? "," : "",
                              h->seen[i].type, h->seen[i].count);
    pthread_mutex_unlock(&h->lock);
    if (n >= sizeof(body) - 2)
        return TK_ENOMEM;
    n += (size_t)snprintf(body + n, sizeof(body) - n, "}}");
    return h->host->http_set_body(resp, "application/json", body, n);
}

/* Main thread, once per instance: allocate state, register the route and the metric. */
static int init(const tk_host *host, tk_instance *inst, void **state)
{
    hello *h = calloc(1, sizeof(*h));
    if (!h)
        return TK_ENOMEM;
    h->host = host;
    h->inst = inst;
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
    host->log(inst, TK_LOG_INFO, "ready; counts at GET %s", host->config_string(inst, "route"));
    *state = h;
    return TK_OK;
}

/* Main thread, at shutdown, after the host stopped delivering events. */
static void destroy(void *state)
{
    hello *h = state;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* The keys an instance's "config" may hold; the host checks them before init. */
static const tk_config_field config[] = {
    {"greeting", TK_CFG_STRING, 0, "\"hello\"", NULL, "returned with the counts", NULL},
    {"route", TK_CFG_STRING, 0, "\"/hello\"", NULL, "path of the counts route", NULL},
    {0},
};

/* Tables this plugin owns; `taskorad migrate` applies each step once. */
static const char *const migrations[] = {
    "CREATE TABLE IF NOT EXISTS hello_event_counts ("
    " event_type text PRIMARY KEY,"
    " count bigint NOT NULL DEFAULT 0)",
    NULL,
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "hello_consumer",
    .version = "0.1.0",
    .description = "counts consumed events by type and serves the counts",
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

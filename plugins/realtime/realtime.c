/*
 * realtime: pushes each user's events to that user's browsers as
 * server-sent events (GET /api/events/stream).
 *
 * Every API process must see every event, so this plugin's consume section
 * uses a broadcast group (one group per process, from the latest offsets):
 * a client connected to process A sees a task created through process B.
 * Events also arrive pushed by a Dapr sidecar (POST /api/events/task-event
 * and /api/events/reminder-event), for deployments that keep Dapr.
 *
 *   "plugins": [..., {"name": "realtime", "load": "realtime",
 *     "consume": {"topics": ["task-events"], "broadcast": true,
 *                 "dapr_route": "/api/events/task-event"}}]
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

typedef struct stream stream;
typedef struct realtime {
    const tk_host *host;
    tk_instance *inst;
    const char *dapr_token;
    pthread_mutex_t lock; /* guards the list; held while sending, so no stream is freed under it */
    stream *streams;
    long next_id;
    tk_metric *m_open, *m_pushed;
} realtime;

struct stream {
    realtime *rt;
    tk_sse *sse;
    char user[24];
    char id[32];
    stream *next;
};

#define JSON_TYPE "application/json; charset=utf-8"

/* Sends one event to every stream of the user; returns how many got it. */
static int push(realtime *rt, const char *user, const char *type, const char *data_json)
{
    int n = 0;
    pthread_mutex_lock(&rt->lock);
    for (stream *s = rt->streams; s; s = s->next)
        if (strcmp(s->user, user) == 0 && rt->host->sse_send(s->sse, type, data_json) == TK_OK)
            n++;
    pthread_mutex_unlock(&rt->lock);
    if (n)
        rt->host->metric_add(rt->m_pushed, NULL, n);
    return n;
}

/* ---- consumed events ----------------------------------------------------------------- */

static tk_consume_result consume(void *state, const tk_event *ev)
{
    realtime *rt = state;
    /* an event about no user has no stream to go to */
    if (ev->user_id && *ev->user_id && ev->type && ev->data)
        push(rt, ev->user_id, ev->type, ev->data);
    return TK_CONSUME_OK;
}

/* ---- the stream ------------------------------------------------------------------------- */

static void on_close(void *ud)
{
    stream *s = ud;
    realtime *rt = s->rt;
    pthread_mutex_lock(&rt->lock);
    for (stream **pp = &rt->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&rt->lock);
    rt->host->metric_add(rt->m_open, NULL, -1);
    rt->host->sse_release(s->sse);
    free(s);
}

static int route_stream(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    realtime *rt = ud;
    char user[24];
    /* EventSource cannot send headers: the token may come as ?token= */
    if (!rt->host->http_authenticate(req, resp, user, sizeof(user), 1))
        return TK_OK;
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        return TK_ENOMEM;
    s->rt = rt;
    snprintf(s->user, sizeof(s->user), "%s", user);
    s->sse = rt->host->sse_open(req, resp, on_close, s);
    if (!s->sse) {
        free(s);
        return TK_ERR;
    }
    pthread_mutex_lock(&rt->lock);
    snprintf(s->id, sizeof(s->id), "%s-%ld", rt->host->http_request_id(req), ++rt->next_id);
    s->next = rt->streams;
    rt->streams = s;
    pthread_mutex_unlock(&rt->lock);
    rt->host->metric_add(rt->m_open, NULL, 1);
    json_t *hello = json_pack("{s:s,s:s}", "connection_id", s->id, "user_id", s->user);
    char *text = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    if (text)
        rt->host->sse_send(s->sse, "connected", text);
    free(text);
    return TK_OK;
}

/* ---- Dapr-delivered events ------------------------------------------------------------------ */

/* The app's event inside a delivery: a CloudEvent's data (maybe wrapped twice), or the body. */
static json_t *app_event(json_t *body)
{
    json_t *e = body;
    for (int i = 0; i < 2; i++) {
        json_t *data = json_object_get(e, "data");
        if (json_object_get(e, "specversion") && json_is_object(data))
            e = data;
    }
    return e;
}

static int answer(realtime *rt, tk_http_response *resp, int status, const char *dapr_status)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"status\":\"%s\"}", dapr_status);
    rt->host->http_status(resp, status);
    return rt->host->http_set_body(resp, JSON_TYPE, body, strlen(body));
}

static int route_delivery(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    realtime *rt = ud;
    if (rt->dapr_token && *rt->dapr_token) {
        const char *got = rt->host->http_header(req, "dapr-api-token");
        size_t n = strlen(rt->dapr_token);
        unsigned char diff = got && strlen(got) == n ? 0 : 1;
        for (size_t i = 0; !diff && i < n; i++)
            diff |= (unsigned char)(got[i] ^ rt->dapr_token[i]);
        if (diff)
            return rt->host->http_error(resp, 401, "Invalid dapr-api-token");
    }
    size_t len = 0;
    const char *body = rt->host->http_body(req, &len);
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *e = doc ? app_event(doc) : NULL;
    const char *user = json_string_value(json_object_get(e, "user_id"));
    char uid[24] = "";
    if (!user && json_is_integer(json_object_get(e, "user_id")))
        snprintf(uid, sizeof(uid), "%lld",
                 (long long)json_integer_value(json_object_get(e, "user_id")));
    else if (user)
        snprintf(uid, sizeof(uid), "%s", user);
    const char *type = json_string_value(json_object_get(e, "event_type"));
    if (!type)
        type = json_string_value(json_object_get(doc, "type"));
    int rc;
    if (!uid[0] || !type) {
        /* nothing to push: Dapr must not redeliver it */
        rc = answer(rt, resp, 200, "DROP");
    } else {
        char *text = json_dumps(e, JSON_COMPACT);
        if (text)
            push(rt, uid, type, text);
        free(text);
        rc = answer(rt, resp, 200, "SUCCESS");
    }
    json_decref(doc);
    return rc;
}

/* ---- lifecycle
 * ------------------------------------------------------------------------------------ */

static const tk_config_field config[] = {
    {"routes", TK_CFG_BOOL, 0, "true", NULL, "serve the stream and the Dapr delivery routes", NULL},
    {"dapr_token", TK_CFG_STRING, 0, "\"\"", NULL,
     "when set, Dapr deliveries must carry it in dapr-api-token", NULL},
    {0},
};

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    if (host->abi_minor < 4) {
        host->log(inst, TK_LOG_ERROR, "needs a taskorad with plugin ABI 1.4 (event streams)");
        return TK_EINVAL;
    }
    realtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return TK_ENOMEM;
    rt->host = host;
    rt->inst = inst;
    rt->dapr_token = host->config_string(inst, "dapr_token");
    pthread_mutex_init(&rt->lock, NULL);
    rt->m_open = host->metric_gauge(inst, "taskora_realtime_streams", "Open event streams", NULL);
    rt->m_pushed = host->metric_counter(inst, "taskora_realtime_pushed_total",
                                        "Events written to event streams", NULL);
    int rc = TK_OK;
    if (host->config_bool(inst, "routes") &&
        ((rc = host->http_route(inst, "GET", "/api/events/stream", route_stream, rt)) < 0 ||
         (rc = host->http_route(inst, "POST", "/api/events/task-event", route_delivery, rt)) < 0 ||
         (rc = host->http_route(inst, "POST", "/api/events/reminder-event", route_delivery, rt)) <
             0)) {
        pthread_mutex_destroy(&rt->lock);
        free(rt);
        return rc;
    }
    *state = rt;
    return TK_OK;
}

static void destroy(void *state)
{
    realtime *rt = state;
    /* the HTTP server ends every stream (and on_close runs) before plugins are destroyed */
    if (rt->streams)
        rt->host->log(rt->inst, TK_LOG_WARN, "event streams still open at exit");
    else
        pthread_mutex_destroy(&rt->lock), free(rt);
}

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "realtime",
    .version = "0.1.0",
    .description = "Pushes each user's events to their browsers (server-sent events)",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .init = init,
    .destroy = destroy,
    .consume = consume,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

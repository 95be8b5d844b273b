/*
 * realtime: pushes each user's events to that user's browsers as
 * server-sent events (GET /api/events/stream).
 *
 * Every API process must see every event, so this plugin's consume section
 * uses a broadcast group (one group per process, from the latest offsets):
 * a client connected to process A sees a task created through process B.
 * Every pushed event has an SSE id ("<topic>:<partition>:<offset>:<time in ms>", the same on
 * every process), and the last minutes of events are kept in a window (window.c): a client that
 * reconnects with Last-Event-ID (every EventSource does) gets the events it missed, in order and
 * once, or, when the gap is older than the window, one `resync` event telling it to refetch. A
 * fresh process rebuilds the window by starting its consumer that far back (consume_rewind).
 *
 * Events also arrive pushed by a Dapr sidecar (POST /api/events/task-event
 * and /api/events/reminder-event), for deployments that keep Dapr. Those two
 * routes are served only with `dapr_token` set (the sidecar's app API token,
 * the same value as the core's dapr.app_token; shipped configs read both from
 * APP_API_TOKEN), and take only task events for a user, of bounded size.
 *
 *   "plugins": [..., {"name": "realtime", "load": "realtime",
 *     "consume": {"topics": ["task-events"], "broadcast": true,
 *                 "dapr_route": "/api/events/task-event"}}]
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

#include "../kit/kit.h"
#include "window.h"

/* A resume larger than this is a resync: it must fit in the stream's queue (256 KiB). */
#define MAX_REPLAY_BYTES (128 * 1024)

typedef struct stream stream;
typedef struct realtime {
    const tk_host *host;
    tk_instance *inst;
    const char *dapr_token;
    int64_t max_per_user; /* open streams one user may have */
    size_t max_event;     /* bytes of one pushed event (and of one delivery's body) */
    pthread_mutex_t lock; /* guards the list and the window; held while sending, so no stream is
                             freed under it */
    stream *streams;
    window win;
    long next_id, next_dapr;
    tk_metric *m_open, *m_pushed, *m_resumed, *m_resync;
} realtime;

struct stream {
    realtime *rt;
    tk_sse *sse; /* NULL while the stream is being opened: its slot is taken, nothing is sent */
    char user[24];
    char id[160]; /* the request id (up to 128) and a counter */
    win_pos cur;  /* the last event sent from the window: later ones at or before it are not sent */
    uint64_t from_seq; /* the window's last event when the stream's slot was taken */
    stream *next;
};

/* The events of task-events, the only ones Dapr deliveries may push (docs: EVENTS.md). */
static const char *const task_types[] = {"task.created",
                                         "task.updated",
                                         "task.completed",
                                         "task.deleted",
                                         "task.recurred",
                                         "task.reminder",
                                         NULL};

/* Sends an event to one stream unless the stream already had it. Under rt->lock. */
static int send_to(realtime *rt, stream *s, win_pos pos, const char *type, const char *data)
{
    if (pos.part >= 0 && s->cur.part == pos.part && pos.offset <= s->cur.offset)
        return 0; /* resumed past it, or replayed already */
    char id[320];
    win_id(&rt->win, pos, id, sizeof(id));
    if (rt->host->sse_send_id(s->sse, id, type, data) != TK_OK)
        return 0;
    if (pos.part >= 0)
        s->cur = pos;
    return 1;
}

/* Sends one event to every stream of the user; returns how many got it. Under rt->lock. */
static int push_locked(realtime *rt, const char *user, win_pos pos, const char *type,
                       const char *data)
{
    int n = 0;
    for (stream *s = rt->streams; s; s = s->next)
        if (s->sse && strcmp(s->user, user) == 0)
            n += send_to(rt, s, pos, type, data);
    if (n)
        rt->host->metric_add(rt->m_pushed, NULL, n);
    return n;
}

/* An event delivered by Dapr: no place in a partition, so an id of its own and no window. */
static int push_delivered(realtime *rt, const char *user, const char *type, const char *data)
{
    int n = 0;
    char id[48];
    pthread_mutex_lock(&rt->lock);
    snprintf(id, sizeof(id), "dapr:%ld", ++rt->next_dapr);
    for (stream *s = rt->streams; s; s = s->next)
        if (s->sse && strcmp(s->user, user) == 0 &&
            rt->host->sse_send_id(s->sse, id, type, data) == TK_OK)
            n++;
    pthread_mutex_unlock(&rt->lock);
    if (n)
        rt->host->metric_add(rt->m_pushed, NULL, n);
    return n;
}

/* ---- consumed events ----------------------------------------------------------------- */

/* The event's time in ms since the epoch (its `time`, else now). */
static int64_t event_ms(const tk_event *ev, int64_t now_ms)
{
    int64_t us;
    return ev->time && kit_time_parse(ev->time, 0, &us) == TK_OK ? us / 1000 : now_ms;
}

static tk_consume_result consume(void *state, const tk_event *ev)
{
    realtime *rt = state;
    /* an event about no user has no stream to go to (the window still notes it was read) */
    int for_user = ev->user_id && *ev->user_id && ev->type && ev->data;
    /* one event larger than a stream's queue would end every stream it is sent to */
    if (for_user && strlen(ev->data) > rt->max_event) {
        rt->host->log(rt->inst, TK_LOG_WARN,
                      "event %s (%s) not pushed: %zu bytes, more than max_event_bytes",
                      ev->id ? ev->id : "?", ev->type, strlen(ev->data));
        for_user = 0;
    }
    int64_t now = kit_time_now_us() / 1000;
    win_pos pos;
    pthread_mutex_lock(&rt->lock);
    win_add(&rt->win, ev->topic ? ev->topic : "", ev->partition, ev->offset, event_ms(ev, now), now,
            for_user ? ev->user_id : NULL, ev->type, ev->data, &pos);
    if (for_user)
        push_locked(rt, ev->user_id, pos, ev->type, ev->data);
    pthread_mutex_unlock(&rt->lock);
    return TK_CONSUME_OK;
}

/* ---- the stream ------------------------------------------------------------------------- */

/* Takes s out of the list (frees its slot); under rt->lock. */
static void unlink_stream(realtime *rt, stream *s)
{
    for (stream **pp = &rt->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

static void on_close(void *ud)
{
    stream *s = ud;
    realtime *rt = s->rt;
    pthread_mutex_lock(&rt->lock);
    unlink_stream(rt, s);
    pthread_mutex_unlock(&rt->lock);
    rt->host->metric_add(rt->m_open, NULL, -1);
    rt->host->sse_release(s->sse);
    free(s);
}

typedef enum { RESUME_NONE, RESUME_OK, RESUME_RESYNC } resume_kind;

/*
 * The window's events of the stream's user it has to be sent first: after its Last-Event-ID
 * (`last`), or, for a new stream, those that came while it was being opened. Returns how it
 * resumes; *n gets the number of events to replay. Under rt->lock.
 */
/* Whether e is one the stream is sent first: after `from` (a resume), or one that came while it
 * was being opened. */
static int replays(const stream *s, int resuming, win_pos from, const win_event *e)
{
    int wanted =
        resuming ? e->pos.part == from.part && e->pos.offset > from.offset : e->seq > s->from_seq;
    return wanted && strcmp(e->user, s->user) == 0;
}

static resume_kind plan_resume(realtime *rt, stream *s, const char *last, size_t *n)
{
    *n = 0;
    win_pos pos;
    if (last && (win_parse_id(&rt->win, last, &pos) != 0 || !win_covers(&rt->win, pos)))
        return RESUME_RESYNC;
    if (last)
        s->cur = pos;
    size_t bytes = 0;
    for (const win_event *e = rt->win.head; e; e = e->next) {
        /* (a partition read nothing of, part -1, has no kept event to replay) */
        if (!replays(s, last != NULL, s->cur, e))
            continue;
        (*n)++;
        if ((bytes += strlen(e->data) + strlen(e->type) + 64) > MAX_REPLAY_BYTES)
            return RESUME_RESYNC;
    }
    return last ? RESUME_OK : RESUME_NONE;
}

/* The `connected` frame, then a `resync` or the replayed events. Under rt->lock. */
static void open_frames(realtime *rt, stream *s, const char *last)
{
    size_t n = 0;
    resume_kind k = plan_resume(rt, s, last, &n);
    static const char *const kind_name[] = {"none", "resumed", "resync"};
    json_t *hello =
        json_pack("{s:s,s:s,s:s,s:I}", "connection_id", s->id, "user_id", s->user, "resume",
                  kind_name[k], "replayed", (json_int_t)(k == RESUME_RESYNC ? 0 : n));
    char *text = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    if (text)
        rt->host->sse_send(s->sse, "connected", text);
    free(text);
    if (k == RESUME_RESYNC) {
        s->cur = (win_pos){-1, -1, 0};
        rt->host->sse_send(s->sse, "resync",
                           "{\"reason\":\"events since Last-Event-ID are no longer kept: "
                           "refetch\"}");
        rt->host->metric_add(rt->m_resync, NULL, 1);
        return;
    }
    win_pos from = s->cur; /* send_to moves s->cur on */
    for (const win_event *e = rt->win.head; e && n > 0; e = e->next)
        if (replays(s, last != NULL, from, e) && send_to(rt, s, e->pos, e->type, e->data))
            n--;
    if (last)
        rt->host->metric_add(rt->m_resumed, NULL, 1);
}

/* The client's Last-Event-ID: the header EventSource sends when it reconnects, or the query
 * parameter a page that opens a new EventSource can pass. NULL: none. */
static const char *last_event_id(realtime *rt, const tk_http_request *req)
{
    const char *h = rt->host->http_header(req, "Last-Event-ID");
    if (!h || !*h)
        h = rt->host->http_query(req, "last_event_id");
    return h && *h ? h : NULL;
}

static int route_stream(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    realtime *rt = ud;
    char user[24];
    /* EventSource cannot send headers: the token may come as ?token= */
    int rc = kit_authenticate(rt->host, req, resp, user, sizeof(user), 1);
    if (rc < 0)
        return rc; /* answered (401, 503) */
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        return TK_ENOMEM;
    s->rt = rt;
    s->cur = (win_pos){-1, -1, 0};
    snprintf(s->user, sizeof(s->user), "%s", user);
    /* count and take a slot at once, so concurrent requests cannot pass the limit together */
    pthread_mutex_lock(&rt->lock);
    int64_t open = 0;
    for (stream *o = rt->streams; o; o = o->next)
        open += strcmp(o->user, s->user) == 0;
    if (open >= rt->max_per_user) {
        pthread_mutex_unlock(&rt->lock);
        free(s);
        char detail[96];
        snprintf(detail, sizeof(detail), "Too many open event streams (at most %lld per user)",
                 (long long)rt->max_per_user);
        /* a closed tab's stream is noticed at its next keepalive (30 s by default) */
        rt->host->http_set_header(resp, "Retry-After", "30");
        return rt->host->http_error(resp, 429, detail);
    }
    snprintf(s->id, sizeof(s->id), "%s-%ld", rt->host->http_request_id(req), ++rt->next_id);
    s->from_seq = rt->win.seq;
    s->next = rt->streams;
    rt->streams = s;
    pthread_mutex_unlock(&rt->lock);
    tk_sse *sse = rt->host->sse_open(req, resp, on_close, s);
    pthread_mutex_lock(&rt->lock);
    s->sse = sse;
    if (!sse)
        unlink_stream(rt, s);
    else /* under the lock: no event is pushed between the replay and the live ones */
        open_frames(rt, s, last_event_id(rt, req));
    pthread_mutex_unlock(&rt->lock);
    if (!sse) {
        free(s);
        return TK_ERR;
    }
    rt->host->metric_add(rt->m_open, NULL, 1);
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
    return kit_send_text(rt->host, resp, status, body, strlen(body));
}

/* A user id as the streams hold it: a positive integer (JSON number or decimal string).
 * TK_OK, or TK_EINVAL. */
static int user_id_of(json_t *v, char out[24])
{
    long long id = 0;
    if (json_is_integer(v)) {
        id = (long long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end = NULL;
        if (t[0] < '1' || t[0] > '9' || strlen(t) > 19)
            return TK_EINVAL;
        errno = 0;
        id = strtoll(t, &end, 10);
        if (errno || *end)
            return TK_EINVAL;
    }
    if (id <= 0)
        return TK_EINVAL;
    snprintf(out, 24, "%lld", id);
    return TK_OK;
}

/* The event's type when it is one of task-events', else NULL. */
static const char *task_type_of(json_t *doc, json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "event_type"));
    if (!type)
        type = json_string_value(json_object_get(doc, "type"));
    for (int i = 0; type && task_types[i]; i++)
        if (strcmp(type, task_types[i]) == 0)
            return task_types[i];
    return NULL;
}

/* Refuses a delivery (Dapr retries it per its resiliency policy, then drops it). */
static int refuse(realtime *rt, const tk_http_request *req, tk_http_response *resp, int status,
                  const char *detail)
{
    rt->host->log(rt->inst, TK_LOG_WARN, "dapr delivery to %s refused (%d): %s",
                  rt->host->http_path(req), status, detail);
    return rt->host->http_error(resp, status, detail);
}

static int route_delivery(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    realtime *rt = ud;
    /* registered only with a token (init) */
    if (!tk_secret_equal(rt->dapr_token, rt->host->http_header(req, "dapr-api-token")))
        return rt->host->http_error(resp, 401, "Invalid dapr-api-token");
    size_t len = 0;
    const char *body = rt->host->http_body(req, &len);
    if (len > rt->max_event)
        return refuse(rt, req, resp, 413, "Event too large");
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *e = json_is_object(doc) ? app_event(doc) : NULL;
    char uid[24];
    const char *type = NULL;
    int rc;
    if (!json_is_object(e))
        rc = refuse(rt, req, resp, 422, "The body is not a JSON event");
    else if (user_id_of(json_object_get(e, "user_id"), uid) < 0)
        rc = refuse(rt, req, resp, 422, "user_id must be a positive integer");
    else if (!(type = task_type_of(doc, e)))
        rc = refuse(rt, req, resp, 422, "Unknown event type");
    else {
        /* pushed as compact JSON: strings are escaped, so no newline can end the data: line */
        char *text = json_dumps(e, JSON_COMPACT);
        if (!text)
            rc = TK_ENOMEM;
        else if (strlen(text) > rt->max_event)
            rc = refuse(rt, req, resp, 413, "Event too large");
        else {
            push_delivered(rt, uid, type, text);
            rc = answer(rt, resp, 200, "SUCCESS");
        }
        free(text);
    }
    json_decref(doc);
    return rc;
}

/* ---- lifecycle
 * ------------------------------------------------------------------------------------ */

/* The routes in OpenAPI: openapi.json and openapi-dapr.json, compiled in (scripts/embed). */
extern const unsigned char realtime_openapi_json[], realtime_dapr_openapi_json[];

/* The stream and, with dapr_routes, the Dapr delivery routes, each with its description. */
static int add_routes(realtime *rt, int dapr_routes)
{
    const tk_host *h = rt->host;
    int rc;
    if ((rc = h->http_route(rt->inst, "GET", "/api/events/stream", route_stream, rt)) < 0 ||
        (rc = h->http_openapi(rt->inst, (const char *)realtime_openapi_json)) < 0)
        return rc;
    /* without a token anyone could push events into users' streams: no delivery routes then */
    if (dapr_routes &&
        ((rc = h->http_route(rt->inst, "POST", "/api/events/task-event", route_delivery, rt)) < 0 ||
         (rc = h->http_route(rt->inst, "POST", "/api/events/reminder-event", route_delivery, rt)) <
             0 ||
         (rc = h->http_openapi(rt->inst, (const char *)realtime_dapr_openapi_json)) < 0))
        return rc;
    return TK_OK;
}

static const tk_config_field config[] = {
    {"routes", TK_CFG_BOOL, 0, "true", NULL, "serve the stream and the Dapr delivery routes", NULL,
     TK_CFG_NO_RANGE},
    {"dapr_token", TK_CFG_STRING, 0, "\"\"", NULL,
     "the sidecar's app API token, as the core's dapr.app_token: the Dapr delivery routes are "
     "served only when set, and deliveries must carry it in dapr-api-token",
     NULL, TK_CFG_NO_RANGE},
    {"max_streams_per_user", TK_CFG_INT, 0, "8", NULL,
     "open event streams one user may have; the next one is answered 429", NULL,
     TK_CFG_RANGE(1, INT64_MAX)},
    /* a stream's queue holds 64 KiB: a larger event would end the stream it is sent to */
    {"resume_retention_s", TK_CFG_INT, 0, "300", NULL,
     "seconds of events kept for clients that reconnect with Last-Event-ID (0: no resume, "
     "every reconnect with one gets `resync`); a fresh process reads this far back at start-up",
     NULL, TK_CFG_RANGE(0, 86400)},
    {"resume_max_bytes", TK_CFG_INT, 0, "8388608", NULL,
     "memory the kept events may take; the oldest go first", NULL,
     TK_CFG_RANGE(0, INT64_C(1) << 32)},
    {"max_event_bytes", TK_CFG_INT, 0, "32768", NULL,
     "largest event pushed to a stream (and Dapr delivery body); larger ones are not pushed", NULL,
     TK_CFG_RANGE(1024, 60 * 1024)},
    {0},
};

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    if (host->abi_minor < 8) {
        host->log(inst, TK_LOG_ERROR,
                  "needs a taskorad with plugin ABI 1.8 (event streams with ids, rewind, "
                  "http_openapi)");
        return TK_EINVAL;
    }
    realtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return TK_ENOMEM;
    rt->host = host;
    rt->inst = inst;
    rt->dapr_token = host->config_string(inst, "dapr_token");
    rt->max_per_user = host->config_int(inst, "max_streams_per_user");
    rt->max_event = (size_t)host->config_int(inst, "max_event_bytes"); /* the schema's ranges */
    int dapr_routes = rt->dapr_token && *rt->dapr_token;
    int64_t retention_ms = host->config_int(inst, "resume_retention_s") * 1000;
    /* a fresh process reads the window's time back, so it can resume clients of others; with no
     * broadcast consume section (Dapr deliveries only) nothing is read back: since now */
    int rewound = retention_ms > 0 && host->consume_rewind(inst, retention_ms) == TK_OK;
    win_init(&rt->win, retention_ms, (size_t)host->config_int(inst, "resume_max_bytes"),
             kit_time_now_us() / 1000 - (rewound ? retention_ms : 0));
    pthread_mutex_init(&rt->lock, NULL);
    rt->m_open = host->metric_gauge(inst, "taskora_realtime_streams", "Open event streams", NULL);
    rt->m_pushed = host->metric_counter(inst, "taskora_realtime_pushed_total",
                                        "Events written to event streams", NULL);
    rt->m_resumed = host->metric_counter(inst, "taskora_realtime_resumed_total",
                                         "Streams resumed after Last-Event-ID", NULL);
    rt->m_resync =
        host->metric_counter(inst, "taskora_realtime_resync_total",
                             "Streams told to refetch (gap older than the window)", NULL);
    int rc = host->config_bool(inst, "routes") ? add_routes(rt, dapr_routes) : TK_OK;
    if (rc < 0) {
        pthread_mutex_destroy(&rt->lock);
        win_free(&rt->win);
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
        pthread_mutex_destroy(&rt->lock), win_free(&rt->win), free(rt);
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

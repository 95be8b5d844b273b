/* A consumer plugin for the event tests: records every call and applies each event once. */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskora/plugin.h>

typedef struct sink {
    const tk_host *host;
    tk_instance *inst;
} sink;

static int exec_params(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

typedef struct call {
    const tk_event *ev;
    char partition[16], offset[32], attempt[16];
} call;

static int record_call(void *conn, void *ud)
{
    call *c = ud;
    const char *p[] = {c->ev->id, c->attempt, c->partition, c->offset, c->ev->traceparent};
    return exec_params(conn,
                       "INSERT INTO sink_calls (event_id, attempt, kafka_partition, kafka_offset,"
                       " traceparent) VALUES ($1, $2::int, $3::int, $4::bigint, $5)",
                       5, p);
}

static int apply(void *conn, void *ud)
{
    call *c = ud;
    json_t *payload = json_loads(c->ev->payload, 0, NULL);
    char seq[32];
    snprintf(seq, sizeof(seq), "%lld",
             (long long)json_integer_value(json_object_get(payload, "seq")));
    json_decref(payload);
    const char *user = c->ev->user_id ? c->ev->user_id : "";
    const char *p[] = {c->ev->id, c->ev->type, user, seq, c->partition, c->offset};
    if (exec_params(conn,
                    "INSERT INTO sink_effects (event_id, type, user_id, seq, kafka_partition,"
                    " kafka_offset) VALUES ($1, $2, $3, $4::int, $5::int, $6::bigint)",
                    6, p))
        return TK_ERR;
    const char *u[] = {user};
    return exec_params(conn,
                       "INSERT INTO sink_counters VALUES ($1, 1)"
                       " ON CONFLICT (user_id) DO UPDATE SET n = sink_counters.n + 1",
                       1, u);
}

static tk_consume_result consume(void *state, const tk_event *ev)
{
    sink *s = state;
    call c = {.ev = ev};
    snprintf(c.partition, sizeof(c.partition), "%d", (int)ev->partition);
    snprintf(c.offset, sizeof(c.offset), "%lld", (long long)ev->offset);
    snprintf(c.attempt, sizeof(c.attempt), "%u", ev->attempt);
    if (s->host->pg_tx(s->inst, record_call, &c) < 0)
        return TK_CONSUME_RETRY;
    long slow = (long)s->host->config_int(s->inst, "slow_ms");
    if (slow > 0) {
        struct timespec t = {slow / 1000, (slow % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
    if (strcmp(ev->type, "test.retry") == 0)
        return TK_CONSUME_RETRY;
    if (strcmp(ev->type, "test.fail") == 0 && s->host->config_bool(s->inst, "fail_events"))
        return TK_CONSUME_FAIL;
    int dup = 0;
    return s->host->pg_once(s->inst, ev->group, ev->id, apply, &c, &dup) < 0 ? TK_CONSUME_RETRY
                                                                             : TK_CONSUME_OK;
}

/* POST /sink/emit {"count", "user", "type", "topic", "rollback"}: outbox events in one transaction.
 */
typedef struct emit {
    sink *s;
    json_t *req;
} emit;

static int emit_tx(void *conn, void *ud)
{
    emit *e = ud;
    json_t *r = e->req;
    int n = (int)json_integer_value(json_object_get(r, "count"));
    const char *topic = json_string_value(json_object_get(r, "topic"));
    const char *type = json_string_value(json_object_get(r, "type"));
    const char *user = json_string_value(json_object_get(r, "user"));
    for (int i = 0; i < n; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
        int rc = e->s->host->outbox_append(e->s->inst, conn, topic ? topic : "task-events",
                                           type ? type : "task.created", user, NULL, payload, NULL,
                                           /* taken from the request */ NULL);
        if (rc < 0)
            return rc;
    }
    return json_is_true(json_object_get(r, "rollback")) ? TK_EINVAL : 0;
}

static int route_emit(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    sink *s = ud;
    size_t len;
    const char *body = s->host->http_body(req, &len);
    emit e = {s, json_loadb(body, len, 0, NULL)};
    if (!json_is_object(e.req)) {
        json_decref(e.req);
        return s->host->http_error(resp, 422, "expected a JSON object");
    }
    int rc = s->host->pg_tx(s->inst, emit_tx, &e);
    json_decref(e.req);
    char out[64];
    snprintf(out, sizeof(out), "{\"committed\":%s}", rc == 0 ? "true" : "false");
    return s->host->http_set_body(resp, "application/json", out, strlen(out));
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    sink *s = calloc(1, sizeof(*s));
    if (!s)
        return TK_ENOMEM;
    s->host = host;
    s->inst = inst;
    if (host->config_bool(inst, "emit_route") &&
        host->http_route(inst, "POST", "/sink/emit", route_emit, s) < 0) {
        free(s);
        return TK_ERR;
    }
    *state = s;
    return TK_OK;
}

static void destroy(void *state) { free(state); }

static const tk_config_field config[] = {
    {"slow_ms", TK_CFG_INT, 0, "0", NULL, "sleep this long in each call", NULL, TK_CFG_NO_RANGE},
    {"emit_route", TK_CFG_BOOL, 0, "false", NULL, "serve POST /sink/emit", NULL, TK_CFG_NO_RANGE},
    {"fail_events", TK_CFG_BOOL, 0, "true", NULL,
     "answer FAIL to test.fail events (false: apply them as any other)", NULL, TK_CFG_NO_RANGE},
    {0},
};

static const char *const migrations[] = {
    "CREATE TABLE sink_calls (id bigserial PRIMARY KEY, event_id text, attempt int,"
    " kafka_partition int, kafka_offset bigint, traceparent text,"
    " at timestamptz DEFAULT clock_timestamp());"
    "CREATE TABLE sink_effects (n bigserial, event_id text PRIMARY KEY, type text, user_id text,"
    " seq int, kafka_partition int, kafka_offset bigint,"
    " at timestamptz DEFAULT clock_timestamp());"
    "CREATE TABLE sink_counters (user_id text PRIMARY KEY, n int NOT NULL)",
    NULL,
};

static const tk_plugin desc = {
    TK_PLUGIN_HEADER,
    .name = "event_sink",
    .version = "1.0.0",
    .description = "records and applies consumed events for the tests",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = migrations,
    .init = init,
    .destroy = destroy,
    .consume = consume,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

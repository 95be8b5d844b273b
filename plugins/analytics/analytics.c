/*
 * analytics: per-user, per-day task and chat statistics from the event stream, and
 * GET /api/analytics/summary?days=30 for the authenticated user.
 *
 * Consumes task-events, user-events and chat-events (whatever its `consume` section names).
 * A batch of up to 64 events of one partition costs ONE transaction:
 *   1. the batch's event ids are recorded as processed for the consumer group with the host's
 *      pg_mark_processed (ABI 1.6), in this transaction: only the events it calls fresh are
 *      new; redelivered events (and repeats inside the batch) change nothing;
 *   2. the new events are aggregated in memory per (user, UTC day of the event time) and
 *      written with one multi-row upsert into analytics_daily;
 *   3. task.created records the task's creation time (analytics_task_created); a completion
 *      of a task whose creation was seen stores its duration (analytics_completions), from
 *      which the summary takes an exact median; task.deleted forgets the creation time.
 * On any database error every event of the batch answers RETRY (the runtime then retries
 * them one by one, and gives up on an event through its DLQ).
 *
 * Mapping: task.created -> created; task.completed with status_change "completed" (or,
 * without status_change, completed:true) -> completed (+ duration), with "reopened" /
 * completed:false -> reopened; task.deleted -> deleted; chat.message_sent -> chat_messages.
 * Other types, and events without a user id, are recorded as processed and otherwise
 * ignored. An event without a parseable time (kit_time_parse, date and time of day) counts
 * on the day it is processed.
 *
 * Summary: completion_rate = completed / created over the window (0 when nothing was
 * created; it may exceed 1 when tasks created before the window are completed in it);
 * median_time_to_complete_s is the median of the durations of the completions in the
 * window (null when there is none, or none of a task whose creation was seen).
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskora/plugin.h>

#include "../kit/kit.h"

#define MAX_USER_LEN 255

/* What an event counts as. */
enum { K_CREATED, K_COMPLETED, K_REOPENED, K_DELETED, K_CHAT, K_COUNT, K_NONE = -1 };

static const char *const kind_column[K_COUNT] = {"created", "completed", "reopened", "deleted",
                                                 "chat_messages"};

typedef struct analytics {
    const tk_host *host;
    tk_instance *inst;
    tk_metric *applied;    /* taskora_analytics_events_applied_total */
    tk_metric *duplicates; /* taskora_analytics_duplicates_skipped_total */
    tk_metric *ignored;    /* taskora_analytics_events_ignored_total */
    tk_metric *batches;    /* taskora_analytics_batches_total */
} analytics;

/* One event of a batch, classified before the transaction. */
typedef struct item {
    const tk_event *ev;
    int kind;              /* K_* */
    char day[11];          /* YYYY-MM-DD (UTC) */
    char ts[KIT_TIME_LEN]; /* the event time in UTC, ISO 8601 */
    char task_id[40];      /* "" when the payload has none */
} item;

/* The work of one batch, shared with the transaction function. */
typedef struct batch {
    analytics *a;
    const char *group;
    item *items;
    size_t n;
    /* results of the last (committed) run */
    long applied, duplicates, ignored;
    char error[256];
} batch;

/* ---- classification -------------------------------------------------------- */

/* A payload field that identifies a task (integer or string) as text; "" when absent. */
static void task_id_of(json_t *payload, char *out, size_t len)
{
    json_t *v = json_object_get(payload, "task_id");
    out[0] = '\0';
    if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v) && json_string_length(v) < len)
        snprintf(out, len, "%s", json_string_value(v));
}

/* What ev counts as, filling it; K_NONE when it does not count. */
static int classify(const tk_event *ev, item *it)
{
    memset(it, 0, sizeof(*it));
    it->ev = ev;
    it->kind = K_NONE;
    if (!ev->id || !*ev->id || !ev->type || !ev->user_id || !*ev->user_id ||
        strlen(ev->user_id) > MAX_USER_LEN)
        return K_NONE;
    int kind = K_NONE;
    json_t *payload = NULL;
    if (strcmp(ev->type, "task.created") == 0 || strcmp(ev->type, "task.deleted") == 0 ||
        strcmp(ev->type, "task.completed") == 0) {
        payload = ev->payload ? json_loads(ev->payload, 0, NULL) : NULL;
        task_id_of(payload, it->task_id, sizeof(it->task_id));
        if (strcmp(ev->type, "task.created") == 0)
            kind = K_CREATED;
        else if (strcmp(ev->type, "task.deleted") == 0)
            kind = K_DELETED;
        else {
            const char *change = json_string_value(json_object_get(payload, "status_change"));
            json_t *done = json_object_get(payload, "completed");
            if (change ? strcmp(change, "completed") == 0 : json_is_true(done))
                kind = K_COMPLETED;
            else if (change ? strcmp(change, "reopened") == 0 : json_is_false(done))
                kind = K_REOPENED;
        }
        json_decref(payload);
    } else if (strcmp(ev->type, "chat.message_sent") == 0) {
        kind = K_CHAT;
    }
    if (kind == K_NONE)
        return K_NONE;
    int64_t us;
    if (kit_time_parse(ev->time, KIT_TIME_DATETIME, &us) < 0)
        us = kit_time_now_us();
    kit_time_format(us, KIT_TIME_DAY, it->day, sizeof(it->day));
    kit_time_format(us, KIT_TIME_ISO, it->ts, sizeof(it->ts));
    it->kind = kind;
    return kind;
}

/* ---- the transaction ------------------------------------------------------- */

static int set_error(batch *b, PGconn *c, PGresult *r, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    snprintf(b->error, sizeof(b->error), "%s: %s", what, msg && *msg ? msg : "failed");
    b->error[strcspn(b->error, "\n")] = '\0';
    PQclear(r);
    return PQstatus(c) == CONNECTION_OK ? TK_ERR : TK_EUNAVAILABLE;
}

/* Runs a statement with one JSON parameter. */
static int exec_json(batch *b, PGconn *c, const char *what, const char *sql, const char *json)
{
    const char *params[] = {json};
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return set_error(b, c, r, what);
    PQclear(r);
    return 0;
}

/* Appends json's compact text to a JSON array being built; NULL json is an error. */
static char *dump_new(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

typedef struct day_row {
    const char *user;
    const char *day;
    long count[K_COUNT];
} day_row;

static int cmp_day_row(const void *x, const void *y)
{
    const day_row *a = x, *b = y;
    int c = strcmp(a->user, b->user);
    return c ? c : strcmp(a->day, b->day);
}

/* Step 1: records the batch's event ids as processed; fresh[i] says whether items[i] is new
 * (not seen before by the group, and the first of its id in the batch). */
static int record_processed(batch *b, PGconn *c, int *fresh)
{
    const char *ids[64];
    for (size_t i = 0; i < b->n; i++)
        ids[i] = b->items[i].ev->id;
    int rc = b->a->host->pg_mark_processed(b->a->inst, c, b->group, ids, b->n, fresh);
    if (rc == TK_ENOMEM || rc == TK_EINVAL) {
        snprintf(b->error, sizeof(b->error), "recording processed events: %s", tk_strerror(rc));
        return rc;
    }
    return rc < 0 ? set_error(b, c, NULL, "recording processed events") : 0;
}

/* What the batch's new events add up to: counters per (user, day) and the task times. */
typedef struct tally {
    day_row rows[64];
    size_t nrows;
    json_t *created, *completions, *deletions; /* rows for analytics_task_created / _completions */
} tally;

/* Counts it->kind on its (user, day) row. */
static void count_day(tally *t, const item *it)
{
    size_t k = 0;
    while (k < t->nrows &&
           (strcmp(t->rows[k].user, it->ev->user_id) != 0 || strcmp(t->rows[k].day, it->day) != 0))
        k++;
    if (k == t->nrows) {
        memset(&t->rows[k], 0, sizeof(t->rows[k]));
        t->rows[k].user = it->ev->user_id;
        t->rows[k].day = it->day;
        t->nrows++;
    }
    t->rows[k].count[it->kind]++;
}

/* Notes what a task's creation, completion or deletion means for time to complete. */
static int note_task(tally *t, const item *it)
{
    json_t *o = NULL, *arr = NULL;
    if (it->kind == K_CREATED) {
        o = json_pack("{s:s,s:s,s:s}", "user_id", it->ev->user_id, "task_id", it->task_id, "at",
                      it->ts);
        arr = t->created;
    } else if (it->kind == K_COMPLETED) {
        o = json_pack("{s:s,s:s,s:s,s:s}", "user_id", it->ev->user_id, "task_id", it->task_id, "at",
                      it->ts, "day", it->day);
        arr = t->completions;
    } else if (it->kind == K_DELETED) {
        o = json_pack("{s:s,s:s}", "user_id", it->ev->user_id, "task_id", it->task_id);
        arr = t->deletions;
    }
    if (arr && (!o || json_array_append_new(arr, o) != 0))
        return TK_ENOMEM;
    return 0;
}

/* Step 2: the events step 1 found fresh are tallied; the others are duplicates. */
static int tally_new(batch *b, const int *fresh, tally *t)
{
    for (size_t i = 0; i < b->n; i++) {
        item *it = &b->items[i];
        if (!fresh[i]) {
            b->duplicates++;
            continue;
        }
        if (it->kind == K_NONE) {
            b->ignored++;
            continue;
        }
        b->applied++;
        count_day(t, it);
        if (it->task_id[0] && note_task(t, it) < 0)
            return TK_ENOMEM;
    }
    return 0;
}

/* Step 3: the counters, one upsert for every (user, day) of the batch, in key order. */
static int upsert_days(batch *b, PGconn *c, tally *t)
{
    if (!t->nrows)
        return 0;
    qsort(t->rows, t->nrows, sizeof(t->rows[0]), cmp_day_row);
    json_t *list = json_array();
    for (size_t k = 0; list && k < t->nrows; k++) {
        json_t *o = json_pack("{s:s,s:s}", "user_id", t->rows[k].user, "day", t->rows[k].day);
        for (int j = 0; o && j < K_COUNT; j++)
            json_object_set_new(o, kind_column[j], json_integer(t->rows[k].count[j]));
        if (!o || json_array_append_new(list, o) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    char *text = dump_new(list);
    if (!text)
        return TK_ENOMEM;
    int rc = exec_json(b, c, "updating the daily counters",
                       "INSERT INTO analytics_daily AS d"
                       " (user_id, day, created, completed, reopened, deleted, chat_messages)"
                       " SELECT x.user_id, x.day, x.created, x.completed, x.reopened, x.deleted,"
                       " x.chat_messages FROM jsonb_to_recordset($1::jsonb) AS x(user_id text,"
                       " day date, created int, completed int, reopened int, deleted int,"
                       " chat_messages int)"
                       " ORDER BY x.user_id, x.day"
                       " ON CONFLICT (user_id, day) DO UPDATE SET"
                       " created = d.created + EXCLUDED.created,"
                       " completed = d.completed + EXCLUDED.completed,"
                       " reopened = d.reopened + EXCLUDED.reopened,"
                       " deleted = d.deleted + EXCLUDED.deleted,"
                       " chat_messages = d.chat_messages + EXCLUDED.chat_messages,"
                       " updated_at = now()",
                       text);
    free(text);
    return rc;
}

/* Runs sql with rows (a JSON array) as its parameter, when there are any. */
static int exec_rows(batch *b, PGconn *c, const char *what, const char *sql, json_t *rows)
{
    if (!json_array_size(rows))
        return 0;
    char *text = dump_new(json_incref(rows));
    int rc = text ? exec_json(b, c, what, sql, text) : TK_ENOMEM;
    free(text);
    return rc;
}

/* Step 4: time to complete. Creations first, so a task created and completed in one batch has
 * its duration. */
static int write_task_times(batch *b, PGconn *c, tally *t)
{
    int rc = exec_rows(b, c, "recording task creations",
                       "INSERT INTO analytics_task_created (user_id, task_id, created_at)"
                       " SELECT x.user_id, x.task_id, x.at FROM jsonb_to_recordset($1::jsonb)"
                       " AS x(user_id text, task_id text, at timestamptz)"
                       " ORDER BY x.user_id, x.task_id"
                       " ON CONFLICT (user_id, task_id) DO NOTHING",
                       t->created);
    if (!rc)
        rc = exec_rows(b, c, "recording completion times",
                       "INSERT INTO analytics_completions (user_id, day, task_id, duration_s)"
                       " SELECT x.user_id, x.day, x.task_id,"
                       " greatest(0, extract(epoch FROM x.at - t.created_at))::float8"
                       " FROM jsonb_to_recordset($1::jsonb)"
                       " AS x(user_id text, task_id text, at timestamptz, day date)"
                       " JOIN analytics_task_created t"
                       " ON t.user_id = x.user_id AND t.task_id = x.task_id",
                       t->completions);
    if (!rc)
        rc = exec_rows(b, c, "forgetting deleted tasks",
                       "DELETE FROM analytics_task_created t USING"
                       " jsonb_to_recordset($1::jsonb) AS x(user_id text, task_id text)"
                       " WHERE t.user_id = x.user_id AND t.task_id = x.task_id",
                       t->deletions);
    return rc;
}

/* The batch's transaction: steps 1 to 4 (see the top of the file). */
static int batch_fn(void *conn, void *ud)
{
    batch *b = ud;
    PGconn *c = conn;
    b->applied = b->duplicates = b->ignored = 0;
    int fresh[64];
    int rc = record_processed(b, c, fresh);
    if (rc)
        return rc;
    tally t = {.nrows = 0,
               .created = json_array(),
               .completions = json_array(),
               .deletions = json_array()};
    if (!t.created || !t.completions || !t.deletions)
        rc = TK_ENOMEM;
    if (!rc)
        rc = tally_new(b, fresh, &t);
    if (rc == TK_ENOMEM)
        snprintf(b->error, sizeof(b->error), "out of memory");
    if (!rc)
        rc = upsert_days(b, c, &t);
    if (!rc)
        rc = write_task_times(b, c, &t);
    if (rc == TK_ENOMEM && !b->error[0])
        snprintf(b->error, sizeof(b->error), "out of memory");
    json_decref(t.created);
    json_decref(t.completions);
    json_decref(t.deletions);
    return rc;
}

static void consume_batch(void *state, const tk_event *const *events, size_t n,
                          tk_consume_result *results)
{
    analytics *a = state;
    item items[64];
    batch b;
    memset(&b, 0, sizeof(b));
    b.a = a;
    b.items = items;
    /* the runtime sends at most 64; more are handled 64 at a time all the same */
    for (size_t start = 0; start < n; start += 64) {
        size_t m = n - start < 64 ? n - start : 64;
        b.n = 0;
        b.group = NULL;
        for (size_t i = 0; i < m; i++) {
            const tk_event *ev = events[start + i];
            results[start + i] = TK_CONSUME_OK;
            if (!ev->id || !*ev->id) /* the runtime never sends one: nothing to dedupe on */
                continue;
            if (!b.group && ev->group)
                b.group = ev->group;
            classify(ev, &items[b.n++]);
        }
        if (!b.n)
            continue;
        if (!b.group || !*b.group) {
            a->host->log(a->inst, TK_LOG_ERROR,
                         "events without a consumer group: configure a consume section");
            for (size_t i = 0; i < m; i++)
                results[start + i] = TK_CONSUME_FAIL;
            continue;
        }
        b.error[0] = '\0';
        int rc = a->host->pg_tx(a->inst, batch_fn, &b);
        if (rc < 0) {
            a->host->log_kv(a->inst, TK_LOG_WARN, "batch not applied; retrying its events", "error",
                            b.error[0] ? b.error : tk_strerror(rc), NULL);
            for (size_t i = 0; i < m; i++)
                results[start + i] = TK_CONSUME_RETRY;
            continue;
        }
        a->host->metric_add(a->batches, NULL, 1);
        if (b.applied)
            a->host->metric_add(a->applied, NULL, (double)b.applied);
        if (b.duplicates)
            a->host->metric_add(a->duplicates, NULL, (double)b.duplicates);
        if (b.ignored)
            a->host->metric_add(a->ignored, NULL, (double)b.ignored);
    }
}

static tk_consume_result consume(void *state, const tk_event *ev)
{
    tk_consume_result result = TK_CONSUME_OK;
    const tk_event *one[] = {ev};
    consume_batch(state, one, 1, &result);
    return result;
}

/* ---- GET /api/analytics/summary -------------------------------------------- */

/* The route in OpenAPI: openapi.json, compiled in (scripts/embed). */
extern const unsigned char analytics_openapi_json[];

static const char summary_sql[] =
    "WITH w AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today, $2::int AS n),"
    " d AS (SELECT (w.today - g)::date AS day FROM w, generate_series(0, w.n - 1) g),"
    " r AS (SELECT d.day, coalesce(a.created, 0) AS created,"
    "  coalesce(a.completed, 0) AS completed, coalesce(a.reopened, 0) AS reopened,"
    "  coalesce(a.deleted, 0) AS deleted, coalesce(a.chat_messages, 0) AS chat_messages"
    "  FROM d LEFT JOIN analytics_daily a ON a.user_id = $1 AND a.day = d.day),"
    " t AS (SELECT sum(created)::bigint AS created, sum(completed)::bigint AS completed,"
    "  sum(reopened)::bigint AS reopened, sum(deleted)::bigint AS deleted,"
    "  sum(chat_messages)::bigint AS chat_messages FROM r)"
    " SELECT json_build_object("
    "  'days', (SELECT json_agg(json_build_object('date', to_char(day, 'YYYY-MM-DD'),"
    "   'created', created, 'completed', completed, 'reopened', reopened,"
    "   'deleted', deleted, 'chat_messages', chat_messages) ORDER BY day) FROM r),"
    "  'totals', (SELECT json_build_object('created', created, 'completed', completed,"
    "   'reopened', reopened, 'deleted', deleted, 'chat_messages', chat_messages) FROM t),"
    "  'completion_rate', (SELECT CASE WHEN created = 0 THEN 0::float8"
    "   ELSE completed::float8 / created END FROM t),"
    "  'median_time_to_complete_s', (SELECT percentile_cont(0.5) WITHIN GROUP"
    "   (ORDER BY c.duration_s) FROM analytics_completions c, w"
    "   WHERE c.user_id = $1 AND c.day BETWEEN w.today - (w.n - 1) AND w.today)"
    " )::text";

static int route_summary(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    analytics *a = ud;
    const tk_host *h = a->host;
    char user[64];
    int rc = kit_authenticate(h, req, resp, user, sizeof(user), 0);
    if (rc < 0)
        return rc; /* answered (401, 503) */
    kit_errors e;
    kit_errors_init(&e);
    int64_t days = kit_query_int(h, req, &e, "days", 1, 365, 30);
    if (kit_errors_any(&e))
        return kit_errors_send(h, resp, &e);
    kit_errors_free(&e);
    char ndays[24];
    snprintf(ndays, sizeof(ndays), "%lld", (long long)days);

    tk_pg *pg;
    if ((rc = h->pg_acquire(a->inst, -1, &pg)) < 0)
        return kit_db_error(h, resp, rc);
    PGconn *c = h->pg_conn(pg);
    const char *params[] = {user, ndays};
    PGresult *r = PQexecParams(c, summary_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char why[256];
        snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
        why[strcspn(why, "\n")] = '\0';
        int down = PQstatus(c) != CONNECTION_OK;
        PQclear(r);
        h->pg_release(pg);
        h->log_kv(a->inst, TK_LOG_ERROR, "summary query failed", "error", why, NULL);
        return down ? kit_db_error(h, resp, TK_EUNAVAILABLE) : TK_ERR;
    }
    const char *text = PQgetvalue(r, 0, 0);
    rc = kit_send_text(h, resp, 200, text, strlen(text));
    PQclear(r);
    h->pg_release(pg);
    return rc;
}

/* ---- life cycle ---------------------------------------------------------------- */

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    if (host->struct_size <
            offsetof(tk_host, pg_mark_processed) + sizeof(host->pg_mark_processed) ||
        !host->pg_mark_processed) {
        host->log(inst, TK_LOG_ERROR,
                  "this taskorad lacks pg_mark_processed (ABI < 1.6): batches cannot be deduped");
        return TK_EINVAL;
    }
    analytics *a = calloc(1, sizeof(*a));
    if (!a)
        return TK_ENOMEM;
    a->host = host;
    a->inst = inst;
    a->applied = host->metric_counter(inst, "taskora_analytics_events_applied_total",
                                      "Events counted in the daily aggregates", NULL);
    a->duplicates = host->metric_counter(inst, "taskora_analytics_duplicates_skipped_total",
                                         "Redelivered events skipped (already processed)", NULL);
    a->ignored =
        host->metric_counter(inst, "taskora_analytics_events_ignored_total",
                             "New events that count for nothing (other types, no user)", NULL);
    a->batches = host->metric_counter(inst, "taskora_analytics_batches_total",
                                      "Batches applied, one transaction each", NULL);
    if (!a->applied || !a->duplicates || !a->ignored || !a->batches) {
        free(a);
        return TK_ERR;
    }
    if (host->config_bool(inst, "routes")) {
        int rc = host->http_route(inst, "GET", "/api/analytics/summary", route_summary, a);
        if (rc == TK_EUNAVAILABLE) {
            host->log(inst, TK_LOG_INFO, "HTTP is disabled: no summary route in this process");
        } else if (rc < 0 || (rc = host->http_openapi(inst, (const char *)analytics_openapi_json)) < 0) {
            host->log(inst, TK_LOG_ERROR, "the summary route could not be served (%s)",
                      tk_strerror(rc));
            free(a);
            return rc;
        }
    }
    *state = a;
    return TK_OK;
}

static void destroy(void *state) { free(state); }

static const tk_config_field config[] = {
    {"routes", TK_CFG_BOOL, 0, "true", NULL,
     "serve GET /api/analytics/summary (when HTTP is enabled in the process)", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

/* Tables this plugin owns. Append only: a shipped step never changes. */
static const char *const migrations[] = {
    /* 1: per-user, per-day counters; what time to complete needs */
    "CREATE TABLE IF NOT EXISTS analytics_daily ("
    " user_id varchar(255) NOT NULL,"
    " day date NOT NULL,"
    " created integer NOT NULL DEFAULT 0,"
    " completed integer NOT NULL DEFAULT 0,"
    " reopened integer NOT NULL DEFAULT 0,"
    " deleted integer NOT NULL DEFAULT 0,"
    " chat_messages integer NOT NULL DEFAULT 0,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (user_id, day));"
    "CREATE TABLE IF NOT EXISTS analytics_task_created ("
    " user_id varchar(255) NOT NULL,"
    " task_id text NOT NULL,"
    " created_at timestamptz NOT NULL,"
    " PRIMARY KEY (user_id, task_id));"
    "CREATE TABLE IF NOT EXISTS analytics_completions ("
    " id bigserial PRIMARY KEY,"
    " user_id varchar(255) NOT NULL,"
    " day date NOT NULL,"
    " task_id text NOT NULL,"
    " duration_s double precision NOT NULL);"
    "CREATE INDEX IF NOT EXISTS analytics_completions_user_day"
    " ON analytics_completions (user_id, day, duration_s)",
    NULL,
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "analytics",
    .version = "1.0.0",
    .description = "per-user daily task and chat statistics from the event stream",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = migrations,
    .init = init,
    .destroy = destroy,
    .consume = consume,
    .consume_batch = consume_batch,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

/* The transactional outbox: events written with the change they describe, and the relay
 * that publishes them to Kafka in order. */
#include "outbox.h"

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"

/* The advisory lock whose holder is the one relay publishing. */
#define RELAY_LOCK_KEY "8386109046813058"

int tk_outbox_append(PGconn *conn, const char *source, const char *topic, const char *type,
                     const char *user_id, const char *subject, const char *payload_json,
                     const char *traceparent, char id_out[37], char **value_out)
{
    if (!conn || !topic || !*topic || !type || !*type || !payload_json)
        return TK_EINVAL;
    json_error_t je;
    json_t *payload = json_loads(payload_json, 0, &je);
    if (!payload && tk_config_json_no_memory(&je)) {
        tk_logf(NULL, TK_LOG_ERROR, "outbox: out of memory reading a %s event's payload", type);
        return TK_ENOMEM;
    }
    if (!json_is_object(payload)) {
        json_decref(payload);
        return TK_EINVAL;
    }
    if (!traceparent)
        traceparent = tk_log_context_traceparent(); /* the request or event being handled */
    char id[37];
    char *value = tk_event_encode(source, type, user_id, subject, payload, id);
    json_decref(payload);
    json_t *h = json_pack("{s:s,s:s,s:s,s:s}", "ce_id", id, "ce_type", type, "ce_source", source,
                          "content-type", "application/cloudevents+json");
    if (h && traceparent && *traceparent &&
        json_object_set_new(h, "traceparent", json_string(traceparent))) {
        json_decref(h);
        h = NULL;
    }
    char *headers = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    int rc = TK_ENOMEM;
    if (!value || !headers)
        tk_logf(NULL, TK_LOG_ERROR, "outbox: out of memory encoding a %s event", type);
    else {
        const char *params[] = {topic, user_id, value, headers};
        /* one round trip; the notification reaches the relay when (and only if) the
         * transaction commits */
        PGresult *r = PQexecParams(conn,
                                   "WITH added AS (INSERT INTO taskora_outbox (topic, key, value,"
                                   " headers) VALUES ($1, $2, $3, $4::jsonb) RETURNING id)"
                                   " SELECT pg_notify('taskora_outbox', '') FROM added",
                                   4, NULL, params, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : TK_ERR;
        if (rc)
            tk_logf(NULL, TK_LOG_ERROR, "outbox: append failed: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    if (rc == 0 && id_out)
        memcpy(id_out, id, 37);
    if (rc == 0 && value_out) {
        *value_out = value;
        value = NULL;
    }
    free(value);
    free(headers);
    return rc;
}

struct tk_relay {
    tk_relay_options o;
    char *pg_url;
    tk_producer *producer;
    pthread_t thread;
    atomic_int stop;
    int wake[2]; /* a byte here ends a wait early (stop) */
    tk_metric_family *m_published, *m_backlog, *m_oldest, *m_failed, *m_leader, *m_latency;
};

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
}

/* Sleeps until a notification, a stop, or ms pass. */
static void wait_for_work(tk_relay *r, PGconn *c, int ms)
{
    struct pollfd fds[2] = {{.fd = r->wake[0], .events = POLLIN},
                            {.fd = c ? PQsocket(c) : -1, .events = POLLIN}};
    poll(fds, c ? 2 : 1, ms);
    if (c && (fds[1].revents & POLLIN)) {
        PQconsumeInput(c);
        PGnotify *n;
        while ((n = PQnotifies(c)))
            PQfreemem(n);
    }
}

/* Builds the Kafka headers of a row from its headers JSON (jsonb: always an object). NULL when
 * out of memory. */
static rd_kafka_headers_t *row_headers(const char *json)
{
    json_t *h = json_loads(json, 0, NULL);
    if (!h)
        return NULL;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(json_object_size(h) + 1);
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        const char *s = json_string_value(v);
        if (s)
            rd_kafka_header_add(hdrs, k, -1, s, -1);
    }
    json_decref(h);
    return hdrs;
}

static void update_backlog(tk_relay *r, PGconn *c)
{
    PGresult *res =
        PQexec(c, "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                  " FROM taskora_outbox WHERE sent_at IS NULL");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        tk_metric_set(r->m_backlog, NULL, atof(PQgetvalue(res, 0, 0)));
        tk_metric_set(r->m_oldest, NULL, atof(PQgetvalue(res, 0, 1)));
    }
    PQclear(res);
}

/* Marks the rows of an id array literal ("{1,2}") sent, with an error or none. 0 on success. */
static int mark_sent(PGconn *c, const tk_buf *ids, const char *error)
{
    if (ids->oom)
        return -1;
    const char *params[] = {ids->p, error};
    PGresult *u = PQexecParams(c,
                               "UPDATE taskora_outbox SET sent_at = now(), last_error = $2"
                               " WHERE id = ANY($1::bigint[])",
                               2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(u) == PGRES_COMMAND_OK;
    PQclear(u);
    return ok ? 0 : -1;
}

/*
 * One round: publish up to `batch` unsent rows in id order, wait for their
 * reports, mark the delivered ones sent. Returns rows published, or -1 when
 * the database connection failed, -2 when stopped.
 */
static int relay_round(tk_relay *r, PGconn *c)
{
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", r->o.batch);
    const char *params[] = {limit};
    PGresult *rows = PQexecParams(c,
                                  "SELECT id, topic, key, value, headers::text,"
                                  " extract(epoch FROM clock_timestamp() - created_at)"
                                  " FROM taskora_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                                  1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
        tk_logf(NULL, TK_LOG_WARN, "outbox relay: reading rows failed: %s",
                PQresultErrorMessage(rows));
        PQclear(rows);
        return -1;
    }
    int n = PQntuples(rows);
    if (n == 0) {
        PQclear(rows);
        return 0;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tk_delivery d;
    if (tk_delivery_init(&d, (size_t)n)) {
        tk_logf(NULL, TK_LOG_ERROR, "outbox relay: out of memory for %d event(s)", n);
        PQclear(rows);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *key = PQgetisnull(rows, i, 2) ? NULL : PQgetvalue(rows, i, 2);
        rd_kafka_headers_t *h = row_headers(PQgetvalue(rows, i, 4));
        if (!h) {
            /* never without its headers: this row and the ones after wait for the next round */
            tk_logf(NULL, TK_LOG_ERROR,
                    "outbox relay: out of memory at event row %s; the rest "
                    "waits for the next round",
                    PQgetvalue(rows, i, 0));
            n = i;
            break;
        }
        if (tk_produce(r->producer, PQgetvalue(rows, i, 1), key, PQgetvalue(rows, i, 3),
                       (size_t)PQgetlength(rows, i, 3), h, &d, (size_t)i))
            rd_kafka_headers_destroy(h);
    }
    if (tk_delivery_wait(&d, &r->stop) != 0) {
        /* stopping with messages in flight: withdraw them; the rows stay unsent */
        tk_producer_purge(r->producer);
        tk_delivery_wait(&d, NULL);
        tk_delivery_free(&d);
        PQclear(rows);
        return -2;
    }
    double t_acks = tk_seconds_since(&t0);
    /* delivered ones: sent; permanently refused ones: sent with the error, so the rest moves on */
    tk_buf ids = {0}, failed = {0};
    tk_buf_puts(&ids, "{");
    tk_buf_puts(&failed, "{");
    int published = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = d.errs[i];
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            tk_buf_printf(&ids, "%s%s", published++ ? "," : "", PQgetvalue(rows, i, 0));
            tk_metric_observe(r->m_latency, NULL, atof(PQgetvalue(rows, i, 5)));
        } else {
            tk_logf(NULL, TK_LOG_ERROR, "outbox relay: event row %s to %s refused: %s",
                    PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 1), rd_kafka_err2str(e));
            tk_buf_printf(&failed, "%s%s", refused++ ? "," : "", PQgetvalue(rows, i, 0));
        }
    }
    tk_buf_puts(&ids, "}");
    tk_buf_puts(&failed, "}");
    /* a failed mark leaves rows that were published unsent: a later round publishes them
     * again (at least once) */
    int rc = mark_sent(c, &ids, NULL) ? -1 : published;
    if (refused) {
        mark_sent(c, &failed, "refused by Kafka");
        tk_metric_add(r->m_failed, NULL, refused);
    }
    tk_metric_add(r->m_published, NULL, published);
    if (tk_log_enabled(TK_LOG_DEBUG))
        tk_logf(NULL, TK_LOG_DEBUG,
                "outbox relay: %d event(s): delivered in %.1f ms, marked in %.1f ms", n,
                t_acks * 1000, (tk_seconds_since(&t0) - t_acks) * 1000);
    tk_buf_free(&ids);
    tk_buf_free(&failed);
    tk_delivery_free(&d);
    PQclear(rows);
    return rc;
}

static void *relay_main(void *arg)
{
    tk_relay *r = arg;
    /* the first event to each topic then goes out at once, not after a topic scan */
    tk_producer_warm(r->producer, r->o.topics, 2000);
    PGconn *c = NULL;
    int leader = 0, backoff_ms = 200;
    struct timespec last_prune = {0}, last_backlog = {0};
    while (!atomic_load(&r->stop)) {
        if (!c || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            leader = 0;
            tk_metric_set(r->m_leader, NULL, 0);
            c = PQconnectdb(r->pg_url);
            if (PQstatus(c) != CONNECTION_OK || exec_ok(c, "LISTEN taskora_outbox")) {
                tk_logf(NULL, TK_LOG_WARN, "outbox relay: database unavailable, retrying");
                PQfinish(c);
                c = NULL;
                wait_for_work(r, NULL, backoff_ms);
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 200;
        }
        if (!leader) {
            PGresult *l = PQexec(c, "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")");
            leader = PQresultStatus(l) == PGRES_TUPLES_OK && strcmp(PQgetvalue(l, 0, 0), "t") == 0;
            PQclear(l);
            tk_metric_set(r->m_leader, NULL, leader);
            if (!leader) {
                wait_for_work(r, c, r->o.poll_ms);
                continue;
            }
            tk_logf(NULL, TK_LOG_INFO,
                    "outbox relay: publishing (this process holds the relay lock)");
        }
        int n = relay_round(r, c);
        if (n == -2)
            break;
        if (tk_seconds_since(&last_backlog) > 1) {
            update_backlog(r, c);
            clock_gettime(CLOCK_MONOTONIC, &last_backlog);
        }
        if (tk_seconds_since(&last_prune) > 5) {
            char keep[16];
            snprintf(keep, sizeof(keep), "%d", r->o.retention_s);
            const char *p[] = {keep};
            PQclear(PQexecParams(
                c,
                "DELETE FROM taskora_outbox WHERE sent_at < now() - make_interval(secs => $1::int)"
                " AND last_error IS NULL",
                1, NULL, p, NULL, NULL, 0));
            clock_gettime(CLOCK_MONOTONIC, &last_prune);
        }
        if (n == 0)
            wait_for_work(r, c, r->o.poll_ms);
        else if (n < 0)
            wait_for_work(r, NULL, r->o.poll_ms); /* e.g. not migrated yet: try again later */
    }
    PQfinish(c); /* ends the session: the lock goes to another relay */
    return NULL;
}

tk_relay *tk_relay_start(const tk_relay_options *o, tk_producer *producer, tk_metrics *metrics,
                         char *err, size_t errlen)
{
    tk_relay *r = calloc(1, sizeof(*r));
    if (!r || pipe(r->wake) != 0) {
        free(r);
        snprintf(err, errlen, "outbox relay: out of resources");
        return NULL;
    }
    r->o = *o;
    r->pg_url = strdup(o->pg_url);
    r->producer = producer;
    if (!r->pg_url) {
        close(r->wake[0]);
        close(r->wake[1]);
        free(r);
        snprintf(err, errlen, "outbox relay: out of memory");
        return NULL;
    }
    char e[256];
    static const double lat[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 30};
    r->m_published =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_outbox_published_total",
                          "Outbox events delivered to Kafka", NULL, NULL, 0, e, sizeof(e));
    r->m_failed =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_outbox_refused_total",
                          "Outbox events Kafka refused for good", NULL, NULL, 0, e, sizeof(e));
    r->m_backlog =
        tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_outbox_backlog",
                          "Outbox events not yet delivered", NULL, NULL, 0, e, sizeof(e));
    r->m_oldest = tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_outbox_oldest_age_seconds",
                                    "Age of the oldest undelivered outbox event", NULL, NULL, 0, e,
                                    sizeof(e));
    r->m_leader = tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_outbox_relay_leader",
                                    "1 while this process is the publishing relay", NULL, NULL, 0,
                                    e, sizeof(e));
    r->m_latency =
        tk_metrics_family(metrics, TK_METRIC_HISTOGRAM, "taskora_outbox_delivery_seconds",
                          "From the outbox row's insert to its delivery report", NULL, lat,
                          sizeof(lat) / sizeof(lat[0]), e, sizeof(e));
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        close(r->wake[0]);
        close(r->wake[1]);
        free(r->pg_url);
        free(r);
        snprintf(err, errlen, "outbox relay: cannot start its thread");
        return NULL;
    }
    return r;
}

void tk_relay_stop(tk_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    ssize_t w = write(r->wake[1], "x", 1);
    (void)w;
    pthread_join(r->thread, NULL);
    close(r->wake[0]);
    close(r->wake[1]);
    free(r->pg_url);
    free(r);
}

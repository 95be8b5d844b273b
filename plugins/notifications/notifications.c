/*
 * notifications: task reminders, fired exactly once by whichever pod claims them in PostgreSQL,
 * delivered in-app (the notifications table and its routes), as a task.reminder event, and by
 * signed webhook.
 *
 * The schedule is the database: tasks' reminder_at, reminder_sent and completed. A scheduler
 * thread sleeps until the earliest pending reminder (or poll_ms, or until a consumed task event
 * says the schedule may have changed), then claims due rows with FOR UPDATE SKIP LOCKED and, in
 * that one transaction, marks them sent, writes the notification rows, appends the events to the
 * outbox and queues the webhook deliveries. Nothing is kept in memory, so a restart, a second
 * pod or a lost event changes nothing: the next round reads the truth.
 *
 * Webhook deliveries are rows too, sent by a second thread: each is leased for the duration of
 * one resilient_call, then marked delivered, rescheduled with backoff, or given up after
 * webhook_max_attempts requests. A crash loses none (at worst a delivery is sent again once its
 * lease ends; receivers deduplicate by X-Taskora-Event-Id).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskora/plugin.h>

#define VERSION "0.1.0"
#define JSON_TYPE "application/json; charset=utf-8"
/* How long a claimed webhook delivery stays ours: longer than any sane resiliency policy
 * (timeout_ms, 60 s by default). A delivery whose sender died is retried when it ends. */
#define WEBHOOK_LEASE_S 300
/* Delivered webhook rows are kept this long (for inspection), then pruned. */
#define WEBHOOK_KEEP "1 day"
/* The longest pause between two rounds of a failing delivery. */
#define WEBHOOK_MAX_BACKOFF_MS 300000
/* The longest pause after a database error (the scheduler and the sender retry until stopped). */
#define MAX_ERROR_BACKOFF_MS 5000

typedef struct notif {
    const tk_host *host;
    tk_instance *inst;
    const char *task_topic;
    int scheduler;
    int64_t poll_ms, batch;
    const char *webhook_url, *webhook_secret;
    int64_t webhook_timeout_ms, webhook_max_attempts;
    char target[192]; /* resiliency target "webhook.<instance>" */

    tk_metric *m_fired, *m_lag, *m_webhook, *m_errors;

    pthread_mutex_t lock;
    pthread_cond_t sched_cond, hook_cond; /* CLOCK_MONOTONIC */
    int sched_wake, hook_wake;            /* coalesced signals, under lock */
    atomic_int stopping;
    pthread_t sched_thread, hook_thread;
    int sched_started, hook_started;
    int curl_ready;
} notif;

/* ---- small helpers --------------------------------------------------------------------------- */

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Sleeps up to ms on cond, returning early when *flag is set (then cleared) or on stop. */
static void wait_signal(notif *n, pthread_cond_t *cond, int *flag, int64_t ms)
{
    struct timespec until;
    deadline_after(&until, ms > 0 ? ms : 0);
    pthread_mutex_lock(&n->lock);
    while (!*flag && !atomic_load(&n->stopping))
        if (pthread_cond_timedwait(cond, &n->lock, &until) == ETIMEDOUT)
            break;
    *flag = 0;
    pthread_mutex_unlock(&n->lock);
}

static void signal_flag(notif *n, pthread_cond_t *cond, int *flag)
{
    pthread_mutex_lock(&n->lock);
    *flag = 1;
    pthread_cond_signal(cond);
    pthread_mutex_unlock(&n->lock);
}

/* A failed statement's code: unreachable when the connection broke, else a plain failure. */
static int pg_fail(notif *n, PGconn *conn, PGresult *r, const char *what)
{
    int broken = PQstatus(conn) == CONNECTION_BAD;
    const char *e = r ? PQresultErrorMessage(r) : "";
    n->host->log(n->inst, broken ? TK_LOG_WARN : TK_LOG_ERROR, "%s failed: %s", what,
                 *e ? e : PQerrorMessage(conn));
    PQclear(r);
    return broken ? TK_EUNAVAILABLE : TK_ERR;
}

static int pg_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

static void count_error(notif *n, const char *stage)
{
    const char *v[] = {stage};
    n->host->metric_add(n->m_errors, v, 1);
}

static int64_t error_backoff_ms(notif *n, int failures)
{
    int64_t ms = 250;
    for (int i = 1; i < failures && ms < MAX_ERROR_BACKOFF_MS; i++)
        ms *= 2;
    if (ms > MAX_ERROR_BACKOFF_MS)
        ms = MAX_ERROR_BACKOFF_MS;
    return ms < n->poll_ms ? ms : n->poll_ms;
}

/* ---- firing due reminders -------------------------------------------------------------------- */

/* Claims due reminders: the row lock makes one pod the owner, SKIP LOCKED lets the others
 * move on, and the re-check under the lock excludes a row another pod just marked sent. */
static const char CLAIM_SQL[] =
    "WITH due AS (SELECT id FROM tasks"
    " WHERE reminder_at IS NOT NULL AND reminder_at <= (now() AT TIME ZONE 'utc')"
    " AND NOT reminder_sent AND NOT completed"
    " ORDER BY reminder_at, id LIMIT $1::int FOR UPDATE SKIP LOCKED)"
    " UPDATE tasks t SET reminder_sent = true FROM due WHERE t.id = due.id"
    " RETURNING t.id, t.user_id, t.title, taskora_iso_utc(t.due_date),"
    " taskora_iso_utc(t.reminder_at), to_char(t.due_date, 'YYYY-MM-DD HH24:MI'),"
    " extract(epoch FROM (now() AT TIME ZONE 'utc') - t.reminder_at)::float8";

/* Milliseconds from now until the earliest pending reminder (NULL: none). */
static const char NEXT_SQL[] =
    "SELECT ceil(extract(epoch FROM min(reminder_at) - (clock_timestamp() AT TIME ZONE 'utc'))"
    " * 1000)::bigint FROM tasks"
    " WHERE reminder_at IS NOT NULL AND NOT reminder_sent AND NOT completed";

static const char NOTIFICATION_SQL[] =
    "INSERT INTO notifications (user_id, task_id, type, title, message, event_id)"
    " VALUES ($1, $2::int, 'reminder', $3, $4, $5)";

/* The webhook body is the event exactly as the outbox row holds it (the sequence value this
 * session just took identifies it; the id check makes sure); $3 is the same event built here,
 * used only if that row cannot be found. */
static const char DELIVERY_SQL[] =
    "INSERT INTO notification_webhooks (instance, event_id, body) VALUES ($1, $2, coalesce("
    "(SELECT value FROM taskora_outbox"
    " WHERE id = currval(pg_get_serial_sequence('taskora_outbox', 'id'))"
    " AND value::jsonb->>'id' = $2), $3))";

typedef struct claim {
    notif *n;
    int fired;
    int queued; /* webhook deliveries */
    int64_t next_ms;
    int has_next;
    double lags[1000];
} claim;

/* The CloudEvent for the webhook fallback body (see DELIVERY_SQL). Malloc'd. */
static char *fallback_body(notif *n, const char *id, const char *user, const char *subject,
                           json_t *payload)
{
    char now[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(now + k, sizeof(now) - k, ".%06ld+00:00", ts.tv_nsec / 1000);
    json_t *ce = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:O}}", "specversion",
                           "1.0", "id", id, "source", n->host->app_id(n->inst), "type",
                           "task.reminder", "time", now, "datacontenttype", "application/json",
                           "subject", subject, "data", "event_id", id, "event_type",
                           "task.reminder", "timestamp", now, "user_id", user, "payload", payload);
    char *text = ce ? json_dumps(ce, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ce);
    return text;
}

/* One reminder: its event, its notification row and its webhook delivery. */
static int fire_one(notif *n, PGconn *conn, PGresult *r, int i)
{
    const char *id = PQgetvalue(r, i, 0), *user = PQgetvalue(r, i, 1), *title = PQgetvalue(r, i, 2);
    json_t *payload =
        json_pack("{s:I,s:s,s:s?,s:s,s:s}", "task_id", (json_int_t)strtoll(id, NULL, 10), "title",
                  title, "due_date", PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
                  "reminder_at", PQgetvalue(r, i, 4), "reminder_type", "custom");
    char *payload_text = payload ? json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!payload_text) {
        json_decref(payload);
        return TK_ENOMEM;
    }
    char event_id[37] = "";
    int rc = n->host->outbox_append(n->inst, conn, n->task_topic, "task.reminder", user, id,
                                    payload_text, NULL, event_id);
    free(payload_text);
    if (rc < 0) {
        json_decref(payload);
        return PQstatus(conn) == CONNECTION_BAD ? TK_EUNAVAILABLE : rc;
    }
    char message[512];
    if (PQgetisnull(r, i, 5))
        snprintf(message, sizeof(message), "Reminder: %s", title);
    else
        snprintf(message, sizeof(message), "Reminder: %s (due %s UTC)", title, PQgetvalue(r, i, 5));
    const char *np[] = {user, id, title, message, event_id};
    PGresult *x = PQexecParams(conn, NOTIFICATION_SQL, 5, NULL, np, NULL, NULL, 0);
    if (!pg_ok(x)) {
        json_decref(payload);
        return pg_fail(n, conn, x, "inserting a notification");
    }
    PQclear(x);
    if (*n->webhook_url) {
        char *body = fallback_body(n, event_id, user, id, payload);
        const char *dp[] = {n->host->instance_name(n->inst), event_id, body};
        x = body ? PQexecParams(conn, DELIVERY_SQL, 3, NULL, dp, NULL, NULL, 0) : NULL;
        free(body);
        if (!pg_ok(x)) {
            json_decref(payload);
            return x ? pg_fail(n, conn, x, "queueing a webhook delivery") : TK_ENOMEM;
        }
        PQclear(x);
    }
    json_decref(payload);
    if (n->host->log_enabled(n->inst, TK_LOG_DEBUG))
        n->host->log_kv(n->inst, TK_LOG_DEBUG, "reminder fired", "task_id", id, "user_id", user,
                        "event_id", event_id, NULL);
    return TK_OK;
}

/* pg_tx work: claims up to `batch` due reminders and fires each; then reads the next due time. */
static int claim_fn(void *conn_v, void *ud)
{
    PGconn *conn = conn_v;
    claim *c = ud;
    notif *n = c->n;
    char limit[24];
    snprintf(limit, sizeof(limit), "%lld", (long long)n->batch);
    const char *p[] = {limit};
    PGresult *r = PQexecParams(conn, CLAIM_SQL, 1, NULL, p, NULL, NULL, 0);
    if (!pg_ok(r))
        return pg_fail(n, conn, r, "claiming due reminders");
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        int rc = fire_one(n, conn, r, i);
        if (rc < 0) {
            PQclear(r);
            return rc;
        }
        c->lags[i] = strtod(PQgetvalue(r, i, 6), NULL);
    }
    PQclear(r);
    c->fired = rows;
    c->queued = *n->webhook_url ? rows : 0;
    if (rows < n->batch) {
        r = PQexec(conn, NEXT_SQL);
        if (!pg_ok(r))
            return pg_fail(n, conn, r, "reading the next reminder's time");
        c->has_next = !PQgetisnull(r, 0, 0);
        c->next_ms = c->has_next ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        PQclear(r);
    }
    return TK_OK;
}

/* One scheduler round: fires everything due (batch by batch); *wait_ms = time to the next. */
static int scheduler_round(notif *n, int64_t *wait_ms)
{
    claim *c = malloc(sizeof(*c));
    if (!c)
        return TK_ENOMEM;
    int rc;
    for (;;) {
        memset(c, 0, offsetof(claim, lags));
        c->n = n;
        rc = n->host->pg_tx(n->inst, claim_fn, c);
        if (rc < 0)
            break;
        if (c->fired > 0) {
            n->host->metric_add(n->m_fired, NULL, c->fired);
            for (int i = 0; i < c->fired; i++)
                n->host->metric_observe(n->m_lag, NULL, c->lags[i] > 0 ? c->lags[i] : 0);
            n->host->log(n->inst, TK_LOG_INFO, "fired %d reminder(s)", c->fired);
        }
        if (c->queued > 0)
            signal_flag(n, &n->hook_cond, &n->hook_wake);
        if (c->fired < n->batch || atomic_load(&n->stopping))
            break;
    }
    if (rc >= 0) {
        *wait_ms = n->poll_ms;
        if (c->has_next && c->next_ms < *wait_ms)
            /* a due row we could not claim is being fired by another pod: look again soon */
            *wait_ms = c->next_ms > 0 ? c->next_ms : 20;
    }
    free(c);
    return rc;
}

static void *scheduler_main(void *arg)
{
    notif *n = arg;
    int failures = 0;
    n->host->log(n->inst, TK_LOG_INFO, "scheduler started (poll %lld ms, batch %lld)",
                 (long long)n->poll_ms, (long long)n->batch);
    while (!atomic_load(&n->stopping)) {
        int64_t wait_ms = n->poll_ms;
        int rc = scheduler_round(n, &wait_ms);
        if (rc < 0) {
            count_error(n, "scheduler");
            if (++failures == 1)
                n->host->log(n->inst, TK_LOG_WARN,
                             "scheduler: %s; due reminders wait until the database answers "
                             "(retrying with backoff)",
                             tk_strerror(rc));
            wait_ms = error_backoff_ms(n, failures);
        } else if (failures) {
            n->host->log(n->inst, TK_LOG_INFO,
                         "scheduler: the database answers again (after %d "
                         "failed round(s))",
                         failures);
            failures = 0;
        }
        wait_signal(n, &n->sched_cond, &n->sched_wake, wait_ms);
    }
    return NULL;
}

/* ---- webhook deliveries ---------------------------------------------------------------------- */

/* Takes the oldest due delivery of this instance and leases it; counts nothing yet. */
static const char LEASE_SQL[] =
    "UPDATE notification_webhooks w SET lease_until = now() + make_interval(secs => $2::int)"
    " WHERE w.id = (SELECT id FROM notification_webhooks WHERE instance = $1"
    " AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()"
    " AND (lease_until IS NULL OR lease_until <= now())"
    " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING w.id, w.event_id, w.body, w.attempts";

/* Milliseconds until the next delivery of this instance is due (NULL: none). */
static const char HOOK_NEXT_SQL[] =
    "SELECT ceil(extract(epoch FROM min(greatest(next_attempt_at, coalesce(lease_until,"
    " next_attempt_at))) - clock_timestamp()) * 1000)::bigint FROM notification_webhooks"
    " WHERE instance = $1 AND delivered_at IS NULL AND failed_at IS NULL";

typedef struct delivery {
    notif *n;
    char id[24], event_id[40];
    char *body;
    size_t body_len;
    int64_t attempts_before; /* requests made in earlier rounds */
    int64_t made;            /* requests made in this round */
    long status;             /* the last answer's status, 0 without one */
    int cancelled;           /* stopped mid-call */
    char signature[80];      /* "sha256=<hex>" */
} delivery;

typedef struct header_capture {
    char retry_after[64];
} header_capture;

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    header_capture *h = ud;
    size_t len = size * nmemb;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        size_t v = sizeof(name) - 1;
        while (v < len && (ptr[v] == ' ' || ptr[v] == '\t'))
            v++;
        size_t e = len;
        while (e > v && (ptr[e - 1] == '\r' || ptr[e - 1] == '\n' || ptr[e - 1] == ' '))
            e--;
        snprintf(h->retry_after, sizeof(h->retry_after), "%.*s", (int)(e - v), ptr + v);
    }
    return len;
}

/* Aborts a transfer in progress when the plugin stops. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    notif *n = ud;
    return atomic_load(&n->stopping) ? 1 : 0;
}

/* Retry-After in delay-seconds (HTTP dates are rare from webhook receivers: ignored). */
static int64_t retry_after_ms(const char *v)
{
    if (!*v)
        return -1;
    char *end;
    double s = strtod(v, &end);
    if (end == v || *end || s < 0 || s > 86400)
        return -1;
    return (int64_t)(s * 1000.0 + 0.5);
}

/* One HTTP request of a delivery, for resilient_call. */
static int webhook_attempt(void *ud, tk_failure *f)
{
    delivery *d = ud;
    notif *n = d->n;
    if (atomic_load(&n->stopping)) {
        d->cancelled = 1;
        f->kind = TK_FAIL_BAD_REQUEST; /* not retried, and the target is not blamed */
        snprintf(f->message, sizeof(f->message), "cancelled: the plugin is stopping");
        return TK_ERR;
    }
    if (d->attempts_before + d->made >= n->webhook_max_attempts) {
        f->kind = TK_FAIL_BAD_REQUEST;
        snprintf(f->message, sizeof(f->message), "all %lld attempts used",
                 (long long)n->webhook_max_attempts);
        return TK_ERR;
    }
    d->made++;
    d->status = 0;
    CURL *c = curl_easy_init();
    if (!c) {
        f->kind = TK_FAIL_UNAVAILABLE;
        snprintf(f->message, sizeof(f->message), "libcurl could not start a request");
        return TK_ENOMEM;
    }
    char sig_line[128], id_line[96], ua[64];
    snprintf(sig_line, sizeof(sig_line), "X-Taskora-Signature: %s", d->signature);
    snprintf(id_line, sizeof(id_line), "X-Taskora-Event-Id: %s", d->event_id);
    snprintf(ua, sizeof(ua), "taskora-notifications/%s", VERSION);
    const char *lines[] = {"Content-Type: application/json", "X-Taskora-Event-Type: task.reminder",
                           sig_line, id_line, "Expect:"};
    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct curl_slist *h = curl_slist_append(headers, lines[i]);
        if (!h) {
            curl_slist_free_all(headers);
            curl_easy_cleanup(c);
            f->kind = TK_FAIL_UNAVAILABLE;
            snprintf(f->message, sizeof(f->message), "out of memory");
            return TK_ENOMEM;
        }
        headers = h;
    }
    header_capture hc = {{0}};
    char errbuf[CURL_ERROR_SIZE] = "";
    long timeout = (long)n->webhook_timeout_ms;
    curl_easy_setopt(c, CURLOPT_URL, n->webhook_url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hc);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            d->cancelled = 1;
            f->kind = TK_FAIL_BAD_REQUEST;
            snprintf(f->message, sizeof(f->message), "cancelled: the plugin is stopping");
            return TK_ERR;
        }
        f->kind = cc == CURLE_OPERATION_TIMEDOUT ? TK_FAIL_TIMEOUT : TK_FAIL_UNAVAILABLE;
        snprintf(f->message, sizeof(f->message), "%s", *errbuf ? errbuf : curl_easy_strerror(cc));
        return f->kind == TK_FAIL_TIMEOUT ? TK_ETIMEDOUT : TK_EUNAVAILABLE;
    }
    d->status = status;
    f->http_status = (int)status;
    if (status >= 200 && status < 300)
        return TK_OK;
    f->kind = status == 408 || status >= 500 || status < 200 ? TK_FAIL_UNAVAILABLE
              : status == 429                                ? TK_FAIL_RATE_LIMITED
              : status == 401 || status == 403               ? TK_FAIL_AUTH
                                                             : TK_FAIL_BAD_REQUEST;
    f->retry_after_ms = retry_after_ms(hc.retry_after);
    snprintf(f->message, sizeof(f->message), "the webhook answered HTTP %ld", status);
    return TK_ERR;
}

/* Runs a statement on a pooled connection; 0 ok, else the pool's or the statement's code. */
static int exec_pooled(notif *n, const char *sql, int np, const char *const *p, PGresult **out,
                       const char *what)
{
    tk_pg *pg;
    int rc = n->host->pg_acquire(n->inst, -1, &pg);
    if (rc < 0)
        return rc;
    PGconn *conn = n->host->pg_conn(pg);
    PGresult *r = PQexecParams(conn, sql, np, NULL, p, NULL, NULL, 0);
    if (!pg_ok(r))
        rc = pg_fail(n, conn, r, what);
    else if (out)
        *out = r;
    else
        PQclear(r);
    n->host->pg_release(pg);
    return rc;
}

static void sign(notif *n, delivery *d)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), n->webhook_secret, (int)strlen(n->webhook_secret),
         (const unsigned char *)d->body, d->body_len, mac, &len);
    static const char hex[] = "0123456789abcdef";
    char *o = d->signature + snprintf(d->signature, sizeof(d->signature), "sha256=");
    for (unsigned int i = 0; i < len && i < 32; i++) {
        *o++ = hex[mac[i] >> 4];
        *o++ = hex[mac[i] & 15];
    }
    *o = '\0';
}

/* Writes a delivery's outcome; keeps trying while the database is away (unless stopping), so
 * a delivered webhook is not sent again. */
static void record(notif *n, const char *sql, int np, const char *const *p)
{
    for (int failures = 0;; failures++) {
        int rc = exec_pooled(n, sql, np, p, NULL, "recording a webhook delivery");
        if (rc >= 0)
            return;
        count_error(n, "webhook");
        if (atomic_load(&n->stopping)) {
            n->host->log(n->inst, TK_LOG_WARN,
                         "webhook delivery %s: its outcome could not be recorded (%s); it will "
                         "be tried again when its lease ends",
                         p[0], tk_strerror(rc));
            return;
        }
        int dummy = 0;
        wait_signal(n, &n->hook_cond, &dummy, error_backoff_ms(n, failures + 1));
    }
}

static void count_delivery(notif *n, const char *outcome)
{
    const char *v[] = {outcome};
    n->host->metric_add(n->m_webhook, v, 1);
}

/* Sends one leased delivery through the resiliency policy and records what happened. */
static void deliver(notif *n, PGresult *r)
{
    delivery d = {.n = n};
    snprintf(d.id, sizeof(d.id), "%s", PQgetvalue(r, 0, 0));
    snprintf(d.event_id, sizeof(d.event_id), "%s", PQgetvalue(r, 0, 1));
    d.body = PQgetvalue(r, 0, 2);
    d.body_len = (size_t)PQgetlength(r, 0, 2);
    d.attempts_before = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    sign(n, &d);
    tk_failure f;
    memset(&f, 0, sizeof(f));
    int rc = n->host->resilient_call(n->inst, n->target, webhook_attempt, &d, &f);
    char made[24], status[24], delay[24];
    snprintf(made, sizeof(made), "%lld", (long long)d.made);
    snprintf(status, sizeof(status), "%ld", d.status);
    if (rc >= 0) {
        const char *p[] = {d.id, made, status};
        record(n,
               "UPDATE notification_webhooks SET delivered_at = now(), lease_until = NULL,"
               " attempts = attempts + $2::int, last_status = $3::int, last_error = NULL"
               " WHERE id = $1::bigint",
               3, p);
        count_delivery(n, "delivered");
        n->host->log_kv(n->inst, TK_LOG_INFO, "webhook delivered", "event_id", d.event_id,
                        "attempts", made, NULL);
        return;
    }
    if (d.cancelled) {
        /* stopping: free it for the next sender at once (a request cut short may have
         * arrived; receivers deduplicate by event id) */
        const char *p[] = {d.id, made};
        record(n,
               "UPDATE notification_webhooks SET lease_until = NULL,"
               " attempts = attempts + $2::int WHERE id = $1::bigint",
               2, p);
        return;
    }
    int64_t total = d.attempts_before + d.made;
    int give_up = total >= n->webhook_max_attempts;
    int64_t wait_ms;
    if (rc == TK_EUNAVAILABLE && d.made == 0) { /* the circuit is open: nothing was sent */
        wait_ms = f.retry_after_ms > 0 ? f.retry_after_ms : 1000;
        give_up = 0;
        count_delivery(n, "circuit_open");
    } else {
        wait_ms = 1000;
        for (int64_t i = 1; i < total && wait_ms < WEBHOOK_MAX_BACKOFF_MS; i++)
            wait_ms *= 2;
        if (wait_ms > WEBHOOK_MAX_BACKOFF_MS)
            wait_ms = WEBHOOK_MAX_BACKOFF_MS;
        if (f.retry_after_ms > wait_ms)
            wait_ms = f.retry_after_ms < 3600000 ? f.retry_after_ms : 3600000;
        count_delivery(n, give_up ? "gave_up" : "failed");
    }
    snprintf(delay, sizeof(delay), "%lld", (long long)wait_ms);
    const char *p[] = {d.id, made, status, f.message, delay, give_up ? "t" : "f"};
    record(n,
           "UPDATE notification_webhooks SET lease_until = NULL, attempts = attempts + $2::int,"
           " last_status = nullif($3::int, 0), last_error = $4,"
           " next_attempt_at = now() + make_interval(secs => $5::bigint / 1000.0),"
           " failed_at = CASE WHEN $6::bool THEN now() END WHERE id = $1::bigint",
           6, p);
    n->host->log_kv(n->inst, give_up ? TK_LOG_ERROR : TK_LOG_WARN,
                    give_up ? "webhook delivery given up" : "webhook delivery failed; will retry",
                    "event_id", d.event_id, "error", f.message, "attempts", made, "retry_in_ms",
                    give_up ? "-" : delay, NULL);
}

static void *webhook_main(void *arg)
{
    notif *n = arg;
    const char *name = n->host->instance_name(n->inst);
    int failures = 0;
    time_t last_prune = 0;
    while (!atomic_load(&n->stopping)) {
        int64_t wait_ms = n->poll_ms;
        char lease[24];
        snprintf(lease, sizeof(lease), "%d", WEBHOOK_LEASE_S);
        const char *p[] = {name, lease};
        PGresult *r = NULL;
        int rc = exec_pooled(n, LEASE_SQL, 2, p, &r, "leasing a webhook delivery");
        if (rc >= 0 && PQntuples(r) == 1) {
            deliver(n, r);
            PQclear(r);
            failures = 0;
            continue; /* there may be more */
        }
        PQclear(r);
        r = NULL;
        if (rc >= 0) {
            rc = exec_pooled(n, HOOK_NEXT_SQL, 1, p, &r, "reading the next webhook delivery");
            if (rc >= 0 && !PQgetisnull(r, 0, 0)) {
                int64_t next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                wait_ms = next < wait_ms ? (next > 0 ? next : 20) : wait_ms;
            }
            PQclear(r);
        }
        if (rc >= 0 && time(NULL) - last_prune > 3600) {
            const char *pp[] = {name};
            if (exec_pooled(n,
                            "DELETE FROM notification_webhooks WHERE instance = $1"
                            " AND delivered_at < now() - interval '" WEBHOOK_KEEP "'",
                            1, pp, NULL, "pruning delivered webhooks") >= 0)
                last_prune = time(NULL);
        }
        if (rc < 0) {
            count_error(n, "webhook");
            if (++failures == 1)
                n->host->log(n->inst, TK_LOG_WARN,
                             "webhook sender: %s; deliveries wait until the database answers",
                             tk_strerror(rc));
            wait_ms = error_backoff_ms(n, failures);
        } else {
            failures = 0;
        }
        wait_signal(n, &n->hook_cond, &n->hook_wake, wait_ms);
    }
    return NULL;
}

/* ---- consuming task events ------------------------------------------------------------------- */

/*
 * Task events only tell the scheduler to look again (the database already holds the change
 * when its event arrives, since the event was committed with it). Cheap, never fails: events
 * it has no use for are simply done.
 */
static tk_consume_result consume(void *state, const tk_event *ev)
{
    notif *n = state;
    if (!n->scheduler || ev->struct_size < offsetof(tk_event, type) + sizeof(ev->type) ||
        !ev->type || strncmp(ev->type, "task.", 5) != 0)
        return TK_CONSUME_OK;
    /* a deletion or a reminder fired can only remove pending reminders: the scheduler's
     * next wake-up stays right */
    if (strcmp(ev->type, "task.reminder") == 0 || strcmp(ev->type, "task.deleted") == 0)
        return TK_CONSUME_OK;
    signal_flag(n, &n->sched_cond, &n->sched_wake);
    return TK_CONSUME_OK;
}

/* ---- routes ---------------------------------------------------------------------------------- */

#define NOTIFICATION_JSON(x)                                                                       \
    "json_build_object('id', " x ".id, 'task_id', " x ".task_id, 'type', " x ".type, 'title', " x  \
    ".title, 'message', " x ".message, 'created_at', taskora_iso_utc(" x                           \
    ".created_at), 'read_at', taskora_iso_utc(" x ".read_at))"

static int send_text(notif *n, tk_http_response *resp, int status, const char *text)
{
    n->host->http_status(resp, status);
    return n->host->http_set_body(resp, JSON_TYPE, text, strlen(text));
}

/* 422 in the API's shape for one bad query or path value. */
static int send_invalid(notif *n, tk_http_response *resp, const char *where, const char *field,
                        const char *msg, const char *type)
{
    json_t *body = json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", where, field, "msg", msg,
                             "type", type);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text)
        return TK_ENOMEM;
    int rc = send_text(n, resp, 422, text);
    free(text);
    return rc;
}

static int send_db_error(notif *n, tk_http_response *resp, int rc)
{
    if (rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT) {
        n->host->http_set_header(resp, "Retry-After", "1");
        return send_text(n, resp, 503, "{\"detail\":\"Database unavailable\"}");
    }
    return rc < 0 ? rc : TK_ERR;
}

/* The caller's user id, or 0 after the answer was sent (401, or 503 without authenticator). */
static int authenticate(notif *n, const tk_http_request *req, tk_http_response *resp, char *user,
                        size_t len)
{
    if (n->host->struct_size < offsetof(tk_host, http_authenticate) + sizeof(void *) ||
        !n->host->http_authenticate) {
        send_text(n, resp, 503, "{\"detail\":\"No authenticator is loaded\"}");
        return 0;
    }
    return n->host->http_authenticate(req, resp, user, len, 0);
}

/* An integer query value in [lo, hi]; -1 (after answering 422) when it is not. */
static int64_t query_int(notif *n, const tk_http_request *req, tk_http_response *resp,
                         const char *name, int64_t dflt, int64_t lo, int64_t hi)
{
    const char *v = n->host->http_query(req, name);
    if (!v)
        return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) {
        send_invalid(n, resp, "query", name,
                     "Input should be a valid integer, unable to parse string as an integer",
                     "int_parsing");
        return -1;
    }
    if (x < lo || x > hi) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Input should be %s %lld",
                 x < lo ? "greater than or equal to" : "less than or equal to",
                 x < lo ? (long long)lo : (long long)hi);
        send_invalid(n, resp, "query", name, msg,
                     x < lo ? "greater_than_equal" : "less_than_equal");
        return -1;
    }
    return x;
}

/* Runs a one-value query (the JSON text of the answer) on a pooled connection. *out is malloc'd,
 * NULL when the query returned no row. */
static int query_text(notif *n, const char *sql, int np, const char *const *p, char **out)
{
    PGresult *r = NULL;
    *out = NULL;
    int rc = exec_pooled(n, sql, np, p, &r, "a notifications query");
    if (rc < 0)
        return rc;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) && !(*out = strdup(PQgetvalue(r, 0, 0))))
        rc = TK_ENOMEM;
    PQclear(r);
    return rc;
}

/* GET /api/notifications[?unread=true&limit=100&offset=0]: the caller's, newest first. */
static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    notif *n = ud;
    char user[64];
    if (!authenticate(n, req, resp, user, sizeof(user)))
        return TK_OK;
    const char *u = n->host->http_query(req, "unread");
    int unread = u ? tk_bool_word(u) : 0;
    if (unread < 0)
        return send_invalid(n, resp, "query", "unread",
                            "Input should be a valid boolean, unable to interpret input",
                            "bool_parsing");
    int64_t limit = query_int(n, req, resp, "limit", 100, 1, 1000);
    if (limit < 0)
        return TK_OK;
    int64_t offset = query_int(n, req, resp, "offset", 0, 0, INT64_C(1) << 40);
    if (offset < 0)
        return TK_OK;
    char ls[24], os[24];
    snprintf(ls, sizeof(ls), "%lld", (long long)limit);
    snprintf(os, sizeof(os), "%lld", (long long)offset);
    const char *p[] = {user, unread ? "t" : "f", ls, os};
    char *text = NULL;
    int rc = query_text(
        n,
        "SELECT coalesce(json_agg(" NOTIFICATION_JSON(
            "x") " ORDER BY x.created_at DESC, x.id"
                 " DESC), '[]')::text FROM (SELECT * FROM notifications WHERE user_id = $1"
                 " AND (NOT $2::bool OR read_at IS NULL) ORDER BY created_at DESC, id DESC"
                 " LIMIT $3::int OFFSET $4::bigint) x",
        4, p, &text);
    if (rc < 0)
        return send_db_error(n, resp, rc);
    rc = send_text(n, resp, 200, text ? text : "[]");
    free(text);
    return rc;
}

/* POST /api/notifications/{id}/read: marks it read (the first read time stays) and answers it. */
static int route_read(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    notif *n = ud;
    char user[64];
    if (!authenticate(n, req, resp, user, sizeof(user)))
        return TK_OK;
    const char *id = n->host->http_param(req, "notification_id");
    char *end = NULL;
    errno = 0;
    long long v = id && *id ? strtoll(id, &end, 10) : 0;
    if (!id || !*id || *end || errno)
        return send_invalid(n, resp, "path", "notification_id",
                            "Input should be a valid integer, unable to parse string as an integer",
                            "int_parsing");
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", v);
    const char *p[] = {ids, user};
    char *text = NULL;
    int rc = query_text(n,
                        "WITH x AS (UPDATE notifications SET read_at = coalesce(read_at,"
                        " now() AT TIME ZONE 'utc') WHERE id = $1::bigint AND user_id = $2"
                        " RETURNING *) SELECT " NOTIFICATION_JSON("x") "::text FROM x",
                        2, p, &text);
    if (rc < 0)
        return send_db_error(n, resp, rc);
    rc = text ? send_text(n, resp, 200, text)
              : send_text(n, resp, 404, "{\"detail\":\"Notification not found\"}");
    free(text);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void state_free(notif *n)
{
    if (n->curl_ready)
        curl_global_cleanup();
    pthread_cond_destroy(&n->sched_cond);
    pthread_cond_destroy(&n->hook_cond);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    notif *n = calloc(1, sizeof(*n));
    if (!n)
        return TK_ENOMEM;
    n->host = host;
    n->inst = inst;
    n->task_topic = host->config_string(inst, "task_topic");
    n->scheduler = host->config_bool(inst, "scheduler");
    n->poll_ms = host->config_int(inst, "poll_ms");
    n->batch = host->config_int(inst, "batch");
    n->webhook_url = host->config_string(inst, "webhook_url");
    n->webhook_secret = host->config_string(inst, "webhook_secret");
    n->webhook_timeout_ms = host->config_int(inst, "webhook_timeout_ms");
    n->webhook_max_attempts = host->config_int(inst, "webhook_max_attempts");
    snprintf(n->target, sizeof(n->target), "webhook.%s", host->instance_name(inst));
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->sched_cond, &ca);
    pthread_cond_init(&n->hook_cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&n->stopping, 0);

    const char *bad = !n->task_topic || !*n->task_topic ? "task_topic must not be empty"
                      : n->poll_ms < 10 || n->poll_ms > 3600000
                          ? "poll_ms must be between 10 and 3600000"
                      : n->batch < 1 || n->batch > 1000 ? "batch must be between 1 and 1000"
                      : n->webhook_timeout_ms < 100 || n->webhook_timeout_ms > 600000
                          ? "webhook_timeout_ms must be between 100 and 600000"
                      : n->webhook_max_attempts < 1 || n->webhook_max_attempts > 1000
                          ? "webhook_max_attempts must be between 1 and 1000"
                      : !n->webhook_url || !n->webhook_secret ? "webhook_url and webhook_secret"
                                                                " must be strings"
                      : *n->webhook_url && strncmp(n->webhook_url, "http://", 7) != 0 &&
                              strncmp(n->webhook_url, "https://", 8) != 0
                          ? "webhook_url must be an http:// or https:// URL (or \"\" for none)"
                      : *n->webhook_url && !*n->webhook_secret
                          ? "webhook_secret is empty: webhooks are always signed, set a secret "
                            "the receiver shares (or set webhook_url to \"\")"
                          : NULL;
    if (bad) {
        host->log(inst, TK_LOG_ERROR, "config.%s", bad);
        state_free(n);
        return TK_EINVAL;
    }
    if (host->struct_size < offsetof(tk_host, resilient_call) + sizeof(void *) ||
        (*n->webhook_url && !host->resilient_call)) {
        host->log(inst, TK_LOG_ERROR, "this taskorad has no resilient_call (ABI < 1.3)");
        state_free(n);
        return TK_EINVAL;
    }
    if (*n->webhook_url) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            host->log(inst, TK_LOG_ERROR, "libcurl failed to initialise");
            state_free(n);
            return TK_ERR;
        }
        n->curl_ready = 1;
    }

    static const char *const outcome[] = {"outcome", NULL}, *const stage[] = {"stage", NULL};
    static const double lag_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    n->m_fired =
        host->metric_counter(inst, "taskora_notifications_reminders_fired_total",
                             "Reminders fired (each once, by the pod that claimed it)", NULL);
    n->m_lag = host->metric_histogram(inst, "taskora_notifications_reminder_delay_seconds",
                                      "Time from a reminder's reminder_at to its firing", NULL,
                                      lag_buckets, sizeof(lag_buckets) / sizeof(lag_buckets[0]));
    n->m_webhook = host->metric_counter(
        inst, "taskora_notifications_webhook_deliveries_total",
        "Webhook delivery rounds by outcome (delivered, failed, gave_up, circuit_open)", outcome);
    n->m_errors =
        host->metric_counter(inst, "taskora_notifications_errors_total",
                             "Database errors of the scheduler and the webhook sender", stage);
    if (!n->m_fired || !n->m_lag || !n->m_webhook || !n->m_errors) {
        state_free(n);
        return TK_ERR;
    }

    if (host->config_bool(inst, "routes")) {
        int rc = host->http_route(inst, "GET", "/api/notifications", route_list, n);
        if (rc == TK_OK)
            rc = host->http_route(inst, "POST", "/api/notifications/{notification_id}/read",
                                  route_read, n);
        if (rc == TK_EUNAVAILABLE) {
            host->log(inst, TK_LOG_INFO,
                      "HTTP is disabled in this process: the notification "
                      "routes are not served (set routes to false to say so)");
        } else if (rc < 0) {
            state_free(n);
            return rc;
        }
    }
    if (*n->webhook_url && !n->scheduler)
        host->log(inst, TK_LOG_INFO,
                  "webhook_url is set but scheduler is false: this process "
                  "sends no webhooks (the scheduler pods do)");
    *state = n;
    return TK_OK;
}

static int start(void *state)
{
    notif *n = state;
    if (!n->scheduler)
        return TK_OK;
    if (pthread_create(&n->sched_thread, NULL, scheduler_main, n) != 0) {
        n->host->log(n->inst, TK_LOG_ERROR, "could not start the scheduler thread");
        return TK_ERR;
    }
    n->sched_started = 1;
    if (*n->webhook_url) {
        if (pthread_create(&n->hook_thread, NULL, webhook_main, n) != 0) {
            n->host->log(n->inst, TK_LOG_ERROR, "could not start the webhook thread");
            return TK_ERR; /* stop() joins the scheduler */
        }
        n->hook_started = 1;
    }
    return TK_OK;
}

static void stop(void *state)
{
    notif *n = state;
    pthread_mutex_lock(&n->lock);
    atomic_store(&n->stopping, 1);
    pthread_cond_broadcast(&n->sched_cond);
    pthread_cond_broadcast(&n->hook_cond);
    pthread_mutex_unlock(&n->lock);
    if (n->sched_started)
        pthread_join(n->sched_thread, NULL);
    if (n->hook_started)
        pthread_join(n->hook_thread, NULL);
    n->sched_started = n->hook_started = 0;
}

static void destroy(void *state)
{
    notif *n = state;
    if (!n)
        return;
    stop(n); /* in case start() succeeded but stop() was never called */
    state_free(n);
}

static const tk_config_field config[] = {
    {"task_topic", TK_CFG_STRING, 0, "\"task-events\"", NULL,
     "topic of task events; task.reminder is published there", NULL, TK_CFG_NO_RANGE},
    {"scheduler", TK_CFG_BOOL, 0, "true", NULL,
     "fire due reminders (and send webhooks) from this process", NULL, TK_CFG_NO_RANGE},
    {"routes", TK_CFG_BOOL, 0, "true", NULL,
     "serve GET /api/notifications and POST /api/notifications/{id}/read (needs HTTP and an "
     "authenticator such as http_api in the process)",
     NULL, TK_CFG_NO_RANGE},
    {"poll_ms", TK_CFG_INT, 0, "5000", NULL,
     "longest sleep of the scheduler and the webhook sender between looks at the database", NULL,
     TK_CFG_NO_RANGE},
    {"batch", TK_CFG_INT, 0, "100", NULL, "reminders claimed per transaction (1..1000)", NULL,
     TK_CFG_NO_RANGE},
    {"webhook_url", TK_CFG_STRING, 0, "\"\"", NULL, "POST each task.reminder here (\"\": off)",
     NULL, TK_CFG_NO_RANGE},
    {"webhook_secret", TK_CFG_STRING, 0, "\"\"", NULL,
     "HMAC-SHA256 key of X-Taskora-Signature (required with webhook_url)", NULL, TK_CFG_NO_RANGE},
    {"webhook_timeout_ms", TK_CFG_INT, 0, "5000", NULL, "one webhook request's time limit", NULL,
     TK_CFG_NO_RANGE},
    {"webhook_max_attempts", TK_CFG_INT, 0, "10", NULL,
     "webhook requests per event in all (retries and later rounds); then it is given up", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

/* Tables this plugin owns. Append steps; never edit a shipped one. No foreign key to tasks:
 * a worker's database may be migrated before the API's. */
static const char *const migrations[] = {
    /* 1: in-app notifications and the webhook deliveries waiting to be sent */
    "CREATE TABLE IF NOT EXISTS notifications ("
    " id BIGSERIAL PRIMARY KEY,"
    " user_id VARCHAR NOT NULL,"
    " task_id INTEGER,"
    " type VARCHAR(32) NOT NULL DEFAULT 'reminder',"
    " title VARCHAR NOT NULL,"
    " message TEXT NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " read_at TIMESTAMP WITHOUT TIME ZONE,"
    " event_id TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_notifications_user_created"
    " ON notifications (user_id, created_at DESC, id DESC);"
    "CREATE INDEX IF NOT EXISTS ix_notifications_user_unread"
    " ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;"
    "CREATE TABLE IF NOT EXISTS notification_webhooks ("
    " id BIGSERIAL PRIMARY KEY,"
    " instance TEXT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " lease_until TIMESTAMPTZ,"
    " delivered_at TIMESTAMPTZ,"
    " failed_at TIMESTAMPTZ,"
    " last_status INTEGER,"
    " last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_notification_webhooks_pending"
    " ON notification_webhooks (instance, next_attempt_at, id)"
    " WHERE delivered_at IS NULL AND failed_at IS NULL",
    NULL,
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "notifications",
    .version = VERSION,
    .description = "task reminders: fired once per task across pods, in-app, as task.reminder "
                   "events and by signed webhook",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = migrations,
    .init = init,
    .start = start,
    .stop = stop,
    .destroy = destroy,
    .consume = consume,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

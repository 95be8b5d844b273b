/*
 * Webhook deliveries: rows of notification_webhooks (queued by the scheduler with the event as
 * published), sent by a thread of their own. Each is leased for the duration of one
 * resilient_call, then marked delivered, rescheduled with backoff, or given up after
 * webhook_max_attempts requests. A crash loses none (at worst a delivery is sent again once its
 * lease ends; receivers deduplicate by X-Taskora-Event-Id). Every request is signed:
 * X-Taskora-Signature: sha256=<hex HMAC-SHA256 of the body with webhook_secret>.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kit/kit.h"
#include "../kit/kit_curl.h"
#include "notif.h"

/* How long a claimed webhook delivery stays ours: longer than any sane resiliency policy
 * (timeout_ms, 60 s by default). A delivery whose sender died is retried when it ends. */
#define WEBHOOK_LEASE_S 300
/* Delivered webhook rows are kept this long (for inspection), then pruned. */
#define WEBHOOK_KEEP "1 day"
/* The longest pause between two rounds of a failing delivery. */
#define WEBHOOK_MAX_BACKOFF_MS 300000
/* A Retry-After further away than this (a day) is ignored. */
#define WEBHOOK_MAX_RETRY_AFTER_S 86400

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

/* A failure that is not retried and blames nobody: the plugin is stopping. */
static int cancelled(delivery *d, tk_failure *f)
{
    d->cancelled = 1;
    f->kind = TK_FAIL_BAD_REQUEST;
    snprintf(f->message, sizeof(f->message), "cancelled: the plugin is stopping");
    return TK_ERR;
}

/* POSTs the delivery's body once, signed; *status gets the answer's status (0 without one). */
static CURLcode post(notif *n, delivery *d, char *retry_after, char *errbuf, long *status)
{
    char sig_line[128], id_line[96], ua[64];
    snprintf(sig_line, sizeof(sig_line), "X-Taskora-Signature: %s", d->signature);
    snprintf(id_line, sizeof(id_line), "X-Taskora-Event-Id: %s", d->event_id);
    snprintf(ua, sizeof(ua), "taskora-notifications/%s", NOTIF_VERSION);
    /* "Expect:" stops libcurl's 100-continue wait on large bodies */
    const char *lines[] = {"Content-Type: application/json", "X-Taskora-Event-Type: task.reminder",
                           sig_line, id_line, "Expect:"};
    struct curl_slist *headers = kit_curl_headers(lines, sizeof(lines) / sizeof(lines[0]));
    CURL *c = headers ? kit_curl_post(n->webhook_url, d->body, d->body_len, headers, ua,
                                      (long)n->webhook_timeout_ms, errbuf)
                      : NULL;
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    *status = 0;
    if (c) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kit_curl_discard);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, kit_curl_retry_after);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(c);
    }
    curl_slist_free_all(headers);
    return cc;
}

/* One HTTP request of a delivery, for resilient_call. */
static int webhook_attempt(void *ud, tk_failure *f)
{
    delivery *d = ud;
    notif *n = d->n;
    if (atomic_load(&n->stopping))
        return cancelled(d, f);
    if (d->attempts_before + d->made >= n->webhook_max_attempts) {
        f->kind = TK_FAIL_BAD_REQUEST;
        snprintf(f->message, sizeof(f->message), "all %lld attempts used",
                 (long long)n->webhook_max_attempts);
        return TK_ERR;
    }
    d->made++;
    d->status = 0;
    char retry_after[KIT_RETRY_AFTER_LEN] = "", errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode cc = post(n, d, retry_after, errbuf, &status);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return cancelled(d, f);
    if (cc != CURLE_OK) {
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
    f->retry_after_ms =
        kit_parse_retry_after(retry_after, (int64_t)time(NULL), WEBHOOK_MAX_RETRY_AFTER_S);
    snprintf(f->message, sizeof(f->message), "the webhook answered HTTP %ld", status);
    return TK_ERR;
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
        int rc = notif_exec_pooled(n, sql, np, p, NULL, "recording a webhook delivery");
        if (rc >= 0)
            return;
        notif_count_error(n, "webhook");
        if (atomic_load(&n->stopping)) {
            n->host->log(n->inst, TK_LOG_WARN,
                         "webhook delivery %s: its outcome could not be recorded (%s); it will "
                         "be tried again when its lease ends",
                         p[0], tk_strerror(rc));
            return;
        }
        int dummy = 0;
        notif_wait_signal(n, &n->hook_cond, &dummy, notif_error_backoff_ms(n, failures + 1));
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

void *notif_webhook_main(void *arg)
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
        int rc = notif_exec_pooled(n, LEASE_SQL, 2, p, &r, "leasing a webhook delivery");
        if (rc >= 0 && PQntuples(r) == 1) {
            deliver(n, r);
            PQclear(r);
            failures = 0;
            continue; /* there may be more */
        }
        PQclear(r);
        r = NULL;
        if (rc >= 0) {
            rc = notif_exec_pooled(n, HOOK_NEXT_SQL, 1, p, &r, "reading the next webhook delivery");
            if (rc >= 0 && !PQgetisnull(r, 0, 0)) {
                int64_t next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                wait_ms = next < wait_ms ? (next > 0 ? next : 20) : wait_ms;
            }
            PQclear(r);
        }
        if (rc >= 0 && time(NULL) - last_prune > 3600) {
            const char *pp[] = {name};
            if (notif_exec_pooled(n,
                                  "DELETE FROM notification_webhooks WHERE instance = $1"
                                  " AND delivered_at < now() - interval '" WEBHOOK_KEEP "'",
                                  1, pp, NULL, "pruning delivered webhooks") >= 0)
                last_prune = time(NULL);
        }
        if (rc < 0) {
            notif_count_error(n, "webhook");
            if (++failures == 1)
                n->host->log(n->inst, TK_LOG_WARN,
                             "webhook sender: %s; deliveries wait until the database answers",
                             tk_strerror(rc));
            wait_ms = notif_error_backoff_ms(n, failures);
        } else {
            failures = 0;
        }
        notif_wait_signal(n, &n->hook_cond, &n->hook_wake, wait_ms);
    }
    return NULL;
}

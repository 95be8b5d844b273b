/*
 * notifications: task reminders, fired exactly once by whichever pod claims them in PostgreSQL,
 * delivered in-app (the notifications table and its routes), as a task.reminder event, and by
 * signed webhook.
 *
 * The plugin owns its data: the reminder schedule (schedule.c) is its own table, kept from the
 * task and user events it consumes; the scheduler (scheduler.c) fires from it; the webhook
 * sender (webhooks.c) and the routes (routes.c) read and write only its own tables. This file:
 * the config, the instance's lifecycle and the descriptor.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kit/kit_curl.h"
#include "notif.h"

static void state_free(notif *n)
{
    if (n->curl_ready)
        kit_curl_global_cleanup();
    pthread_cond_destroy(&n->sched_cond);
    pthread_cond_destroy(&n->hook_cond);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

/* What the schema's ranges cannot say about the config, or NULL when it is right. */
static const char *config_problem(const notif *n)
{
    if (!n->task_topic || !*n->task_topic)
        return "task_topic must not be empty";
    if (!n->webhook_url || !n->webhook_secret)
        return "webhook_url and webhook_secret must be strings";
    if (*n->webhook_url && strncmp(n->webhook_url, "http://", 7) != 0 &&
        strncmp(n->webhook_url, "https://", 8) != 0)
        return "webhook_url must be an http:// or https:// URL (or \"\" for none)";
    if (*n->webhook_url && !*n->webhook_secret)
        return "webhook_secret is empty: webhooks are always signed, set a secret the receiver "
               "shares (or set webhook_url to \"\")";
    return NULL;
}

static void read_config(notif *n)
{
    const tk_host *host = n->host;
    tk_instance *inst = n->inst;
    n->task_topic = host->config_string(inst, "task_topic");
    n->scheduler = host->config_bool(inst, "scheduler");
    n->poll_ms = host->config_int(inst, "poll_ms");
    n->batch = host->config_int(inst, "batch");
    n->settle_ms = host->config_int(inst, "settle_ms");
    n->webhook_url = host->config_string(inst, "webhook_url");
    n->webhook_secret = host->config_string(inst, "webhook_secret");
    n->webhook_timeout_ms = host->config_int(inst, "webhook_timeout_ms");
    n->webhook_max_attempts = host->config_int(inst, "webhook_max_attempts");
    snprintf(n->target, sizeof(n->target), "webhook.%s", host->instance_name(inst));
}

static int register_metrics(notif *n)
{
    const tk_host *host = n->host;
    tk_instance *inst = n->inst;
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
    n->m_errors = host->metric_counter(
        inst, "taskora_notifications_errors_total",
        "Database errors of the scheduler, the webhook sender and the event consumer", stage);
    return n->m_fired && n->m_lag && n->m_webhook && n->m_errors ? TK_OK : TK_ERR;
}

/* This plugin needs ABI 1.6's outbox_append_event, and resilient_call for webhooks. */
static int host_problem(const tk_host *host, tk_instance *inst, int webhooks)
{
    if (host->struct_size < offsetof(tk_host, outbox_append_event) + sizeof(void *) ||
        !host->outbox_append_event || (webhooks && !host->resilient_call)) {
        host->log(inst, TK_LOG_ERROR,
                  "this taskorad lacks outbox_append_event or resilient_call (ABI < 1.6)");
        return TK_EINVAL;
    }
    return TK_OK;
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    notif *n = calloc(1, sizeof(*n));
    if (!n)
        return TK_ENOMEM;
    n->host = host;
    n->inst = inst;
    read_config(n);
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->sched_cond, &ca);
    pthread_cond_init(&n->hook_cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&n->stopping, 0);

    const char *bad = config_problem(n);
    int rc = TK_EINVAL;
    if (bad) {
        host->log(inst, TK_LOG_ERROR, "config.%s", bad);
        goto fail;
    }
    if ((rc = host_problem(host, inst, *n->webhook_url)) < 0)
        goto fail;
    if (*n->webhook_url) {
        if (kit_curl_global_init() < 0) {
            host->log(inst, TK_LOG_ERROR, "libcurl failed to initialise");
            rc = TK_ERR;
            goto fail;
        }
        n->curl_ready = 1;
    }
    if ((rc = register_metrics(n)) < 0)
        goto fail;
    if (host->config_bool(inst, "routes") && (rc = notif_routes(n)) < 0)
        goto fail;
    if (*n->webhook_url && !n->scheduler)
        host->log(inst, TK_LOG_INFO,
                  "webhook_url is set but scheduler is false: this process "
                  "sends no webhooks (the scheduler pods do)");
    *state = n;
    return TK_OK;
fail:
    state_free(n);
    return rc;
}

static int start(void *state)
{
    notif *n = state;
    if (!n->scheduler)
        return TK_OK;
    if (pthread_create(&n->sched_thread, NULL, notif_scheduler_main, n) != 0) {
        n->host->log(n->inst, TK_LOG_ERROR, "could not start the scheduler thread");
        return TK_ERR;
    }
    n->sched_started = 1;
    if (*n->webhook_url) {
        if (pthread_create(&n->hook_thread, NULL, notif_webhook_main, n) != 0) {
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
     TK_CFG_RANGE(10, 3600000)},
    {"batch", TK_CFG_INT, 0, "100", NULL, "reminders claimed per transaction", NULL,
     TK_CFG_RANGE(1, 1000)},
    {"settle_ms", TK_CFG_INT, 0, "1000", NULL,
     "a reminder fires only once no event changed its task for this long (events that arrive "
     "together, as when a consumer catches up, are all applied first)",
     NULL, TK_CFG_RANGE(0, 60000)},
    {"webhook_url", TK_CFG_STRING, 0, "\"\"", NULL, "POST each task.reminder here (\"\": off)",
     NULL, TK_CFG_NO_RANGE},
    {"webhook_secret", TK_CFG_STRING, 0, "\"\"", NULL,
     "HMAC-SHA256 key of X-Taskora-Signature (required with webhook_url)", NULL, TK_CFG_NO_RANGE},
    {"webhook_timeout_ms", TK_CFG_INT, 0, "5000", NULL, "one webhook request's time limit", NULL,
     TK_CFG_RANGE(100, 600000)},
    {"webhook_max_attempts", TK_CFG_INT, 0, "10", NULL,
     "webhook requests per event in all (retries and later rounds); then it is given up", NULL,
     TK_CFG_RANGE(1, 1000)},
    {0},
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "notifications",
    .version = NOTIF_VERSION,
    .description = "task reminders: fired once per task across pods, in-app, as task.reminder "
                   "events and by signed webhook",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = notif_migrations,
    .init = init,
    .start = start,
    .stop = stop,
    .destroy = destroy,
    .consume = notif_consume,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

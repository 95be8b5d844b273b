/* `taskorad run`: start the configured plugins, serve, and shut down cleanly on a signal. */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "http_server.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"

void tk_signals_block(sigset_t *set)
{
    /* a parent may have left them ignored (background jobs of a non-interactive shell) */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1); /* wakes the shutdown watchdog when shutdown is done */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

typedef struct watchdog {
    pthread_t thread;
    int timeout_ms;
    atomic_int done;
} watchdog;

/* During shutdown: a second signal, or the timeout running out, ends the process at once. */
static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += w->timeout_ms / 1000;
    deadline.tv_nsec += (long)(w->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = deadline.tv_sec - now.tv_sec;
        left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        int sig = left.tv_sec < 0 ? -1 : sigtimedwait(&set, NULL, &left);
        if (sig < 0 && errno == EINTR)
            continue;
        if (atomic_load(&w->done))
            return NULL;
        if (sig == SIGUSR1)
            continue;
        if (sig > 0)
            tk_logf(NULL, TK_LOG_WARN, "second signal (%s) during shutdown: exiting now",
                    strsignal(sig));
        else
            tk_logf(NULL, TK_LOG_ERROR,
                    "shutdown did not finish within shutdown_timeout_ms=%d: exiting now",
                    w->timeout_ms);
        _exit(1);
    }
}

static int wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0)
            return sig;
    }
}

static void register_core_metrics(tk_metrics *m, size_t ninstances)
{
    char err[256];
    static const char *const vlabels[] = {"version", "abi", NULL};
    tk_metric_family *info = tk_metrics_family(m, TK_METRIC_GAUGE, "taskora_build_info",
                                               "taskorad version and plugin ABI", vlabels, NULL, 0,
                                               err, sizeof(err));
    char abi[16];
    snprintf(abi, sizeof(abi), "%d.%d", TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
    const char *vals[] = {PACKAGE_VERSION, abi};
    tk_metric_set(info, vals, 1);
    tk_metric_family *start = tk_metrics_family(m, TK_METRIC_GAUGE,
                                                "taskora_process_start_time_seconds",
                                                "Start time of the process since the Unix epoch",
                                                NULL, NULL, 0, err, sizeof(err));
    tk_metric_set(start, NULL, (double)time(NULL));
    tk_metric_family *inst = tk_metrics_family(m, TK_METRIC_GAUGE, "taskora_plugin_instances",
                                               "Plugin instances running", NULL, NULL, 0, err,
                                               sizeof(err));
    tk_metric_set(inst, NULL, (double)ninstances);
}

static tk_broker *start_embedded_broker(const tk_settings *s, char *err, size_t errlen)
{
    size_t n = json_array_size(s->kafka_topics);
    const char **topics = calloc(n + 1, sizeof(char *));
    if (!topics) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        topics[i] = json_string_value(json_array_get(s->kafka_topics, i));
    tk_broker *b = tk_broker_start(1, s->kafka_partitions, topics, n, err, errlen);
    free(topics);
    if (b) {
        const char *kv[] = {"bootstrap", tk_broker_bootstraps(b)};
        tk_log_write(NULL, TK_LOG_INFO, "embedded Kafka-protocol cluster started", kv, 1);
    }
    return b;
}

int tk_daemon_run(const tk_settings *s)
{
    char err[4096];
    int code = 0;
    tk_loader loader = {0};
    tk_broker *broker = NULL;
    tk_http_server *http = NULL;
    tk_metrics *metrics = tk_metrics_new();
    tk_runtime rt = {.app_id = s->app_id, .metrics = metrics};
    if (!metrics)
        return 1;
    tk_logf(NULL, TK_LOG_INFO, "taskorad %s starting (config %s, plugin ABI %d.%d)",
            PACKAGE_VERSION, s->path, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);

    if (s->http_enabled) {
        tk_http_options opt = {.listen = s->http_listen,
                               .app_id = s->app_id,
                               .body_limit = s->http_body_limit,
                               .cors_origins = s->http_cors_origins,
                               .max_connections = s->http_max_connections,
                               .timeout_s = s->http_timeout_s};
        http = tk_http_new(&opt, metrics, err, sizeof(err));
        if (!http) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 1;
            goto out;
        }
        rt.http = http;
    }
    if (strcmp(s->kafka_brokers, "embedded") == 0) {
        broker = start_embedded_broker(s, err, sizeof(err));
        if (!broker) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 1;
            goto out;
        }
    }
    if (tk_loader_open(&loader, s, &rt, err, sizeof(err)) ||
        tk_loader_init(&loader, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 2;
        goto out;
    }
    register_core_metrics(metrics, loader.n);
    if (tk_loader_start(&loader, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 1;
        goto out;
    }
    if (http && tk_http_start(http, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 1;
        goto out;
    }
    if (http)
        tk_http_set_ready(http, 1, NULL);
    tk_logf(NULL, TK_LOG_INFO, "taskorad ready: %zu plugin instance(s)%s%s", loader.n,
            http ? ", serving " : "", http ? tk_http_url(http) : "");

    int sig = wait_for_signal();
    tk_logf(NULL, TK_LOG_INFO, "%s: shutting down (at most %d ms; a second signal exits now)",
            strsignal(sig), s->shutdown_timeout_ms);
    watchdog w = {.timeout_ms = s->shutdown_timeout_ms};
    int have_wd = pthread_create(&w.thread, NULL, watchdog_main, &w) == 0;
    if (http) {
        tk_http_set_ready(http, 0, "stopping");
        tk_http_stop(http); /* no new requests; those in progress finish */
    }
    tk_loader_stop(&loader);
    tk_loader_destroy(&loader);
    tk_broker_stop(broker);
    broker = NULL;
    if (have_wd) {
        atomic_store(&w.done, 1);
        pthread_kill(w.thread, SIGUSR1);
        pthread_join(w.thread, NULL);
    }
    tk_logf(NULL, TK_LOG_INFO, "taskorad stopped");
out:
    tk_loader_stop(&loader);
    tk_loader_destroy(&loader);
    tk_http_free(http);
    tk_loader_close(&loader);
    tk_broker_stop(broker);
    tk_metrics_free(metrics);
    return code;
}

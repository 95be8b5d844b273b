/* `taskorad run`: start the configured plugins, serve, and shut down cleanly on a signal. */
#include "daemon.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ai_registry.h"
#include "broker.h"
#include "clock.h"
#include "consumer.h"
#include "dapr.h"
#include "http_server.h"
#include "ids.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "producer.h"
#include "resilience.h"
#include "pg_pool.h"

void tk_signals_block(sigset_t *set)
{
    /* a parent may have left them ignored (background jobs of a non-interactive shell) */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1); /* tells the signal thread that shutdown is done */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/*
 * The signal thread. Until the first SIGTERM/SIGINT it only waits; the
 * first one asks the main thread to shut down (even in the middle of
 * start-up); from then on a second signal, or shutdown_timeout_ms running
 * out, ends the process at once. SIGUSR1 from the main thread ends it.
 */
typedef struct sigctl {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop_sig; /* the first signal, 0 until then */
    int timeout_ms;
    atomic_int done;
} sigctl;

static void *signal_main(void *arg)
{
    sigctl *c = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&c->done))
            return NULL;
        if (sig != SIGUSR1)
            break;
    }
    pthread_mutex_lock(&c->lock);
    c->stop_sig = sig;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);

    struct timespec deadline = tk_deadline_ms(c->timeout_ms);
    for (;;) {
        if (atomic_load(&c->done))
            return NULL;
        struct timespec left = tk_time_left(&deadline);
        if (left.tv_sec < 0) {
            tk_logf(NULL, TK_LOG_ERROR,
                    "shutdown did not finish within shutdown_timeout_ms=%d: exiting now",
                    c->timeout_ms);
            _exit(1);
        }
        sig = sigtimedwait(&set, NULL, &left);
        if (atomic_load(&c->done))
            return NULL;
        if (sig == SIGTERM || sig == SIGINT) {
            tk_logf(NULL, TK_LOG_WARN, "second signal (%s) during shutdown: exiting now",
                    strsignal(sig));
            _exit(1);
        }
        /* timeout, EINTR or SIGUSR1 without done: the deadline is checked again above */
    }
}

/* The first stop signal, or 0 when none came yet. */
static int stop_requested(sigctl *c)
{
    pthread_mutex_lock(&c->lock);
    int sig = c->stop_sig;
    pthread_mutex_unlock(&c->lock);
    return sig;
}

static int wait_for_stop(sigctl *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->stop_sig == 0)
        pthread_cond_wait(&c->cond, &c->lock);
    int sig = c->stop_sig;
    pthread_mutex_unlock(&c->lock);
    return sig;
}

static void register_core_metrics(tk_metrics *m, size_t ninstances)
{
    char err[256];
    static const char *const vlabels[] = {"version", "abi", NULL};
    tk_metric_family *info =
        tk_metrics_family(m, TK_METRIC_GAUGE, "taskora_build_info",
                          "taskorad version and plugin ABI", vlabels, NULL, 0, err, sizeof(err));
    char abi[16];
    snprintf(abi, sizeof(abi), "%d.%d", TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
    const char *vals[] = {PACKAGE_VERSION, abi};
    tk_metric_set(info, vals, 1);
    tk_metric_family *start = tk_metrics_family(
        m, TK_METRIC_GAUGE, "taskora_process_start_time_seconds",
        "Start time of the process since the Unix epoch", NULL, NULL, 0, err, sizeof(err));
    tk_metric_set(start, NULL, (double)time(NULL));
    tk_metric_family *inst =
        tk_metrics_family(m, TK_METRIC_GAUGE, "taskora_plugin_instances",
                          "Plugin instances running", NULL, NULL, 0, err, sizeof(err));
    tk_metric_set(inst, NULL, (double)ninstances);
}

static int probe_db(void *pool) { return tk_pg_pool_reachable(pool); }

/* The instances' consumers, started after the plugins and stopped before them. */
typedef struct consumers {
    tk_consumer **c;
    size_t n;
} consumers;

static int probe_kafka(void *arg)
{
    consumers *cs = arg;
    /* broadcast groups (real-time push in API pods) do not decide readiness: an API pod keeps
     * serving while Kafka is down, its events wait in the outbox */
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i] && !tk_consumer_broadcast(cs->c[i]) && !tk_consumer_ready(cs->c[i]))
            return 0;
    return 1;
}

static int start_consumers(const tk_settings *s, tk_loader *l, const char *brokers,
                           tk_producer *producer, tk_metrics *metrics, consumers *cs, char *err,
                           size_t errlen)
{
    json_t *const props[] = {s->kafka_props, s->kafka_consumer_props};
    for (size_t i = 0; i < l->n; i++) {
        tk_instance *inst = l->inst[i];
        if (!inst->consume)
            continue;
        char group[256];
        tk_instance_group(inst, group, sizeof(group));
        int broadcast = json_is_true(json_object_get(inst->consume, "broadcast"));
        if (broadcast) {
            /* a group no other process shares: each one sees every event */
            char host[64] = "host", id[37];
            gethostname(host, sizeof(host) - 1);
            tk_uuid4(id);
            size_t n = strlen(group);
            snprintf(group + n, sizeof(group) - n, "-%s-%d-%.8s", host, (int)getpid(), id);
        }
        json_t *retry = json_object_get(inst->consume, "retry");
        tk_consumer_options o = {
            .group = group,
            .topics = json_object_get(inst->consume, "topics"),
            .workers = (int)json_integer_value(json_object_get(inst->consume, "workers")),
            .attempts = (int)json_integer_value(json_object_get(retry, "attempts")),
            .delay_ms = (int)json_integer_value(json_object_get(retry, "delay_ms")),
            .dlq = json_string_value(json_object_get(inst->consume, "dlq")),
            .queue_max = (int)json_integer_value(json_object_get(inst->consume, "queue_max")),
            .broadcast = broadcast,
            .brokers = brokers,
            .props = props,
            .nprops = 2};
        if (o.attempts < 1)
            o.attempts = 1;
        tk_consumer *c = tk_consumer_start(&o, inst, producer, metrics, err, errlen);
        if (!c)
            return TK_EINVAL;
        cs->c[cs->n++] = c;
    }
    return 0;
}

static void stop_consumers(consumers *cs)
{
    for (size_t i = cs->n; i-- > 0;)
        tk_consumer_stop(cs->c[i]);
    cs->n = 0;
}

static tk_broker *start_embedded_broker(const tk_settings *s, char *err, size_t errlen)
{
    size_t n = json_array_size(s->kafka_topics);
    const char **topics = calloc(2 * n + 1, sizeof(char *));
    char **dlqs = calloc(n + 1, sizeof(char *));
    tk_broker *b = NULL;
    if (!topics || !dlqs) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(s->kafka_topics, i));
        size_t len = strlen(t) + 5;
        topics[i] = t;
        if ((dlqs[i] = malloc(len)))
            snprintf(dlqs[i], len, "%s.dlq", t);
        topics[n + i] = dlqs[i] ? dlqs[i] : t;
    }
    b = tk_broker_start(1, s->kafka_partitions, topics, 2 * n, err, errlen);
done:
    for (size_t i = 0; dlqs && i < n; i++)
        free(dlqs[i]);
    free(dlqs);
    free(topics);
    if (b) {
        const char *kv[] = {"bootstrap", tk_broker_bootstraps(b)};
        tk_log_write(NULL, TK_LOG_INFO, "embedded Kafka-protocol cluster started", kv, 1);
    }
    return b;
}

/* Makes the AI provider instances reachable by name (ai_chat), before any plugin runs. */
static int register_providers(tk_loader *l, tk_ai_registry *ai, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        if (tk_ai_registry_add(ai, l->inst[i])) {
            snprintf(err, errlen, "out of memory");
            return TK_ENOMEM;
        }
    }
    return 0;
}

/* Connections cost a descriptor each: take the most the system allows this process. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int tk_daemon_run(const tk_settings *s)
{
    char err[4096];
    int code = 0;
    tk_loader loader = {0};
    tk_broker *broker = NULL;
    tk_http_server *http = NULL;
    tk_pg_pool *pool = NULL;
    tk_producer *producer = NULL;
    tk_relay *relay = NULL;
    consumers cs = {0};
    sigctl sc = {.timeout_ms = s->shutdown_timeout_ms};
    raise_fd_limit();
    pthread_mutex_init(&sc.lock, NULL);
    pthread_cond_init(&sc.cond, NULL);
    if (pthread_create(&sc.thread, NULL, signal_main, &sc) != 0) {
        tk_logf(NULL, TK_LOG_ERROR, "cannot start the signal thread");
        return 1;
    }
    tk_metrics *metrics = tk_metrics_new();
    tk_ai_registry *ai = tk_ai_registry_new();
    tk_runtime rt = {.app_id = s->app_id, .metrics = metrics, .ai = ai};
    if (!metrics || !ai) {
        tk_logf(NULL, TK_LOG_ERROR, "out of memory");
        code = 1;
        goto out;
    }
    rt.resilience = tk_resilience_new(s->resiliency, metrics, err, sizeof(err));
    if (!rt.resilience) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 2;
        goto out;
    }
    tk_logf(NULL, TK_LOG_INFO, "taskorad %s starting (config %s, plugin ABI %d.%d)",
            PACKAGE_VERSION, s->path, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);

    if (s->http_enabled) {
        tk_http_options opt = {.listen = s->http_listen,
                               .app_id = s->app_id,
                               .body_limit = s->http_body_limit,
                               .cors_origins = s->http_cors_origins,
                               .max_connections = s->http_max_connections,
                               .timeout_s = s->http_timeout_s,
                               .sse_keepalive_ms = s->http_sse_keepalive_s * 1000,
                               .trusted_proxies = s->http_trusted_proxies,
                               .admin_listen = s->http_admin_listen,
                               .read_timeout_s = s->http_read_timeout_s,
                               .max_connections_per_client = s->http_max_per_client,
                               .max_streams_per_client = s->http_max_streams_per_client,
                               .workers = s->http_workers,
                               .queue_limit = s->http_queue,
                               .io_threads = s->http_io_threads};
        http = tk_http_new(&opt, metrics, err, sizeof(err));
        if (!http) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 1;
            goto out;
        }
        rt.http = http;
    }
    if (s->pg_url) {
        tk_pg_options po = {.url = s->pg_url,
                            .size = s->pg_pool_size,
                            .acquire_timeout_ms = s->pg_acquire_timeout_ms,
                            .connect_timeout_s = s->pg_connect_timeout_s,
                            .app_id = s->app_id};
        pool = tk_pg_pool_new(&po, metrics, err, sizeof(err));
        if (!pool) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 2;
            goto out;
        }
        rt.pg = pool;
        if (http)
            tk_http_add_probe(http, "database", probe_db, pool);
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
        register_providers(&loader, ai, err, sizeof(err)) ||
        tk_loader_init(&loader, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 2;
        goto out;
    }
    register_core_metrics(metrics, loader.n);
    const char *brokers = broker ? tk_broker_bootstraps(broker) : s->kafka_brokers;
    size_t nconsume = 0;
    for (size_t i = 0; i < loader.n; i++)
        nconsume += loader.inst[i]->consume != NULL &&
                    !json_is_true(json_object_get(loader.inst[i]->consume, "broadcast"));
    int relay_wanted = pool && s->outbox_relay;
    if (relay_wanted || nconsume) {
        json_t *const props[] = {s->kafka_props, s->kafka_producer_props};
        producer = tk_producer_new(brokers, props, 2, err, sizeof(err));
        if (!producer) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 2;
            goto out;
        }
    }
    if (relay_wanted) {
        tk_relay_options ro = {.pg_url = s->pg_url,
                               .batch = s->outbox_batch,
                               .poll_ms = s->outbox_poll_ms,
                               .retention_s = s->outbox_retention_s,
                               .topics = s->kafka_topics};
        relay = tk_relay_start(&ro, producer, metrics, err, sizeof(err));
        if (!relay) {
            tk_logf(NULL, TK_LOG_ERROR, "%s", err);
            code = 1;
            goto out;
        }
    }
    cs.c = calloc(nconsume + 1, sizeof(tk_consumer *));
    if (!cs.c) {
        code = 1;
        goto out;
    }
    if (http && nconsume)
        tk_http_add_probe(http, "kafka", probe_kafka, &cs);
    if (!stop_requested(&sc) && tk_loader_start(&loader, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 1;
        goto out;
    }
    if (!stop_requested(&sc) &&
        start_consumers(s, &loader, brokers, producer, metrics, &cs, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 2;
        goto out;
    }
    if (http && s->dapr_enabled &&
        tk_dapr_routes(http, &loader, s->dapr_pubsub, s->dapr_app_token) < 0) {
        tk_logf(NULL, TK_LOG_ERROR, "dapr: cannot register its routes (taken by a plugin?)");
        code = 2;
        goto out;
    }
    if (!stop_requested(&sc) && http && tk_http_start(http, err, sizeof(err))) {
        tk_logf(NULL, TK_LOG_ERROR, "%s", err);
        code = 1;
        goto out;
    }
    if (!stop_requested(&sc)) {
        if (http)
            tk_http_set_ready(http, 1, NULL);
        tk_logf(NULL, TK_LOG_INFO, "taskorad ready: %zu plugin instance(s)%s%s", loader.n,
                http ? ", serving " : "", http ? tk_http_url(http) : "");
    }

    int sig = wait_for_stop(&sc);
    tk_logf(NULL, TK_LOG_INFO, "%s: shutting down (at most %d ms; a second signal exits now)",
            strsignal(sig), s->shutdown_timeout_ms);
    tk_resilience_stop(rt.resilience); /* no request or worker waits out a retry delay now */
    if (http) {
        tk_http_set_ready(http, 0, "stopping");
        /* no new requests; those in progress get half the shutdown time to finish */
        tk_http_stop(http, s->shutdown_timeout_ms / 2);
    }
    stop_consumers(&cs); /* handlers in progress finish; offsets are committed */
    tk_loader_stop(&loader);
    tk_relay_stop(relay);
    relay = NULL;
    tk_loader_destroy(&loader);
    tk_logf(NULL, TK_LOG_INFO, "taskorad stopped");
out:
    stop_consumers(&cs);
    tk_loader_stop(&loader);
    tk_relay_stop(relay);
    tk_loader_destroy(&loader);
    tk_http_free(http);
    tk_dapr_free();
    tk_loader_close(&loader);
    tk_resilience_free(rt.resilience);
    free(cs.c);
    tk_producer_free(producer, 2000);
    tk_broker_stop(broker);
    tk_pg_pool_free(pool); /* after the plugins: they may hold connections until destroy */
    tk_ai_registry_free(ai);
    tk_metrics_free(metrics);
    atomic_store(&sc.done, 1);
    pthread_kill(sc.thread, SIGUSR1);
    pthread_join(sc.thread, NULL);
    pthread_mutex_destroy(&sc.lock);
    pthread_cond_destroy(&sc.cond);
    return code;
}

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
    sigaddset(set, SIGHUP);  /* reloads (plugins with a reload hook), never ends the process */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/*
 * The signal thread. Until the first SIGTERM/SIGINT it only waits; the
 * first one asks the main thread to shut down (even in the middle of
 * start-up); from then on a second signal, or the drain delay (SIGTERM
 * while serving) plus shutdown_timeout_ms running out, ends the process at
 * once. SIGUSR1 from the main thread ends it. SIGHUP while serving asks
 * the plugins to reload (on this thread, so never during their stop).
 */
typedef struct sigctl {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop_sig;       /* the first signal, 0 until then */
    int drain_armed_ms; /* the drain delay a SIGTERM gets, once serving (0 before) */
    int drain_ms;       /* the drain the first signal got: SIGTERM's armed delay, else 0 */
    int timeout_ms;
    tk_loader *reload; /* the plugins SIGHUP reloads, once serving (NULL before) */
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
    sigaddset(&set, SIGHUP);
    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&c->done))
            return NULL;
        if (sig == SIGHUP) {
            pthread_mutex_lock(&c->lock);
            tk_loader *l = c->reload;
            pthread_mutex_unlock(&c->lock);
            if (l)
                tk_loader_reload(l); /* stop_sig is set only by this thread: nothing stops */
            else
                tk_logf(NULL, TK_LOG_INFO, "SIGHUP before serving: nothing to reload");
            continue;
        }
        if (sig != SIGUSR1)
            break;
    }
    pthread_mutex_lock(&c->lock);
    c->stop_sig = sig;
    /* SIGTERM drains (a pod being replaced); SIGINT (Ctrl-C) stops now */
    c->drain_ms = sig == SIGTERM ? c->drain_armed_ms : 0;
    int drain_ms = c->drain_ms;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);

    /* the shutdown's time counts from the end of the drain delay */
    struct timespec deadline = tk_deadline_ms(drain_ms + c->timeout_ms);
    for (;;) {
        if (atomic_load(&c->done))
            return NULL;
        struct timespec left = tk_time_left(&deadline);
        if (left.tv_sec < 0) {
            tk_logf(NULL, TK_LOG_ERROR,
                    "shutdown did not finish within shutdown_timeout_ms=%d%s: exiting now",
                    c->timeout_ms, drain_ms ? " after the drain delay" : "");
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

/* Waits for the first stop signal; *drain_ms gets the drain it calls for. */
static int wait_for_stop(sigctl *c, int *drain_ms)
{
    pthread_mutex_lock(&c->lock);
    while (c->stop_sig == 0)
        pthread_cond_wait(&c->cond, &c->lock);
    int sig = c->stop_sig;
    *drain_ms = c->drain_ms;
    pthread_mutex_unlock(&c->lock);
    return sig;
}

/* Serving: from now on a SIGTERM drains for drain_ms and a SIGHUP reloads l. 0, or -1 when a
 * stop signal came first (start-up then ends without serving). */
static int arm_drain(sigctl *c, int drain_ms, tk_loader *l)
{
    pthread_mutex_lock(&c->lock);
    int stopped = c->stop_sig != 0;
    if (!stopped) {
        c->drain_armed_ms = drain_ms;
        c->reload = l;
    }
    pthread_mutex_unlock(&c->lock);
    return stopped ? -1 : 0;
}

/* Starts the signal thread. 0, or -1 after logging why not. */
static int signals_start(sigctl *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (pthread_create(&c->thread, NULL, signal_main, c) != 0) {
        tk_logf(NULL, TK_LOG_ERROR, "cannot start the signal thread");
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        return -1;
    }
    return 0;
}

/* Ends the signal thread once shutdown is done. */
static void signals_stop(sigctl *c)
{
    atomic_store(&c->done, 1);
    pthread_kill(c->thread, SIGUSR1);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
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
    unsigned char *gates; /* gates[i]: consumer i decides /ready (its `ready` setting) */
    size_t n;
} consumers;

/* How an instance's consumer takes part in /ready (its `ready` setting, by default yes). */
enum { GATE_NONE, GATE_GROUP, GATE_START };
static int consume_gate(const json_t *consume)
{
    json_t *ready = json_object_get(consume, "ready");
    if (json_is_false(ready))
        return GATE_NONE;
    /* a broadcast consumer only until it has read up to the end it had at start-up: until then
     * this process's streams could miss an event; afterwards a Kafka outage leaves it serving */
    return json_is_true(json_object_get(consume, "broadcast")) ? GATE_START : GATE_GROUP;
}

static int probe_kafka(void *arg)
{
    consumers *cs = arg;
    /* only consumers in a shared group whose `ready` setting says so decide readiness all the
     * time: side consumers of API pods say no, so an API pod keeps serving while Kafka is down
     * (its events wait in the outbox, theirs in Kafka) */
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i] && cs->gates[i] == GATE_GROUP && !tk_consumer_ready(cs->c[i]))
            return 0;
    return 1;
}

static int probe_positioned(void *arg)
{
    consumers *cs = arg;
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i] && cs->gates[i] == GATE_START && !tk_consumer_positioned(cs->c[i]))
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
            /* no group is joined (every partition is assigned); the name, unique to the
             * process, only labels its logs and client id */
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
            .rewind_ms = inst->rewind_ms,
            .brokers = brokers,
            .props = props,
            .nprops = 2};
        if (o.attempts < 1)
            o.attempts = 1;
        tk_consumer *c = tk_consumer_start(&o, inst, producer, metrics, err, errlen);
        if (!c)
            return TK_EINVAL;
        cs->gates[cs->n] = (unsigned char)consume_gate(inst->consume);
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
        if (!(dlqs[i] = malloc(len))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        snprintf(dlqs[i], len, "%s.dlq", t);
        topics[n + i] = dlqs[i];
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

/* What `run` starts, in start order; tear_down ends it in reverse. */
typedef struct run_ctx {
    const tk_settings *s;
    char err[4096];
    sigctl sc;
    tk_metrics *metrics;
    tk_ai_registry *ai;
    tk_runtime rt;
    tk_broker *broker;
    tk_http_server *http;
    tk_pg_pool *pool;
    tk_loader loader;
    const char *brokers; /* the embedded cluster's, or kafka.brokers */
    size_t nconsume;     /* instances with a consume section */
    size_t nshared;      /* of them, those consuming in a shared group (not broadcast) */
    size_t ngates;       /* of them, those whose consumer decides /ready (shared groups) */
    size_t nstart_gates; /* those that decide it until positioned (broadcast consumers) */
    tk_producer *producer;
    tk_relay *relay;
    consumers cs;
} run_ctx;

/* Logs what d->err holds and answers the exit code. */
static int failed(run_ctx *d, int code)
{
    tk_logf(NULL, TK_LOG_ERROR, "%s", d->err);
    return code;
}

/* The metrics registry, the AI provider registry and the resiliency policies. */
static int open_services(run_ctx *d)
{
    d->metrics = tk_metrics_new();
    d->ai = tk_ai_registry_new();
    d->rt = (tk_runtime){.app_id = d->s->app_id, .metrics = d->metrics, .ai = d->ai};
    if (!d->metrics || !d->ai) {
        snprintf(d->err, sizeof(d->err), "out of memory");
        return failed(d, 1);
    }
    d->rt.resilience = tk_resilience_new(d->s->resiliency, d->metrics, d->err, sizeof(d->err));
    if (!d->rt.resilience)
        return failed(d, 2);
    tk_logf(NULL, TK_LOG_INFO, "taskorad %s starting (config %s, plugin ABI %d.%d)",
            PACKAGE_VERSION, d->s->path, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
    return 0;
}

/* The HTTP server (not listening yet), when http.enabled. */
static int open_http(run_ctx *d)
{
    const tk_settings *s = d->s;
    if (!s->http_enabled)
        return 0;
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
    d->http = tk_http_new(&opt, d->metrics, d->err, sizeof(d->err));
    if (!d->http)
        return failed(d, 1);
    d->rt.http = d->http;
    return 0;
}

/* The PostgreSQL pool, when the config names a database; /ready then asks it. */
static int open_database(run_ctx *d)
{
    const tk_settings *s = d->s;
    if (!s->pg_url)
        return 0;
    tk_pg_options po = {.url = s->pg_url,
                        .size = s->pg_pool_size,
                        .acquire_timeout_ms = s->pg_acquire_timeout_ms,
                        .connect_timeout_s = s->pg_connect_timeout_s,
                        .app_id = s->app_id};
    d->pool = tk_pg_pool_new(&po, d->metrics, d->err, sizeof(d->err));
    if (!d->pool)
        return failed(d, 2);
    d->rt.pg = d->pool;
    if (d->http)
        tk_http_add_probe(d->http, "database", probe_db, d->pool);
    return 0;
}

/* The embedded Kafka-protocol cluster, when kafka.brokers is "embedded". */
static int open_broker(run_ctx *d)
{
    if (strcmp(d->s->kafka_brokers, "embedded") == 0) {
        d->broker = start_embedded_broker(d->s, d->err, sizeof(d->err));
        if (!d->broker)
            return failed(d, 1);
    }
    d->brokers = d->broker ? tk_broker_bootstraps(d->broker) : d->s->kafka_brokers;
    return 0;
}

/* Loads, checks and initialises the plugin instances. */
static int open_plugins(run_ctx *d)
{
    tk_loader *l = &d->loader;
    if (tk_loader_open(l, d->s, &d->rt, d->err, sizeof(d->err)) ||
        register_providers(l, d->ai, d->err, sizeof(d->err)) ||
        tk_loader_init(l, d->err, sizeof(d->err)))
        return failed(d, 2);
    register_core_metrics(d->metrics, l->n);
    for (size_t i = 0; i < l->n; i++) {
        const json_t *consume = l->inst[i]->consume;
        if (!consume)
            continue;
        d->nconsume++;
        d->nshared += !json_is_true(json_object_get(consume, "broadcast"));
        d->ngates += consume_gate(consume) == GATE_GROUP;
        d->nstart_gates += consume_gate(consume) == GATE_START;
    }
    return 0;
}

/* The producer (for the relay and dead letters), the outbox relay, room for the consumers. */
static int open_events(run_ctx *d)
{
    const tk_settings *s = d->s;
    int relay_wanted = d->pool && s->outbox_relay;
    if (relay_wanted || d->nshared) {
        json_t *const props[] = {s->kafka_props, s->kafka_producer_props};
        d->producer = tk_producer_new(d->brokers, props, 2, d->err, sizeof(d->err));
        if (!d->producer)
            return failed(d, 2);
    }
    if (relay_wanted) {
        tk_relay_options ro = {.pg_url = s->pg_url,
                               .batch = s->outbox_batch,
                               .poll_ms = s->outbox_poll_ms,
                               .retention_s = s->outbox_retention_s,
                               .topics = s->kafka_topics};
        d->relay = tk_relay_start(&ro, d->producer, d->metrics, d->err, sizeof(d->err));
        if (!d->relay)
            return failed(d, 1);
    }
    d->cs.c = calloc(d->nconsume + 1, sizeof(tk_consumer *));
    d->cs.gates = calloc(d->nconsume + 1, 1);
    if (!d->cs.c || !d->cs.gates) {
        snprintf(d->err, sizeof(d->err), "out of memory");
        return failed(d, 1);
    }
    if (d->http && d->ngates)
        tk_http_add_probe(d->http, "kafka", probe_kafka, &d->cs);
    if (d->http && d->nstart_gates)
        tk_http_add_probe_named(d->http, "event_push", probe_positioned, &d->cs, "positioned",
                                "positioning");
    return 0;
}

/*
 * Starts the plugins, their consumers, the Dapr routes and the HTTP server,
 * then reports ready; a stop signal during start-up skips what is left.
 */
static int start_serving(run_ctx *d)
{
    const tk_settings *s = d->s;
    if (!stop_requested(&d->sc) && tk_loader_start(&d->loader, d->err, sizeof(d->err)))
        return failed(d, 1);
    if (!stop_requested(&d->sc) && start_consumers(s, &d->loader, d->brokers, d->producer,
                                                   d->metrics, &d->cs, d->err, sizeof(d->err)))
        return failed(d, 2);
    int rc = d->http && s->dapr_enabled
                 ? tk_dapr_routes(d->http, &d->loader, s->dapr_pubsub, s->dapr_app_token)
                 : 0;
    if (rc == TK_ENOMEM) {
        snprintf(d->err, sizeof(d->err), "dapr: out of memory");
        return failed(d, 1);
    }
    if (rc < 0) {
        snprintf(d->err, sizeof(d->err), "dapr: cannot register its routes (taken by a plugin?)");
        return failed(d, 2);
    }
    if (!stop_requested(&d->sc) && d->http && tk_http_start(d->http, d->err, sizeof(d->err)))
        return failed(d, 1);
    /* only a process that serves HTTP has connections to drain */
    if (arm_drain(&d->sc, d->http ? s->drain_delay_ms : 0, &d->loader) == 0) {
        if (d->http)
            tk_http_set_ready(d->http, 1, NULL);
        tk_logf(NULL, TK_LOG_INFO, "taskorad ready: %zu plugin instance(s)%s%s", d->loader.n,
                d->http ? ", serving " : "", d->http ? tk_http_url(d->http) : "");
    }
    return 0;
}

/* Waits for the stop signal, then stops what runs in the order that loses nothing. */
static void shut_down(run_ctx *d)
{
    int drain_ms = 0;
    int sig = wait_for_stop(&d->sc, &drain_ms);
    if (drain_ms > 0) {
        /* load balancers take a while to stop routing here: until they have, requests are
         * served as usual (answers close their connections, so clients reconnect elsewhere) */
        tk_logf(NULL, TK_LOG_INFO,
                "%s: draining for %d ms (still serving, /ready 503), then shutting down "
                "(at most %d ms); a second signal exits now",
                strsignal(sig), drain_ms, d->s->shutdown_timeout_ms);
        tk_http_set_ready(d->http, 0, "draining");
        tk_http_drain(d->http, drain_ms);
    } else {
        tk_logf(NULL, TK_LOG_INFO, "%s: shutting down (at most %d ms; a second signal exits now)",
                strsignal(sig), d->s->shutdown_timeout_ms);
    }
    tk_resilience_stop(d->rt.resilience); /* no request or worker waits out a retry delay now */
    if (d->http) {
        tk_http_set_ready(d->http, 0, "stopping");
        /* no new requests; those in progress get half the shutdown time to finish */
        tk_http_stop(d->http, d->s->shutdown_timeout_ms / 2);
    }
    stop_consumers(&d->cs); /* handlers in progress finish; offsets are committed */
    tk_loader_stop(&d->loader);
    tk_relay_stop(d->relay);
    d->relay = NULL;
    tk_loader_destroy(&d->loader);
    tk_logf(NULL, TK_LOG_INFO, "taskorad stopped");
}

/* Stops (after a failed start-up) and frees whatever was started. */
static void tear_down(run_ctx *d)
{
    stop_consumers(&d->cs);
    tk_loader_stop(&d->loader);
    tk_relay_stop(d->relay);
    tk_loader_destroy(&d->loader);
    tk_http_free(d->http);
    tk_dapr_free();
    tk_loader_close(&d->loader);
    tk_resilience_free(d->rt.resilience);
    free(d->cs.c);
    free(d->cs.gates);
    tk_producer_free(d->producer, 2000);
    tk_broker_stop(d->broker);
    tk_pg_pool_free(d->pool); /* after the plugins: they may hold connections until destroy */
    tk_ai_registry_free(d->ai);
    tk_metrics_free(d->metrics);
}

int tk_daemon_run(const tk_settings *s)
{
    run_ctx d = {.s = s};
    raise_fd_limit();
    if (signals_start(&d.sc, s->shutdown_timeout_ms))
        return 1;
    int code = open_services(&d);
    code = code ? code : open_http(&d);
    code = code ? code : open_database(&d);
    code = code ? code : open_broker(&d);
    code = code ? code : open_plugins(&d);
    code = code ? code : open_events(&d);
    code = code ? code : start_serving(&d);
    if (code == 0)
        shut_down(&d);
    tear_down(&d);
    signals_stop(&d.sc);
    return code;
}

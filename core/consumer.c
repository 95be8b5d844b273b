/* The consumer runtime: one Kafka consumer group per plugin instance with a `consume`
 * section, at-least-once, per-partition order on a worker pool, retries and DLQ. This
 * file joins the group and runs the poll thread; consumer_work.c runs the partitions. */
#include "consumer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "consumer_broadcast.h"
#include "consumer_internal.h"
#include "consumer_work.h"
#include "log.h"

/* ---- the poll thread: messages in, rebalances, statistics ------------------ */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    tk_consumer *c = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        tk_consumer_assign(c, parts);
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        atomic_store(&c->joined, 1);
    } else {
        tk_consumer_revoke(c, parts);
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tk_consumer *c = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&c->brokers_up, 0);
    tk_logf(c->instance, TK_LOG_WARN, "kafka: %s", reason);
}

/* Statistics (every second): broker state for /ready, lag per partition for /metrics. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    tk_consumer *c = opaque;
    (void)rk;
    json_t *s = json_loadb(json, len, 0, NULL);
    if (!s)
        return 0; /* out of memory: the last known state stands */
    int up = 0;
    const char *name;
    json_t *b, *t;
    json_object_foreach(json_object_get(s, "brokers"), name, b)
    {
        const char *state = json_string_value(json_object_get(b, "state"));
        up |= state && strcmp(state, "UP") == 0 &&
              json_integer_value(json_object_get(b, "nodeid")) >= 0;
    }
    atomic_store(&c->brokers_up, up);
    json_object_foreach(json_object_get(s, "topics"), name, t)
    {
        const char *pid;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), pid, p)
        {
            json_int_t lag = json_integer_value(json_object_get(p, "consumer_lag"));
            const char *fetch = json_string_value(json_object_get(p, "fetch_state"));
            /* statistics taken before a revocation may come after it: a partition this
             * consumer no longer owns is its new owner's to report */
            if (strcmp(pid, "-1") == 0 || lag < 0 || !fetch || strcmp(fetch, "active") != 0 ||
                !tk_consumer_owns(c, name, (int32_t)atoi(pid)))
                continue;
            const char *v[] = {c->instance, name, pid};
            tk_metric_set(c->m_lag, v, (double)lag);
        }
    }
    json_decref(s);
    return 0; /* librdkafka frees json */
}

/* A broadcast consumer's assignment, tried once a second until the brokers answer. 0 when made. */
static int assign_broadcast(tk_consumer *c, struct timespec *last_try, int *tries)
{
    if (atomic_load(&c->joined))
        return 0;
    if (*tries && tk_seconds_since(last_try) < 1.0) {
        /* errors and statistics go on meanwhile; nothing is assigned, so no message comes */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, last_try);
    /* told on the first failure and then every 30 tries */
    return tk_broadcast_assign(c, (*tries)++ % 30 == 0);
}

static void *poll_main(void *arg)
{
    tk_consumer *c = arg;
    struct timespec last_publish, last_try = {0};
    int tries = 0;
    clock_gettime(CLOCK_MONOTONIC, &last_publish);
    while (!atomic_load(&c->stop)) {
        if (c->broadcast && assign_broadcast(c, &last_try, &tries))
            continue;
        if (tk_seconds_since(&last_publish) >= 1.0) {
            /* the hot-path counts reach /metrics once a second */
            tk_consumer_publish_counts(c);
            clock_gettime(CLOCK_MONOTONIC, &last_publish);
        }
        if (tk_seconds_since(&c->last_store) >= 0.1) {
            pthread_mutex_lock(&c->lock);
            tk_consumer_store_offsets(c, 0);
            pthread_mutex_unlock(&c->lock);
            clock_gettime(CLOCK_MONOTONIC, &c->last_store);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && c->broadcast)
            tk_broadcast_progress(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                tk_logf(c->instance, TK_LOG_WARN, "kafka: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        atomic_store(&c->brokers_up, 1);
        if (c->broadcast)
            tk_broadcast_progress(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
        tk_consumer_enqueue(c, m);
    }
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_consumer(tk_consumer *c)
{
    /* queued messages first: rd_kafka_destroy waits until every message is destroyed */
    tk_consumer_free_parts(c);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->sleep);
    for (int i = 0; c->workers && i < c->nworkers; i++)
        free(c->workers[i].slots);
    free(c->workers);
    tk_broadcast_free(c);
    json_decref(c->topics);
    free(c->instance);
    free(c->group);
    free(c->dlq);
    free(c);
}

/* The consumer's memory: names, locks, workers (with their batch slots). NULL when out of it. */
static tk_consumer *new_consumer(const tk_consumer_options *o, const tk_instance *inst,
                                 tk_producer *producer)
{
    tk_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->attempts = o->attempts;
    c->delay_ms = o->delay_ms;
    c->queue_max = o->queue_max;
    c->broadcast = o->broadcast;
    c->topics = json_incref(o->topics);
    c->rewind_ms = o->rewind_ms;
    c->rewind_max = o->rewind_max > 0 ? o->rewind_max : 10000;
    c->inst = inst;
    c->batches = tk_plugin_consume_batch(inst->type->desc) != NULL;
    c->producer = producer;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->idle, NULL);
    tk_cond_init_monotonic(&c->sleep);
    c->instance = strdup(inst->name);
    c->group = strdup(o->group);
    c->dlq = o->dlq && *o->dlq ? strdup(o->dlq) : NULL;
    c->nworkers = o->workers > 0 ? o->workers : 1;
    c->workers = calloc((size_t)c->nworkers, sizeof(*c->workers));
    int ok = c->instance && c->group && (c->dlq || !o->dlq || !*o->dlq) && c->workers;
    for (int i = 0; ok && i < c->nworkers; i++) {
        c->workers[i].c = c;
        if (c->batches)
            ok = (c->workers[i].slots = calloc(BATCH, sizeof(event_slot))) != NULL;
    }
    if (!ok) {
        free_consumer(c);
        return NULL;
    }
    return c;
}

static void register_metrics(tk_consumer *c, tk_metrics *metrics)
{
    char e[256];
    static const char *const l1[] = {"plugin", NULL};
    static const char *const l2[] = {"plugin", "reason", NULL};
    static const char *const l3[] = {"plugin", "kind", NULL};
    static const char *const l4[] = {"plugin", "topic", "partition", NULL};
    c->m_consumed = tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_consumer_consumed_total",
                                      "Messages handed to the runtime", l1, NULL, 0, e, sizeof(e));
    c->m_ok = tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_consumer_succeeded_total",
                                "Events the handler finished", l1, NULL, 0, e, sizeof(e));
    c->m_retried =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_consumer_retried_total",
                          "Handler calls that asked for a retry", l1, NULL, 0, e, sizeof(e));
    c->m_dlq =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_consumer_dead_lettered_total",
                          "Messages sent to the dead-letter topic", l2, NULL, 0, e, sizeof(e));
    c->m_rebalance =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_consumer_rebalances_total",
                          "Partition assignments and revocations", l3, NULL, 0, e, sizeof(e));
    c->m_lag =
        tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_consumer_lag",
                          "Messages behind the end of the partition", l4, NULL, 0, e, sizeof(e));
}

/* The librdkafka configuration: fixed settings, the config's properties, the callbacks. */
static rd_kafka_conf_t *consumer_conf(tk_consumer *c, const tk_consumer_options *o, char *err,
                                      size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    const char *fixed[][2] = {
        {"bootstrap.servers", o->brokers},
        {"group.id", c->group},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.offset.reset", "earliest"},
        {"statistics.interval.ms", "1000"},
        /* no Nagle: a fetch sent while another request is unacknowledged would wait for
         * the broker's delayed ACK (the same default as the producer's; config may change it) */
        {"socket.nagle.disable", "true"}};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], why, sizeof(why))) {
            snprintf(err, errlen, "consumer %s: %s", c->instance, why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (tk_kafka_conf_apply(conf, o->props, o->nprops, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* what at-least-once rests on is not up to the config */
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, sizeof(why));
    if (o->broadcast) {
        /* no group: partitions assigned at explicit offsets, nothing committed; the end of
         * each partition tells when it has been read up to its start-up end */
        rd_kafka_conf_set(conf, "auto.offset.reset", "latest", why, sizeof(why));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof(why));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof(why));
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    return conf;
}

/* Creates the Kafka consumer and subscribes it to the topics. 0, or TK_EINVAL with err. */
static int subscribe(tk_consumer *c, const tk_consumer_options *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = consumer_conf(c, o, err, errlen);
    if (!conf)
        return TK_EINVAL;
    char why[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "consumer %s: %s", c->instance, why);
        return TK_EINVAL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    if (o->broadcast)
        return 0; /* the poll thread assigns the partitions (consumer_broadcast.c) */
    size_t nt = json_array_size(o->topics);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)nt);
    for (size_t i = 0; i < nt; i++)
        rd_kafka_topic_partition_list_add(topics, json_string_value(json_array_get(o->topics, i)),
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (se) {
        snprintf(err, errlen, "consumer %s: subscribe: %s", c->instance, rd_kafka_err2str(se));
        return TK_EINVAL;
    }
    return 0;
}

/* Ends the poll and worker threads that run: queued messages stay unstored. */
static void stop_threads(tk_consumer *c)
{
    atomic_store(&c->stop, 1);
    if (c->polling)
        pthread_join(c->poller, NULL);
    c->polling = 0;
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->work);
    pthread_cond_broadcast(&c->sleep);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < c->nrunning; i++)
        pthread_join(c->workers[i].thread, NULL);
    c->nrunning = 0;
}

/* Starts the workers and the poll thread. 0, or TK_ERR with err (none left running). */
static int start_threads(tk_consumer *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->nworkers; i++) {
        if (pthread_create(&c->workers[i].thread, NULL, tk_consumer_worker, &c->workers[i]) != 0) {
            snprintf(err, errlen, "consumer %s: cannot start worker %d of %d", c->instance, i + 1,
                     c->nworkers);
            stop_threads(c);
            return TK_ERR;
        }
        c->nrunning++;
    }
    if (pthread_create(&c->poller, NULL, poll_main, c) != 0) {
        snprintf(err, errlen, "consumer %s: cannot start its poll thread", c->instance);
        stop_threads(c);
        return TK_ERR;
    }
    c->polling = 1;
    return 0;
}

tk_consumer *tk_consumer_start(const tk_consumer_options *o, const tk_instance *inst,
                               tk_producer *producer, tk_metrics *metrics, char *err, size_t errlen)
{
    tk_consumer *c = new_consumer(o, inst, producer);
    if (!c) {
        snprintf(err, errlen, "consumer %s: out of memory", inst->name);
        return NULL;
    }
    register_metrics(c, metrics);
    if (subscribe(c, o, err, errlen) || start_threads(c, err, errlen)) {
        free_consumer(c);
        return NULL;
    }
    if (c->broadcast)
        tk_logf(c->instance, TK_LOG_INFO,
                "consuming every partition of %zu topic(s) (broadcast) with %d worker(s)",
                json_array_size(o->topics), c->nworkers);
    else
        tk_logf(c->instance, TK_LOG_INFO, "consuming %zu topic(s) in group %s with %d worker(s)",
                json_array_size(o->topics), c->group, c->nworkers);
    return c;
}

void tk_consumer_stop(tk_consumer *c)
{
    if (!c)
        return;
    stop_threads(c);
    pthread_mutex_lock(&c->lock);
    tk_consumer_store_offsets(c, 0);
    pthread_mutex_unlock(&c->lock);
    tk_consumer_publish_counts(c);
    if (c->broadcast) {
        /* no group, so no revoke drops what is queued: drop it here (nothing is committed) */
        tk_consumer_free_parts(c);
        rd_kafka_assign(c->rk, NULL);
    }
    /* leaves the group: the revoke commits the stored offsets */
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e)
        tk_logf(c->instance, TK_LOG_WARN, "closing the consumer: %s", rd_kafka_err2str(e));
    free_consumer(c);
}

int tk_consumer_ready(tk_consumer *c)
{
    return atomic_load(&c->joined) && atomic_load(&c->brokers_up);
}

int tk_consumer_positioned(tk_consumer *c) { return atomic_load(&c->positioned); }

/* The process's Kafka producer (idempotent), with delivery reports a caller can wait for. */
#include "producer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

struct tk_delivery_slot {
    tk_delivery *d;
    size_t index;
};

struct tk_producer {
    rd_kafka_t *rk;
    pthread_t poller;
    atomic_int stop;
    pthread_mutex_t warm_lock;
    rd_kafka_topic_t *warm[32]; /* topics learnt by tk_producer_warm */
    size_t nwarm;
};

int tk_kafka_conf_apply(rd_kafka_conf_t *conf, json_t *const *props, size_t nprops, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < nprops; i++) {
        const char *k;
        json_t *v;
        json_object_foreach(props[i], k, v)
        {
            char num[64];
            const char *s = json_string_value(v);
            if (json_is_integer(v))
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            else if (json_is_real(v))
                snprintf(num, sizeof(num), "%g", json_real_value(v));
            else if (json_is_boolean(v))
                snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
            if (!s && (json_is_number(v) || json_is_boolean(v)))
                s = num;
            char why[512];
            if (!s || rd_kafka_conf_set(conf, k, s, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
                snprintf(err, errlen, "librdkafka property %s: %s", k,
                         s ? why : "the value must be a string, number or boolean");
                return -1;
            }
        }
    }
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct tk_delivery_slot *slot = m->_private;
    if (!slot)
        return;
    tk_delivery *d = slot->d;
    pthread_mutex_lock(&d->lock);
    d->errs[slot->index] = m->err;
    if (--d->pending == 0)
        pthread_cond_broadcast(&d->done);
    pthread_mutex_unlock(&d->lock);
}

void tk_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    tk_log_level l = level <= 3 ? TK_LOG_ERROR : level == 4 ? TK_LOG_WARN : TK_LOG_DEBUG;
    const char *kv[] = {"source", "librdkafka", "facility", fac, "client", rd_kafka_name(rk)};
    tk_log_write("kafka", l, buf, kv, 3);
}

static void *poll_main(void *arg)
{
    tk_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

tk_producer *tk_producer_new(const char *brokers, json_t *const *props, size_t nprops, char *err,
                             size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", why, sizeof(why)) ||
        /* never give up on a message: an outage delays events, it does not lose them */
        rd_kafka_conf_set(conf, "message.timeout.ms", "0", why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "linger.ms", "2", why, sizeof(why)) ||
        /* small requests go out at once: with Nagle a request sent while another is
         * unacknowledged waits for the peer's delayed ACK (about 40 ms on Linux) */
        rd_kafka_conf_set(conf, "socket.nagle.disable", "true", why, sizeof(why))) {
        snprintf(err, errlen, "kafka producer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (tk_kafka_conf_apply(conf, props, nprops, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    tk_producer *p = calloc(1, sizeof(*p));
    if (!p) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", why);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->warm_lock, NULL);
    if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
        rd_kafka_destroy(p->rk);
        free(p);
        snprintf(err, errlen, "kafka producer: cannot start its thread");
        return NULL;
    }
    return p;
}

void tk_producer_purge(tk_producer *p)
{
    if (p)
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

void tk_producer_warm(tk_producer *p, json_t *topics, int timeout_ms)
{
    size_t i;
    json_t *t;
    json_array_foreach(topics, i, t)
    {
        if (!json_is_string(t))
            continue;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, json_string_value(t), NULL);
        if (!rkt)
            continue;
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        /* kept until the producer goes, so librdkafka keeps the topic's metadata fresh */
        pthread_mutex_lock(&p->warm_lock);
        if (p->nwarm < sizeof(p->warm) / sizeof(p->warm[0]))
            p->warm[p->nwarm++] = rkt;
        else
            rd_kafka_topic_destroy(rkt);
        pthread_mutex_unlock(&p->warm_lock);
    }
}

void tk_producer_free(tk_producer *p, int timeout_ms)
{
    if (!p)
        return;
    if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tk_logf("kafka", TK_LOG_WARN, "%d message(s) still undelivered at shutdown",
                rd_kafka_outq_len(p->rk));
        tk_producer_purge(p);
        rd_kafka_flush(p->rk, 1000);
    }
    atomic_store(&p->stop, 1);
    pthread_join(p->poller, NULL);
    for (size_t i = 0; i < p->nwarm; i++)
        rd_kafka_topic_destroy(p->warm[i]);
    pthread_mutex_destroy(&p->warm_lock);
    rd_kafka_destroy(p->rk);
    free(p);
}

int tk_delivery_init(tk_delivery *d, size_t n)
{
    memset(d, 0, sizeof(*d));
    d->errs = calloc(n ? n : 1, sizeof(*d->errs));
    d->slots = calloc(n ? n : 1, sizeof(*d->slots));
    if (!d->errs || !d->slots) {
        free(d->errs);
        free(d->slots);
        return TK_ENOMEM;
    }
    d->n = n;
    pthread_mutex_init(&d->lock, NULL);
    tk_cond_init_monotonic(&d->done);
    return 0;
}

void tk_delivery_free(tk_delivery *d)
{
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->done);
    free(d->errs);
    free(d->slots);
    memset(d, 0, sizeof(*d));
}

rd_kafka_resp_err_t tk_produce(tk_producer *p, const char *topic, const char *key,
                               const void *value, size_t len, rd_kafka_headers_t *headers,
                               tk_delivery *d, size_t index)
{
    struct tk_delivery_slot *slot = &d->slots[index];
    slot->d = d;
    slot->index = index;
    pthread_mutex_lock(&d->lock);
    d->pending++;
    d->errs[index] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    pthread_mutex_unlock(&d->lock);
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(p->rk, 50); /* let reports drain, then try again */
    }
    if (e) {
        pthread_mutex_lock(&d->lock);
        d->pending--;
        d->errs[index] = e;
        pthread_mutex_unlock(&d->lock);
    }
    return e;
}

int tk_delivery_wait(tk_delivery *d, atomic_int *stop)
{
    pthread_mutex_lock(&d->lock);
    while (d->pending > 0 && !(stop && atomic_load(stop))) {
        struct timespec t = tk_deadline_ms(100);
        pthread_cond_timedwait(&d->done, &d->lock, &t);
    }
    int all = d->pending == 0;
    pthread_mutex_unlock(&d->lock);
    return all ? 0 : -1;
}

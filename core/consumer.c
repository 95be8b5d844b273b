/* The consumer runtime: one Kafka consumer group per plugin instance with a `consume`
 * section, at-least-once, per-partition order on a worker pool, retries and DLQ. */
#include "consumer.h"

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"

/* One assigned partition: its queue and whether a worker is on it. */
typedef struct part {
    char *topic;
    int32_t partition;
    rd_kafka_message_t **q; /* ring buffer */
    size_t head, len, cap;
    int busy, revoked, paused, in_runq;
    int64_t done;          /* offset after the last finished message, -1: none yet */
    int64_t stored;        /* the last offset handed to rd_kafka_offsets_store */
    struct part *next;     /* in the consumer's list */
    struct part *run_next; /* in the run queue */
} part;

/* Messages a worker takes from one partition at a time (order is kept: one worker per
 * partition). */
#define BATCH 64

/* What one message hands the plugin: the event and the storage its fields point into. */
typedef struct event_slot {
    tk_event ev;
    tk_event_header hdrs[32];
    char traceparent[128];
    tk_event_doc doc;
    int decoded;
} event_slot;

typedef struct worker {
    struct tk_consumer *c;
    pthread_t thread;
    event_slot *slots; /* BATCH of them when the plugin takes batches, else NULL */
} worker;

struct tk_consumer {
    tk_consumer_options o;
    char *instance, *group, *dlq;
    const tk_instance *inst;
    int batches; /* the plugin has consume_batch (ABI 1.4) */
    tk_producer *producer;
    rd_kafka_t *rk;
    pthread_t poller;
    int polling;
    worker *workers;
    int nworkers, nrunning;
    atomic_int stop;
    atomic_int joined, brokers_up;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a partition became runnable, or stop */
    pthread_cond_t idle;  /* a worker finished a message */
    pthread_cond_t sleep; /* retry delays wait here, so stop cuts them short */
    part *parts;
    part *runq_head, *runq_tail;
    tk_metric_family *m_consumed, *m_ok, *m_retried, *m_dlq, *m_rebalance, *m_lag;
    /* hot-path counts, added to the metrics once a second (no registry lock per message) */
    atomic_long n_consumed, n_ok, n_retried;
    struct timespec last_store;
};

static void count(tk_metric_family *f, const tk_consumer *c, const char *extra)
{
    const char *v[] = {c->instance, extra};
    tk_metric_add(f, v, 1);
}

static part *find_part(tk_consumer *c, const char *topic, int32_t partition)
{
    for (part *p = c->parts; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

static void runq_push(tk_consumer *c, part *p)
{
    if (p->in_runq || p->busy || p->revoked || p->len == 0)
        return;
    p->in_runq = 1;
    p->run_next = NULL;
    if (c->runq_tail)
        c->runq_tail->run_next = p;
    else
        c->runq_head = p;
    c->runq_tail = p;
    pthread_cond_signal(&c->work);
}

static part *runq_pop(tk_consumer *c)
{
    part *p = c->runq_head;
    if (p) {
        c->runq_head = p->run_next;
        if (!c->runq_head)
            c->runq_tail = NULL;
        p->in_runq = 0;
    }
    return p;
}

static void drop_queue(part *p)
{
    while (p->len) {
        rd_kafka_message_destroy(p->q[p->head]);
        p->head = (p->head + 1) % p->cap;
        p->len--;
    }
}

/* Pause or resume one partition (lock held; librdkafka calls are thread-safe). */
static void set_paused(tk_consumer *c, part *p, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    if (pause)
        rd_kafka_pause_partitions(c->rk, l);
    else
        rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    p->paused = pause;
}

/* ---- dead-letter ------------------------------------------------------ */

/* Publishes m to the DLQ with the EVENTS.md headers; retries until done or stop. 0 when done. */
static int dead_letter(tk_consumer *c, const rd_kafka_message_t *m, const char *why, int attempts)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    char dlq[512], num[32];
    snprintf(dlq, sizeof(dlq), "%s", c->dlq ? c->dlq : "");
    if (!c->dlq)
        snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        rd_kafka_headers_t *orig = NULL;
        if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
            h = rd_kafka_headers_copy(orig);
        else
            h = rd_kafka_headers_new(8);
        rd_kafka_header_add(h, "x-taskora-error", -1, why, -1);
        rd_kafka_header_add(h, "x-taskora-consumer", -1, c->instance, -1);
        snprintf(num, sizeof(num), "%d", attempts);
        rd_kafka_header_add(h, "x-taskora-attempts", -1, num, -1);
        rd_kafka_header_add(h, "x-taskora-original-topic", -1, topic, -1);
        snprintf(num, sizeof(num), "%d", (int)m->partition);
        rd_kafka_header_add(h, "x-taskora-original-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)m->offset);
        rd_kafka_header_add(h, "x-taskora-original-offset", -1, num, -1);
        char key[512] = "";
        if (m->key && m->key_len < sizeof(key))
            memcpy(key, m->key, m->key_len), key[m->key_len] = '\0';
        tk_delivery d;
        if (tk_delivery_init(&d, 1)) {
            rd_kafka_headers_destroy(h);
            return -1;
        }
        if (tk_produce(c->producer, dlq, m->key ? key : NULL, m->payload, m->len, h, &d, 0))
            rd_kafka_headers_destroy(h);
        int stopped = tk_delivery_wait(&d, &c->stop);
        if (stopped) {
            tk_producer_purge(c->producer);
            tk_delivery_wait(&d, NULL);
        }
        rd_kafka_resp_err_t e = d.errs[0];
        tk_delivery_free(&d);
        if (!e) {
            tk_logf(c->instance, TK_LOG_WARN, "dead-lettered %s[%d]@%lld to %s: %s", topic,
                    (int)m->partition, (long long)m->offset, dlq, why);
            return 0;
        }
        if (stopped || atomic_load(&c->stop))
            return -1;
        tk_logf(c->instance, TK_LOG_ERROR, "publishing to %s failed (%s); retrying", dlq,
                rd_kafka_err2str(e));
        pthread_mutex_lock(&c->lock);
        struct timespec t = tk_deadline_ms(1000);
        if (!atomic_load(&c->stop))
            pthread_cond_timedwait(&c->sleep, &c->lock, &t);
        pthread_mutex_unlock(&c->lock);
    }
}

/* ---- handling one message ------------------------------------------------ */

/* Fills e from m; 0, or -1 with the reason in why when the value is not an event. */
static int build_event(tk_consumer *c, const rd_kafka_message_t *m, event_slot *e, char *why,
                       size_t whylen)
{
    tk_event_init(&e->ev, rd_kafka_topic_name(m->rkt), c->group, m->payload, m->len);
    e->ev.partition = m->partition;
    e->ev.offset = m->offset;
    e->ev.key = m->key;
    e->ev.key_len = m->key_len;
    e->traceparent[0] = '\0';
    e->decoded = 0;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
        tk_event_headers(&e->ev, h, e->hdrs, sizeof(e->hdrs) / sizeof(e->hdrs[0]), e->traceparent,
                         sizeof(e->traceparent));
    if (tk_event_decode(m->payload, m->len, &e->ev, &e->doc, why, whylen) != 0)
        return -1;
    e->decoded = 1;
    return 0;
}

/* Handles m: 0 when it is finished (its offset may be stored), -1 when stop interrupted it. */
static int handle(tk_consumer *c, const rd_kafka_message_t *m)
{
    atomic_fetch_add(&c->n_consumed, 1);
    event_slot slot;
    char why[512];
    if (build_event(c, m, &slot, why, sizeof(why)) != 0) {
        /* a poison message: no handler call can help it */
        if (dead_letter(c, m, why, 0))
            return -1;
        count(c->m_dlq, c, "undecodable");
        return 0;
    }
    tk_event ev = slot.ev;
    tk_event_doc doc = slot.doc;
    int rc = -1;
    for (int attempt = 1;; attempt++) {
        ev.attempt = (uint32_t)attempt;
        tk_log_context(NULL, ev.traceparent);
        const tk_event *one = &ev;
        tk_consume_result r;
        tk_instance_consume(c->inst, &one, 1, &r);
        tk_log_context(NULL, NULL);
        if (r == TK_CONSUME_OK) {
            atomic_fetch_add(&c->n_ok, 1);
            rc = 0;
            break;
        }
        if (r == TK_CONSUME_RETRY && attempt < c->o.attempts) {
            atomic_fetch_add(&c->n_retried, 1);
            pthread_mutex_lock(&c->lock);
            struct timespec t = tk_deadline_ms(c->o.delay_ms);
            while (!atomic_load(&c->stop) && pthread_cond_timedwait(&c->sleep, &c->lock, &t) == 0)
                ;
            pthread_mutex_unlock(&c->lock);
            if (atomic_load(&c->stop))
                break; /* not finished: redelivered after the restart */
            continue;
        }
        snprintf(why, sizeof(why), "%s",
                 r == TK_CONSUME_RETRY ? "handler asked to retry; attempts exhausted"
                                       : "handler failed the event");
        if (dead_letter(c, m, why, attempt) == 0) {
            count(c->m_dlq, c, r == TK_CONSUME_RETRY ? "retries_exhausted" : "failed");
            rc = 0;
        }
        break;
    }
    tk_event_doc_free(&doc);
    return rc;
}

/* Adds the hot-path counts to the metrics. */
static void publish_counts(tk_consumer *c)
{
    const char *v[] = {c->instance};
    tk_metric_add(c->m_consumed, v, (double)atomic_exchange(&c->n_consumed, 0));
    tk_metric_add(c->m_ok, v, (double)atomic_exchange(&c->n_ok, 0));
    tk_metric_add(c->m_retried, v, (double)atomic_exchange(&c->n_retried, 0));
}

/*
 * Hands librdkafka the offsets of finished messages (only of `revoked`
 * partitions when only_revoked). Partitions run one message at a time, in
 * order, so `done` is always the end of a contiguous finished run.
 * Lock held.
 */
static void store_offsets(tk_consumer *c, int only_revoked)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (part *p = c->parts; p; p = p->next) {
        if (p->done <= p->stored || (only_revoked && !p->revoked))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->done;
        p->stored = p->done;
    }
    if (!l)
        return;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    if (e)
        tk_logf(c->instance, TK_LOG_WARN, "storing offsets: %s", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Decodes n messages and hands the decodable ones to consume_batch at once.
 * results[i] is meaningful where slots[i].decoded. Returns n.
 */
static size_t run_batch(tk_consumer *c, rd_kafka_message_t **msgs, size_t n, event_slot *slots,
                        tk_consume_result *results)
{
    const tk_event *evs[BATCH];
    size_t idx[BATCH], k = 0;
    char why[512];
    for (size_t i = 0; i < n; i++) {
        results[i] = TK_CONSUME_RETRY;
        if (build_event(c, msgs[i], &slots[i], why, sizeof(why)) == 0) {
            slots[i].ev.attempt = 1;
            evs[k] = &slots[i].ev;
            idx[k++] = i;
        }
    }
    if (k > 0) {
        tk_consume_result r[BATCH];
        tk_instance_consume(c->inst, evs, k, r);
        for (size_t j = 0; j < k; j++) {
            results[idx[j]] = r[j];
            if (r[j] == TK_CONSUME_OK) {
                atomic_fetch_add(&c->n_consumed, 1);
                atomic_fetch_add(&c->n_ok, 1);
            }
        }
    }
    return n;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tk_consumer *c = w->c;
    rd_kafka_message_t *batch[BATCH];
    event_slot *slots = w->slots;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        part *p = NULL;
        while (!atomic_load(&c->stop) && !(p = runq_pop(c)))
            pthread_cond_wait(&c->work, &c->lock);
        if (atomic_load(&c->stop))
            break; /* queued messages are left unstored: redelivered after a restart */
        if (p->revoked || p->len == 0)
            continue;
        size_t n = 0;
        while (n < BATCH && p->len) {
            batch[n++] = p->q[p->head];
            p->head = (p->head + 1) % p->cap;
            p->len--;
        }
        p->busy = 1;
        if (p->paused && p->len <= (size_t)c->o.queue_max / 2 && !p->revoked)
            set_paused(c, p, 0);
        pthread_mutex_unlock(&c->lock);

        /* with consume_batch: the decodable messages in one call first; what it did not
         * finish (and undecodable ones) then go one by one through handle() */
        tk_consume_result results[BATCH];
        size_t batched = n > 1 && slots ? run_batch(c, batch, n, slots, results) : 0;
        size_t finished = 0;
        while (finished < n) {
            int ok =
                finished < batched && slots[finished].decoded && results[finished] == TK_CONSUME_OK;
            if (!ok && handle(c, batch[finished]) != 0)
                break;
            pthread_mutex_lock(&c->lock);
            p->done = batch[finished]->offset + 1;
            pthread_mutex_unlock(&c->lock);
            finished++;
        }
        for (size_t i = 0; i < batched; i++)
            if (slots[i].decoded)
                tk_event_doc_free(&slots[i].doc);

        pthread_mutex_lock(&c->lock);
        /* an interrupted batch: the rest stays unstored and comes again */
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(batch[i]);
        p->busy = 0;
        if (finished < n)
            drop_queue(p);
        runq_push(c, p);
        pthread_cond_broadcast(&c->idle);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- the poll thread: messages in, rebalances ----------------------------- */

static void enqueue(tk_consumer *c, rd_kafka_message_t *m)
{
    pthread_mutex_lock(&c->lock);
    part *p = find_part(c, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p || p->revoked) {
        pthread_mutex_unlock(&c->lock);
        rd_kafka_message_destroy(m);
        return;
    }
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        rd_kafka_message_t **q = malloc(cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&c->lock);
            rd_kafka_message_destroy(m); /* not stored: it comes again */
            return;
        }
        for (size_t i = 0; i < p->len; i++)
            q[i] = p->q[(p->head + i) % p->cap];
        free(p->q);
        p->q = q;
        p->head = 0;
        p->cap = cap;
    }
    p->q[(p->head + p->len) % p->cap] = m;
    p->len++;
    if (!p->paused && p->len >= (size_t)c->o.queue_max)
        set_paused(c, p, 1);
    runq_push(c, p);
    pthread_mutex_unlock(&c->lock);
}

static void on_assign(tk_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < parts->cnt; i++) {
        part *p = find_part(c, parts->elems[i].topic, parts->elems[i].partition);
        if (!p) {
            p = calloc(1, sizeof(*p));
            if (!p || !(p->topic = strdup(parts->elems[i].topic))) {
                free(p);
                continue;
            }
            p->partition = parts->elems[i].partition;
            p->next = c->parts;
            c->parts = p;
        }
        p->revoked = 0;
        p->paused = 0;
        p->done = p->stored = -1;
    }
    pthread_mutex_unlock(&c->lock);
    tk_logf(c->instance, TK_LOG_INFO, "assigned %d partition(s) in group %s", parts->cnt, c->group);
}

/* Finishes work on the revoked partitions, drops what was queued for them, and forgets them. */
static void on_revoke(tk_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < parts->cnt; i++) {
        part *p = find_part(c, parts->elems[i].topic, parts->elems[i].partition);
        if (p) {
            p->revoked = 1;
            drop_queue(p); /* not started: their offsets are not stored, the next owner gets them */
        }
    }
    /* take revoked partitions out of the run queue */
    part *keep = c->runq_head;
    c->runq_head = c->runq_tail = NULL;
    while (keep) {
        part *next = keep->run_next;
        keep->in_runq = 0;
        runq_push(c, keep);
        keep = next;
    }
    for (;;) {
        int busy = 0;
        for (part *p = c->parts; p; p = p->next)
            busy |= p->revoked && p->busy;
        if (!busy)
            break;
        pthread_cond_wait(&c->idle, &c->lock);
    }
    store_offsets(c, 1);
    /* unlink revoked partitions (none is busy or in the run queue now) */
    part **pp = &c->parts;
    while (*pp) {
        part *p = *pp;
        if (p->revoked && !p->in_runq) {
            *pp = p->next;
            free(p->q);
            free(p->topic);
            free(p);
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&c->lock);
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        tk_logf(c->instance, TK_LOG_WARN, "committing offsets on revoke: %s", rd_kafka_err2str(e));
    tk_logf(c->instance, TK_LOG_INFO, "revoked %d partition(s)", parts->cnt);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    tk_consumer *c = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(c, parts);
        count(c->m_rebalance, c, "assign");
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        atomic_store(&c->joined, 1);
    } else {
        on_revoke(c, parts);
        count(c->m_rebalance, c, "revoke");
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
            if (strcmp(pid, "-1") == 0 || lag < 0 || !fetch || strcmp(fetch, "active") != 0)
                continue;
            const char *v[] = {c->instance, name, pid};
            tk_metric_set(c->m_lag, v, (double)lag);
        }
    }
    json_decref(s);
    return 0; /* librdkafka frees json */
}

static void *poll_main(void *arg)
{
    tk_consumer *c = arg;
    struct timespec last_publish;
    clock_gettime(CLOCK_MONOTONIC, &last_publish);
    while (!atomic_load(&c->stop)) {
        if (tk_seconds_since(&last_publish) >= 1.0) {
            /* the hot-path counts reach /metrics once a second */
            publish_counts(c);
            clock_gettime(CLOCK_MONOTONIC, &last_publish);
        }
        if (tk_seconds_since(&c->last_store) >= 0.1) {
            pthread_mutex_lock(&c->lock);
            store_offsets(c, 0);
            pthread_mutex_unlock(&c->lock);
            clock_gettime(CLOCK_MONOTONIC, &c->last_store);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                tk_logf(c->instance, TK_LOG_WARN, "kafka: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        atomic_store(&c->brokers_up, 1);
        enqueue(c, m);
    }
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_consumer(tk_consumer *c)
{
    if (c->rk)
        rd_kafka_destroy(c->rk);
    while (c->parts) {
        part *p = c->parts;
        c->parts = p->next;
        drop_queue(p);
        free(p->q);
        free(p->topic);
        free(p);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->sleep);
    for (int i = 0; c->workers && i < c->nworkers; i++)
        free(c->workers[i].slots);
    free(c->workers);
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
    c->o = *o;
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
static rd_kafka_conf_t *consumer_conf(tk_consumer *c, char *err, size_t errlen)
{
    const tk_consumer_options *o = &c->o;
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
        /* a group of this process alone: it starts at the end and has nothing to resume */
        rd_kafka_conf_set(conf, "auto.offset.reset", "latest", why, sizeof(why));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof(why));
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    return conf;
}

/* Creates the Kafka consumer and subscribes it to the topics. 0, or TK_EINVAL with err. */
static int subscribe(tk_consumer *c, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = consumer_conf(c, err, errlen);
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
    size_t nt = json_array_size(c->o.topics);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)nt);
    for (size_t i = 0; i < nt; i++)
        rd_kafka_topic_partition_list_add(topics, json_string_value(json_array_get(c->o.topics, i)),
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
        if (pthread_create(&c->workers[i].thread, NULL, worker_main, &c->workers[i]) != 0) {
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
    if (subscribe(c, err, errlen) || start_threads(c, err, errlen)) {
        free_consumer(c);
        return NULL;
    }
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
    store_offsets(c, 0);
    pthread_mutex_unlock(&c->lock);
    publish_counts(c);
    /* leaves the group: the revoke commits the stored offsets */
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e)
        tk_logf(c->instance, TK_LOG_WARN, "closing the consumer: %s", rd_kafka_err2str(e));
    free_consumer(c);
}

int tk_consumer_broadcast(const tk_consumer *c) { return c->o.broadcast; }

int tk_consumer_ready(tk_consumer *c)
{
    return atomic_load(&c->joined) && atomic_load(&c->brokers_up);
}

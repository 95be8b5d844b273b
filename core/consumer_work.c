/*
 * The consumer runtime's partitions and workers: each assigned partition
 * queues its messages (pausing the partition when the queue is full), and a
 * worker at a time hands them to the plugin in order, with retries, batches
 * and dead letters; finished offsets are stored for the next commit.
 */
#include "consumer_work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

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

/* Waits ms, or less when the consumer stops: 0 when the whole wait passed, -1 when stopping. */
static int pause_ms(tk_consumer *c, int ms)
{
    pthread_mutex_lock(&c->lock);
    struct timespec t = tk_deadline_ms(ms);
    while (!atomic_load(&c->stop) && pthread_cond_timedwait(&c->sleep, &c->lock, &t) == 0)
        ;
    pthread_mutex_unlock(&c->lock);
    return atomic_load(&c->stop) ? -1 : 0;
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
            tk_logf(c->instance, TK_LOG_ERROR, "out of memory dead-lettering to %s; retrying", dlq);
            if (pause_ms(c, 1000))
                return -1;
            continue;
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
        if (pause_ms(c, 1000))
            return -1;
    }
}

/* ---- handling one message ------------------------------------------------ */

/* Fills e from m; 0, or (with the reason in why) TK_EINVAL when the value is not an event,
 * TK_ENOMEM when memory ran out. */
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
    int rc = tk_event_decode(m->payload, m->len, &e->ev, &e->doc, why, whylen);
    if (rc != 0)
        return rc;
    e->decoded = 1;
    return 0;
}

/* Handles m: 0 when it is finished (its offset may be stored), -1 when stop interrupted it. */
static int handle(tk_consumer *c, const rd_kafka_message_t *m)
{
    atomic_fetch_add(&c->n_consumed, 1);
    event_slot slot;
    char why[512];
    int rc;
    while ((rc = build_event(c, m, &slot, why, sizeof(why))) == TK_ENOMEM) {
        /* not the message's fault: it is decoded again once memory is back */
        tk_logf(c->instance, TK_LOG_ERROR, "out of memory decoding %s[%d]@%lld; again in 1 s",
                rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
        if (pause_ms(c, 1000))
            return -1;
    }
    if (rc != 0) {
        /* a poison message: no handler call can help it */
        if (dead_letter(c, m, why, 0))
            return -1;
        count(c->m_dlq, c, "undecodable");
        return 0;
    }
    tk_event ev = slot.ev;
    tk_event_doc doc = slot.doc;
    rc = -1;
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
        if (r == TK_CONSUME_RETRY && attempt < c->attempts) {
            atomic_fetch_add(&c->n_retried, 1);
            if (pause_ms(c, c->delay_ms))
                break; /* not finished: redelivered after the restart */
            continue;
        }
        char reason[400];
        int given = tk_consume_reason(reason, sizeof(reason));
        snprintf(why, sizeof(why), "%s%s%s",
                 r == TK_CONSUME_RETRY ? "handler asked to retry; attempts exhausted"
                                       : "handler failed the event",
                 given ? ": " : "", given ? reason : "");
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
void tk_consumer_publish_counts(tk_consumer *c)
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
void tk_consumer_store_offsets(tk_consumer *c, int only_revoked)
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

void *tk_consumer_worker(void *arg)
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
        if (p->paused && p->len <= (size_t)c->queue_max / 2 && !p->revoked)
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

/* ---- messages in, partitions assigned and revoked --------------------------- */

/* Doubles a partition's queue. 0, or -1 when out of memory (the queue is unchanged). Lock held. */
static int grow_queue(part *p)
{
    size_t cap = p->cap ? p->cap * 2 : 64;
    rd_kafka_message_t **q = malloc(cap * sizeof(*q));
    if (!q)
        return -1;
    for (size_t i = 0; i < p->len; i++)
        q[i] = p->q[(p->head + i) % p->cap];
    free(p->q);
    p->q = q;
    p->head = 0;
    p->cap = cap;
    return 0;
}

void tk_consumer_enqueue(tk_consumer *c, rd_kafka_message_t *m)
{
    pthread_mutex_lock(&c->lock);
    part *p = find_part(c, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p || p->revoked) {
        pthread_mutex_unlock(&c->lock);
        rd_kafka_message_destroy(m);
        return;
    }
    /* only this (the poll) thread frees partitions, so p outlives the waits */
    for (int told = 0; p->len == p->cap && grow_queue(p) != 0; told = 1) {
        /* dropping the message would let the offsets of later ones be stored past it */
        pthread_mutex_unlock(&c->lock);
        if (!told)
            tk_logf(c->instance, TK_LOG_ERROR,
                    "out of memory queueing %s[%d]@%lld; waiting for memory",
                    rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
        if (pause_ms(c, 100)) {
            rd_kafka_message_destroy(m); /* stopping: not stored, it comes again */
            return;
        }
        pthread_mutex_lock(&c->lock);
    }
    p->q[(p->head + p->len) % p->cap] = m;
    p->len++;
    if (!p->paused && p->len >= (size_t)c->queue_max)
        set_paused(c, p, 1);
    runq_push(c, p);
    pthread_mutex_unlock(&c->lock);
}

void tk_consumer_assign(tk_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < parts->cnt; i++) {
        part *p = find_part(c, parts->elems[i].topic, parts->elems[i].partition);
        if (!p) {
            p = calloc(1, sizeof(*p));
            if (!p || !(p->topic = strdup(parts->elems[i].topic))) {
                /* its messages are dropped unstored (tk_consumer_enqueue): the partition
                 * stalls here until the next rebalance, which hands them out again */
                tk_logf(c->instance, TK_LOG_ERROR,
                        "out of memory taking %s[%d]; it waits for the next rebalance",
                        parts->elems[i].topic, (int)parts->elems[i].partition);
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
    count(c->m_rebalance, c, "assign");
}

int tk_consumer_owns(tk_consumer *c, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&c->lock);
    part *p = find_part(c, topic, partition);
    int owns = p && !p->revoked;
    pthread_mutex_unlock(&c->lock);
    return owns;
}

/* Finishes work on the revoked partitions, drops what was queued for them, and forgets them. */
void tk_consumer_revoke(tk_consumer *c, rd_kafka_topic_partition_list_t *parts)
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
    tk_consumer_store_offsets(c, 1);
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
    count(c->m_rebalance, c, "revoke");
    /* their lag is now the next owner's to report: a last value left here would stand for
     * ever (the statistics only cover assigned partitions) */
    for (int i = 0; i < parts->cnt; i++) {
        char pid[16];
        snprintf(pid, sizeof(pid), "%d", (int)parts->elems[i].partition);
        const char *v[] = {c->instance, parts->elems[i].topic, pid};
        tk_metric_set(c->m_lag, v, 0);
    }
}

void tk_consumer_free_parts(tk_consumer *c)
{
    while (c->parts) {
        part *p = c->parts;
        c->parts = p->next;
        drop_queue(p);
        free(p->q);
        free(p->topic);
        free(p);
    }
}

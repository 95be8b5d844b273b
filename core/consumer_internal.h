/*
 * The consumer runtime's shared state: consumer.c joins the group and runs
 * the poll thread, consumer_work.c queues each partition's messages and runs
 * the workers that hand them to the plugin. Not for plugins.
 */
#ifndef TK_CORE_CONSUMER_INTERNAL_H
#define TK_CORE_CONSUMER_INTERNAL_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "event.h"
#include "instance.h"
#include "metrics.h"
#include "producer.h"

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

typedef struct tk_consumer tk_consumer;

struct tk_consumer {
    char *instance, *group, *dlq;
    int attempts;  /* handler calls before the DLQ (RETRY answers) */
    int delay_ms;  /* between attempts */
    int queue_max; /* messages queued per partition before it is paused */
    int broadcast; /* every partition assigned directly (consumer_broadcast.c) */
    json_t *topics;
    int64_t rewind_ms, rewind_max; /* broadcast: start this far back, at most rewind_max messages */
    struct bc_target *targets;     /* broadcast: each partition's end at start-up */
    size_t ntargets, nbehind;      /* nbehind: partitions not yet read up to that end */
    atomic_int positioned;         /* broadcast: every partition read up to its start-up end */
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

#endif

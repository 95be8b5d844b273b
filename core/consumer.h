/* The consumer runtime: one Kafka consumer group per plugin instance with a `consume`
 * section, at-least-once, per-partition order on a worker pool, retries and DLQ. */
#ifndef TK_CORE_CONSUMER_H
#define TK_CORE_CONSUMER_H

#include <jansson.h>
#include <stddef.h>

#include "instance.h"
#include "metrics.h"
#include "producer.h"

typedef struct tk_consumer tk_consumer;

typedef struct tk_consumer_options {
    const char *group; /* see tk_instance_group */
    json_t *topics;    /* array of strings */
    int workers;
    int attempts;    /* handler calls before the DLQ (RETRY answers) */
    int delay_ms;    /* between attempts */
    const char *dlq; /* DLQ topic; NULL: "<topic>.dlq" */
    int queue_max;   /* messages queued per partition before it is paused */
    int broadcast;   /* every partition assigned directly (no group), from the end, no commits */
    int64_t rewind_ms;  /* broadcast: start at the events of the last rewind_ms (0: at the end) */
    int64_t rewind_max; /* broadcast: but at most this many messages back per partition */
    const char *brokers;
    json_t *const *props; /* librdkafka property objects, later ones win */
    size_t nprops;
} tk_consumer_options;

/*
 * Joins the group (a broadcast consumer: assigns every partition) and starts handing messages to the instance's handler
 * (tk_instance_consume); the instance's name appears in logs, metrics and the
 * x-taskora-consumer header. The producer is used for DLQ messages. NULL +
 * err on a bad option, or when memory or threads run out.
 */
tk_consumer *tk_consumer_start(const tk_consumer_options *o, const tk_instance *inst,
                               tk_producer *producer, tk_metrics *metrics, char *err,
                               size_t errlen);
/*
 * Stops: messages being handled finish (queued ones are left for
 * redelivery), offsets of finished ones are committed, the group is left.
 */
void tk_consumer_stop(tk_consumer *c);
/* Non-zero while a broker is up and the consumer is in its group. Any thread. */
int tk_consumer_ready(tk_consumer *c);
/*
 * A broadcast consumer: non-zero once it has read every partition up to the end it had at
 * start-up (it stays so). Any thread.
 */
int tk_consumer_positioned(tk_consumer *c);

#endif

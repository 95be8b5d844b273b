/* The process's Kafka producer (idempotent), with delivery reports a caller can wait for. */
#ifndef TK_CORE_PRODUCER_H
#define TK_CORE_PRODUCER_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct tk_producer tk_producer;

/*
 * Sets librdkafka properties from JSON objects of strings (numbers and
 * booleans are written as text), later objects overriding earlier ones.
 * 0, or -1 with the property and librdkafka's reason in err.
 */
int tk_kafka_conf_apply(rd_kafka_conf_t *conf, json_t *const *props, size_t nprops, char *err,
                        size_t errlen);

/* librdkafka's log callback for every client: its lines go through our log. */
void tk_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Creates the producer (enable.idempotence=true) and its polling thread. */
tk_producer *tk_producer_new(const char *brokers, json_t *const *props, size_t nprops, char *err,
                             size_t errlen);
/* Waits up to timeout_ms for messages in flight, then destroys it. */
void tk_producer_free(tk_producer *p, int timeout_ms);

/* A set of messages whose delivery reports a caller waits for together. */
typedef struct tk_delivery {
    pthread_mutex_t lock;
    pthread_cond_t done;
    size_t pending;
    size_t n;
    rd_kafka_resp_err_t *errs; /* per message: its delivery result */
    struct tk_delivery_slot *slots;
} tk_delivery;

int tk_delivery_init(tk_delivery *d, size_t n);
void tk_delivery_free(tk_delivery *d);

/*
 * Produces one message as number `index` of d. `headers` (may be NULL) is
 * taken over on success. 0, or librdkafka's error (the report will not come).
 */
rd_kafka_resp_err_t tk_produce(tk_producer *p, const char *topic, const char *key,
                               const void *value, size_t len, rd_kafka_headers_t *headers,
                               tk_delivery *d, size_t index);
/*
 * Waits until every produced message of d has its report, or *stop becomes
 * non-zero (checked every 100 ms). 0 when all are in, -1 when stopped.
 */
int tk_delivery_wait(tk_delivery *d, atomic_int *stop);
/* Withdraws messages not yet sent (at shutdown), so their reports come now. */
void tk_producer_purge(tk_producer *p);
/*
 * Learns the topics' partitions and leaders now (each waits up to
 * timeout_ms), so the first event to a topic is not held back until
 * librdkafka's next topic scan (about a second). Any thread.
 */
void tk_producer_warm(tk_producer *p, json_t *topics, int timeout_ms);

#endif

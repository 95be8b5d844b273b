/*
 * Kafka for the Check suites: librdkafka's mock cluster owned by the test, producing to it and
 * reading a dead-letter topic.
 * librdkafka handles must not cross Check's fork: call these in the test body or in a checked
 * fixture (or, for a suite-wide cluster, in an unchecked one and only use it from there).
 */
#ifndef TK_TH_KAFKA_H
#define TK_TH_KAFKA_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* A topic to create: its name and partitions. A list of them ends with {NULL, 0}. */
typedef struct th_topic {
    const char *name;
    int partitions;
} th_topic;

/* A one-broker mock cluster and the producer handle that owns it. */
typedef struct th_mock th_mock;

/*
 * Starts a cluster with `topics` (replication 1), its connections without Nagle as a real
 * broker's (tk_mock_nodelay); a failure aborts the test.
 */
th_mock *th_mock_start(const th_topic *topics);
/* Its bootstrap.servers, valid until th_mock_stop. */
const char *th_mock_bootstrap(const th_mock *m);
/* The cluster itself, to take its broker down and up. */
rd_kafka_mock_cluster_t *th_mock_cluster(const th_mock *m);
/* Destroys the cluster and its owner (NULL: nothing). */
void th_mock_stop(th_mock *m);

/* A producer for bootstrap with linger.ms 5; a failure aborts the test. */
rd_kafka_t *th_producer(const char *bootstrap);
/*
 * Produces a copy of value to topic: keyed by key and partitioned by it as taskorad's producer
 * does, or with key NULL unkeyed to partition 0. Waits while the queue is full; an error
 * aborts the test.
 */
void th_send(rd_kafka_t *p, const char *topic, const char *key, const char *value);
/* Waits up to 30 s until all is delivered (else aborts the test). */
void th_flush(rd_kafka_t *p);
/* th_flush, then destroys the producer. */
void th_producer_close(rd_kafka_t *p);
/* One message (see th_send) with a producer of its own. */
void th_produce(const char *bootstrap, const char *topic, const char *key, const char *value);

/* The data payload of the seq-th event of one user (th_produce_events); it is stolen. */
typedef json_t *(*th_payload_fn)(int seq, void *ud);
/*
 * Produces n CloudEvents of `type` (source "test") to topic, the i-th by user u<i % users>,
 * keyed by that user, with payload(i / users, ud) as its payload; all delivered on return.
 */
void th_produce_events(const char *bootstrap, const char *topic, int n, int users, const char *type,
                       th_payload_fn payload, void *ud);

/* One message of a dead-letter topic: its length and its x-taskora-* headers, copied. */
typedef struct th_dlq_msg {
    size_t len;
    char error[256], attempts[16], consumer[64], topic[64], partition[16], offset[32];
} th_dlq_msg;
/* Which messages th_dlq_read keeps (NULL: all). */
typedef int (*th_dlq_filter)(const th_dlq_msg *m, void *ud);
/*
 * Reads partition 0 of a dead-letter topic from the start until n messages that `keep`
 * accepts are in out, or timeout_s pass; returns how many it kept.
 */
int th_dlq_read(const char *bootstrap, const char *topic, th_dlq_msg *out, int n, int timeout_s,
                th_dlq_filter keep, void *ud);

#endif

/*
 * The consumer runtime's partitions and workers: each assigned partition
 * queues its messages, and a worker at a time hands them to the plugin in
 * order, with retries, batches and dead letters.
 */
#ifndef TK_CORE_CONSUMER_WORK_H
#define TK_CORE_CONSUMER_WORK_H

#include <librdkafka/rdkafka.h>

#include "consumer_internal.h"

/* A worker thread (arg: its worker): runs partitions' queues until c->stop. */
void *tk_consumer_worker(void *arg);

/* Queues a message read by the poll thread on its partition (dropped when not assigned). */
void tk_consumer_enqueue(tk_consumer *c, rd_kafka_message_t *m);
/* Rebalances (poll thread): partitions start empty; revoked ones finish the message being
 * handled, drop what was queued, store and commit their offsets. */
void tk_consumer_assign(tk_consumer *c, rd_kafka_topic_partition_list_t *parts);
void tk_consumer_revoke(tk_consumer *c, rd_kafka_topic_partition_list_t *parts);
/* Non-zero while the partition is assigned to c (not revoked). Any thread. */
int tk_consumer_owns(tk_consumer *c, const char *topic, int32_t partition);

/*
 * Hands librdkafka the offsets of finished messages (only of revoked
 * partitions when only_revoked). Lock held.
 */
void tk_consumer_store_offsets(tk_consumer *c, int only_revoked);
/* Adds the hot-path counts to the metrics. */
void tk_consumer_publish_counts(tk_consumer *c);
/* Frees the partitions and their queued messages (threads stopped). */
void tk_consumer_free_parts(tk_consumer *c);

#endif

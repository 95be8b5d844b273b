/* Broadcast consumers: every partition assigned directly, no group (consumer_broadcast.c). */
#ifndef TK_CORE_CONSUMER_BROADCAST_H
#define TK_CORE_CONSUMER_BROADCAST_H

#include "consumer_internal.h"

/*
 * Assigns every partition of the consumer's topics at its start offset (poll thread). 0, or -1
 * when the brokers cannot say yet (try again later; logged when `tell`).
 */
int tk_broadcast_assign(tk_consumer *c, int tell);
/* The poll thread read up to `next` (a message's offset + 1, or an end-of-partition's offset). */
void tk_broadcast_progress(tk_consumer *c, const char *topic, int32_t partition, int64_t next);
/* Frees the start-up ends. */
void tk_broadcast_free(tk_consumer *c);

#endif

/* The embedded Kafka-protocol cluster (librdkafka's mock cluster) for development and tests. */
#ifndef TK_CORE_BROKER_H
#define TK_CORE_BROKER_H

#include <stddef.h>

typedef struct tk_broker tk_broker;

/*
 * Starts `nbrokers` brokers on loopback TCP ports and creates the topics
 * with `partitions` partitions each. NULL with a reason in err.
 */
tk_broker *tk_broker_start(int nbrokers, int partitions, const char *const *topics, size_t ntopics,
                           char *err, size_t errlen);
/* The bootstrap list ("127.0.0.1:PORT,..."), owned by the broker. */
const char *tk_broker_bootstraps(const tk_broker *b);
void tk_broker_stop(tk_broker *b);

#endif

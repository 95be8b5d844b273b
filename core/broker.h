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

/*
 * librdkafka's mock cluster leaves Nagle's algorithm on for the connections
 * it accepts (a real Kafka broker turns it off). A response written while an
 * earlier one is unacknowledged then waits for the client's delayed ACK,
 * about 40 ms on Linux: event latency goes from a few ms to 45. This sets
 * TCP_NODELAY on this process's listening sockets at the bootstrap list's
 * ports, which accepted connections inherit. Call right after creating the
 * cluster. Returns how many listeners were changed, -1 on error.
 */
int tk_mock_nodelay(const char *bootstraps);

#endif

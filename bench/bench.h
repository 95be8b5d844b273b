/* What the parts of events_bench share: the broker, the temp dir, taskorad runs. */
#ifndef TASKORA_BENCH_H
#define TASKORA_BENCH_H

#include <stddef.h>
#include <sys/types.h>

extern char bench_bootstrap[256]; /* the Kafka-protocol broker */
extern char bench_tmp[];          /* this run's temp dir */

/* Partitions of the consumer part's topic: the mock broker keeps 5 MB (about 13,000 events)
 * of each, and the runs must last a few seconds (the consumer's counts are published once a
 * second). */
#define BENCH_PARTITIONS 48
/* GET url, returning the body (static buffer, "" on failure). */
const char *bench_get(const char *url);
/* A taskorad config (written to the temp dir) with one plugin instance consuming topic as
 * group "bench-<group>": plugin is the instance's "name", "load" (and "config") members. */
char *bench_config(const char *pg, const char *topic, const char *group, const char *plugin);
/* Starts taskorad on config; its base URL in url. Exits when it does not start. */
pid_t bench_start(const char *config, char *url, size_t urllen);
/* Stops taskorad at once (SIGINT, no drain delay). */
void bench_stop(pid_t pid);

/* Part 1: raw librdkafka vs taskorad with the C no-op plugin and with no-op Lua scripts,
 * rounds times (the best of each is printed). */
void bench_consumers(long n, int rounds);

#endif

/* `taskorad dlq`: list the dead letters of a topic and replay them to where they came from. */
#ifndef TK_CORE_DLQ_H
#define TK_CORE_DLQ_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* `taskorad dlq SUBCOMMAND ...`: argv[0] is "dlq". Returns the exit status (0, 1 or 2). */
int tk_dlq_main(int argc, char **argv, const char *default_config);

/* What one command reads and where (filled by tk_dlq_main). */
typedef struct tk_dlq_cmd {
    const char *topic, *event_id;
    const char *brokers;
    json_t *consumer_props[2], *producer_props[2]; /* kafka.librdkafka and the client's own */
    size_t nprops;
    long long since_ms; /* < 0: from the beginning */
    long limit;         /* 0: no limit */
    int json, dry_run;
    int timeout_ms;
} tk_dlq_cmd;

/* What a dead letter says about itself: its event and its x-taskora-* headers. */
typedef struct tk_dead_letter {
    char time[40], id[256], type[128], user[128], consumer[128], attempts[16], error[1024];
    char topic[256], partition[16], offset[32];
} tk_dead_letter;

/* Fills d from m; "-" for what m does not carry. */
void tk_dead_letter_describe(const rd_kafka_message_t *m, tk_dead_letter *d);

/* `dlq replay`: the exit status. */
int tk_dlq_replay(const tk_dlq_cmd *c);

#endif

/* Reading a dead-letter topic for `taskorad dlq`: every partition up to its end, from a time on. */
#ifndef TK_CORE_DLQ_READ_H
#define TK_CORE_DLQ_READ_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef struct tk_dlq_reader tk_dlq_reader;

/*
 * Opens `topic` on `brokers` (librdkafka properties from props, as tk_kafka_conf_apply) and
 * positions every partition at the first message written at or after since_ms (Unix ms; < 0:
 * from the beginning). Reading ends at each partition's end as it was at opening; timeout_ms
 * bounds each wait for the broker. NULL with the reason in err.
 */
tk_dlq_reader *tk_dlq_open(const char *brokers, json_t *const *props, size_t nprops,
                           const char *topic, long long since_ms, int timeout_ms, char *err,
                           size_t errlen);
/* Messages in the range (all partitions' counts at opening, before the time filter). */
long long tk_dlq_range(const tk_dlq_reader *r);
/*
 * The next message written at or after since_ms: 1 with it in *out (the caller destroys it
 * before tk_dlq_close), 0 when every partition is read, -1 with the reason in err.
 */
int tk_dlq_next(tk_dlq_reader *r, rd_kafka_message_t **out, char *err, size_t errlen);
void tk_dlq_close(tk_dlq_reader *r);

/* The last value of header `name` of m as text in out ("" when absent); 1 when present. */
int tk_dlq_header(const rd_kafka_message_t *m, const char *name, char *out, size_t outlen);

/*
 * A time for --since: ISO 8601 (2024-05-01, 2024-05-01T12:00, 2024-05-01T12:00:00.250Z,
 * ...+02:00; no zone means UTC) or an age before now_ms ("90s", "30m", "1h", "2d"). 0 with
 * the Unix ms in *out, -1 when it is neither.
 */
int tk_dlq_parse_time(const char *s, long long now_ms, long long *out);
/* Unix ms as ISO 8601 UTC with milliseconds (2024-05-01T12:00:00.250Z). */
void tk_dlq_format_time(long long ms, char *out, size_t outlen);

#endif

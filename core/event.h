/* Taskora events: CloudEvents 1.0 JSON (or bare event objects) to tk_event, and back. */
#ifndef TK_CORE_EVENT_H
#define TK_CORE_EVENT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "taskora/plugin.h"

/* What a decoded tk_event's strings point into. */
typedef struct tk_event_doc {
    json_t *root;
    char *payload, *data;
    char user_id[32]; /* a numeric user_id, as text */
} tk_event_doc;

/*
 * Starts an event read from `topic` for consumer group `group` with the
 * message value: no partition, offset or headers yet (-1, -1, none), attempt
 * 1; tk_event_decode fills the rest.
 */
void tk_event_init(tk_event *ev, const char *topic, const char *group, const void *value,
                   size_t len);

/*
 * Fills the decoded fields of ev (id, type, source, time, subject, user_id,
 * payload, data) from a message value. 0, or TK_EINVAL with the reason in
 * why when the value is not JSON or not an event (no id or no type), or
 * TK_ENOMEM ("out of memory") when decoding it ran out of memory.
 */
int tk_event_decode(const void *value, size_t len, tk_event *ev, tk_event_doc *doc, char *why,
                    size_t whylen);
void tk_event_doc_free(tk_event_doc *doc);

/*
 * Points ev->headers at a Kafka message's headers h (may be NULL), at most max of them
 * copied into hdrs (names and values borrowed from h), and ev->traceparent at a
 * NUL-terminated copy of the traceparent header in tp when it fits in tplen bytes.
 */
void tk_event_headers(tk_event *ev, const rd_kafka_headers_t *h, tk_event_header *hdrs, size_t max,
                      char *tp, size_t tplen);

/*
 * The CloudEvents document of a new event (EVENTS.md), with a fresh id
 * written to id_out. `payload` is borrowed. Caller frees the text.
 */
char *tk_event_encode(const char *source, const char *type, const char *user_id,
                      const char *subject, json_t *payload, char id_out[37]);

#endif

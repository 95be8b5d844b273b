/* The transactional outbox: events written with the change they describe, and the relay
 * that publishes them to Kafka in order. */
#ifndef TK_CORE_OUTBOX_H
#define TK_CORE_OUTBOX_H

#include <jansson.h>

#include <libpq-fe.h>
#include <stddef.h>

#include "metrics.h"
#include "producer.h"

/* Appends an event on conn (inside the caller's transaction). See tk_host.outbox_append_event:
 * the encoded event goes to *value_out (malloc'd) unless value_out is NULL. */
int tk_outbox_append(PGconn *conn, const char *source, const char *topic, const char *type,
                     const char *user_id, const char *subject, const char *payload_json,
                     const char *traceparent, char id_out[37], char **value_out);

typedef struct tk_relay tk_relay;

typedef struct tk_relay_options {
    const char *pg_url;
    int batch;       /* rows per round */
    int poll_ms;     /* look for rows at least this often (LISTEN/NOTIFY wakes it sooner) */
    int retention_s; /* sent rows are deleted after this long */
    json_t *topics;  /* topics to learn about before the first round (array of strings), or NULL */
} tk_relay_options;

/*
 * Starts the relay thread. One relay in a database publishes at a time
 * (advisory lock); the others wait to take over. Rows are published in id
 * order, marked sent only after their delivery report. NULL + err on failure.
 */
tk_relay *tk_relay_start(const tk_relay_options *o, tk_producer *producer, tk_metrics *metrics,
                         char *err, size_t errlen);
/* Stops it: what is in flight is withdrawn and stays unsent, to be published later. */
void tk_relay_stop(tk_relay *r);

#endif

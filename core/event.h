/* Taskora events: CloudEvents 1.0 JSON (or bare event objects) to tk_event, and back. */
#ifndef TK_CORE_EVENT_H
#define TK_CORE_EVENT_H

#include <jansson.h>
#include <stddef.h>

#include "taskora/plugin.h"

/* What a decoded tk_event's strings point into. */
typedef struct tk_event_doc {
    json_t *root;
    char *payload, *data;
    char user_id[32]; /* a numeric user_id, as text */
} tk_event_doc;

/*
 * Fills the decoded fields of ev (id, type, source, time, subject, user_id,
 * payload, data) from a message value. 0, or TK_EINVAL with the reason in
 * why when the value is not JSON or not an event (no id or no type).
 */
int tk_event_decode(const void *value, size_t len, tk_event *ev, tk_event_doc *doc, char *why,
                    size_t whylen);
void tk_event_doc_free(tk_event_doc *doc);

/*
 * The CloudEvents document of a new event (EVENTS.md), with a fresh id
 * written to id_out. `payload` is borrowed. Caller frees the text.
 */
char *tk_event_encode(const char *source, const char *type, const char *user_id,
                      const char *subject, json_t *payload, char id_out[37]);

#endif

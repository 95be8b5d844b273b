/*
 * Fuzzes the event decoder as the consumer runtime drives it: Kafka headers (traceparent
 * among them) into tk_event, then the value, a CloudEvent or a bare event object, through
 * tk_event_decode. Input: header lines "name: value" (at most 40), an empty line, the value.
 * Without an empty line the whole input is the value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every field of a decoded event must be a readable string. */
static size_t touch(const char *s) { return s ? strlen(s) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *value = data;
    size_t vlen = size;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '\n' && data[i + 1] == '\n') {
            sep = data + i;
            break;
        }
    if (sep) {
        value = sep + 2;
        vlen = size - (size_t)(value - data);
        const uint8_t *line = data;
        for (int n = 0; line < sep && n < 40; n++) {
            const uint8_t *nl = memchr(line, '\n', (size_t)(sep - line));
            const uint8_t *end = nl ? nl : sep;
            const uint8_t *colon = memchr(line, ':', (size_t)(end - line));
            char name[128];
            size_t nlen = (size_t)((colon ? colon : end) - line);
            snprintf(name, sizeof(name), "%.*s", (int)nlen, (const char *)line);
            if (colon) {
                const uint8_t *v = colon + 1;
                if (v < end && *v == ' ')
                    v++;
                rd_kafka_header_add(h, name, -1, v, (ssize_t)(end - v));
            } else {
                rd_kafka_header_add(h, name, -1, NULL, 0); /* a header without a value */
            }
            line = end + 1;
        }
    }
    tk_event ev = {.struct_size = sizeof(tk_event), .value = value, .value_len = vlen};
    tk_event_header hdrs[32];
    char traceparent[128];
    tk_event_headers(&ev, h, hdrs, 32, traceparent, sizeof(traceparent));
    size_t sum = touch(ev.traceparent);
    for (size_t i = 0; i < ev.header_count; i++)
        sum += touch(ev.headers[i].name) + ev.headers[i].value_len;

    /* the value in a buffer of its own size, so a read past it is caught */
    uint8_t *copy = malloc(vlen ? vlen : 1);
    if (copy) {
        memcpy(copy, value, vlen);
        tk_event_doc doc;
        char why[512];
        if (tk_event_decode(vlen ? copy : NULL, vlen, &ev, &doc, why, sizeof(why)) == 0) {
            sum += touch(ev.id) + touch(ev.type) + touch(ev.source) + touch(ev.time) +
                   touch(ev.subject) + touch(ev.user_id) + touch(ev.payload) + touch(ev.data);
            if (!ev.id || !*ev.id || !ev.type || !*ev.type || !ev.payload || !ev.data)
                abort(); /* a decoded event always has these */
            tk_event_doc_free(&doc);
        } else {
            sum += touch(why);
        }
        free(copy);
    }
    rd_kafka_headers_destroy(h);
    return sum == (size_t)-1;
}

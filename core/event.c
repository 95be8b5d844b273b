/* Taskora events: CloudEvents 1.0 JSON (or bare event objects) to tk_event, and back. */
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ids.h"
#include "log.h"

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

void tk_event_init(tk_event *ev, const char *topic, const char *group, const void *value,
                   size_t len)
{
    *ev = (tk_event){.struct_size = sizeof(tk_event),
                     .topic = topic,
                     .partition = -1,
                     .offset = -1,
                     .value = value,
                     .value_len = len,
                     .attempt = 1,
                     .group = group};
}

int tk_event_decode(const void *value, size_t len, tk_event *ev, tk_event_doc *doc, char *why,
                    size_t whylen)
{
    memset(doc, 0, sizeof(*doc));
    json_error_t je;
    doc->root = value ? json_loadb(value, len, 0, &je) : NULL;
    if (!doc->root && value && tk_config_json_no_memory(&je)) {
        snprintf(why, whylen, "out of memory");
        return TK_ENOMEM;
    }
    if (!doc->root) {
        snprintf(why, whylen, "not JSON: %s", value ? je.text : "empty message");
        return TK_EINVAL;
    }
    if (!json_is_object(doc->root)) {
        snprintf(why, whylen, "not an event: the value is not a JSON object");
        tk_event_doc_free(doc);
        return TK_EINVAL;
    }
    json_t *ce = json_object_get(doc->root, "specversion") ? doc->root : NULL;
    json_t *data = ce ? json_object_get(ce, "data") : doc->root;
    if (data && !json_is_object(data))
        data = NULL;
    ev->id = ce ? str(ce, "id") : NULL;
    ev->type = ce ? str(ce, "type") : NULL;
    ev->source = ce ? str(ce, "source") : NULL;
    ev->time = ce ? str(ce, "time") : NULL;
    ev->subject = ce ? str(ce, "subject") : NULL;
    if (!ev->id)
        ev->id = str(data, "event_id");
    if (!ev->type)
        ev->type = str(data, "event_type");
    if (!ev->time)
        ev->time = str(data, "timestamp");
    json_t *uid = json_object_get(data, "user_id");
    if (json_is_string(uid))
        ev->user_id = json_string_value(uid);
    else if (json_is_integer(uid)) {
        snprintf(doc->user_id, sizeof(doc->user_id), "%lld", (long long)json_integer_value(uid));
        ev->user_id = doc->user_id;
    }
    if (!ev->id || !*ev->id || !ev->type || !*ev->type) {
        snprintf(why, whylen, "not an event: no %s", !ev->id || !*ev->id ? "id" : "type");
        tk_event_doc_free(doc);
        return TK_EINVAL;
    }
    json_t *payload = json_object_get(data, "payload");
    doc->payload = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    doc->data = data ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    if (!doc->payload || !doc->data) {
        snprintf(why, whylen, "out of memory");
        tk_event_doc_free(doc);
        return TK_ENOMEM;
    }
    ev->payload = doc->payload;
    ev->data = doc->data;
    return 0;
}

void tk_event_headers(tk_event *ev, const rd_kafka_headers_t *h, tk_event_header *hdrs, size_t max,
                      char *tp, size_t tplen)
{
    if (!h)
        return;
    const char *name;
    const void *val;
    size_t sz;
    for (size_t i = 0; i < max && !rd_kafka_header_get_all(h, i, &name, &val, &sz); i++) {
        hdrs[i] = (tk_event_header){name, val, sz};
        ev->header_count = i + 1;
        if (strcmp(name, "traceparent") == 0 && val && sz < tplen) {
            memcpy(tp, val, sz);
            tp[sz] = '\0';
            ev->traceparent = tp;
        }
    }
    ev->headers = hdrs;
}

void tk_event_doc_free(tk_event_doc *doc)
{
    json_decref(doc->root);
    free(doc->payload);
    free(doc->data);
    memset(doc, 0, sizeof(*doc));
}

char *tk_event_encode(const char *source, const char *type, const char *user_id,
                      const char *subject, json_t *payload, char id_out[37])
{
    char now[48];
    tk_uuid4(id_out);
    tk_time_iso8601(now, sizeof(now));
    json_t *data = json_pack("{s:s,s:s,s:s,s:s?,s:O}", "event_id", id_out, "event_type", type,
                             "timestamp", now, "user_id", user_id, "payload", payload);
    json_t *ce = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:o}", "specversion", "1.0", "id", id_out,
                           "source", source, "type", type, "time", now, "datacontenttype",
                           "application/json", "subject", subject, "data", data);
    char *text = ce ? json_dumps(ce, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ce);
    return text;
}

/*
 * Dapr interop. Deployments that keep a Dapr sidecar can subscribe through
 * it instead of a Kafka consumer group: GET /dapr/subscribe tells the
 * sidecar which topics the loaded consumer plugins want and where to push
 * them; a pushed event reaches the same consume handler as one read from
 * Kafka, and the answer tells Dapr to ack, retry or drop it. Deliveries are
 * taken only with the sidecar's app API token (dapr.app_token, sent as
 * dapr-api-token); without one configured their route is not served.
 */
#include "dapr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "http_request.h"
#include "http_response.h"
#include "log.h"

typedef struct dapr {
    tk_loader *loader;
    char *pubsub, *token;
} dapr;

static dapr g_dapr; /* one per process, like the HTTP server */

static int route_subscribe(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    dapr *d = ud;
    (void)req;
    json_t *list = json_array();
    for (size_t i = 0; list && i < d->loader->n; i++) {
        tk_instance *inst = d->loader->inst[i];
        if (!inst->consume)
            continue;
        const char *route = json_string_value(json_object_get(inst->consume, "dapr_route"));
        char def[300];
        snprintf(def, sizeof(def), "/dapr/events/%s", inst->name);
        json_t *t;
        size_t k;
        json_array_foreach(json_object_get(inst->consume, "topics"), k, t)
        {
            if (json_array_append_new(list, json_pack("{s:s,s:O,s:s}", "pubsubname", d->pubsub,
                                                      "topic", t, "route", route ? route : def))) {
                json_decref(list);
                return TK_ENOMEM; /* a partial list would unsubscribe the rest */
            }
        }
    }
    return tk_http_json_reply(resp, 200, list);
}

static int route_event(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    dapr *d = ud;
    /* only registered with a token (tk_dapr_routes) */
    if (!tk_secret_equal(d->token, tk_http_req_header(req, "dapr-api-token")))
        return tk_http_resp_error(resp, 401, "Invalid dapr-api-token");
    const char *name = tk_http_req_param(req, "instance");
    tk_instance *inst = name ? tk_loader_find(d->loader, name) : NULL;
    if (!inst || !inst->consume)
        return tk_http_resp_error(resp, 404, "No consumer instance of that name");
    size_t len = 0;
    const char *body = tk_http_req_body(req, &len);
    char group[300];
    json_t *t0 = json_array_get(json_object_get(inst->consume, "topics"), 0);
    tk_event ev;
    tk_event_init(&ev, json_string_value(t0), tk_instance_group(inst, group, sizeof(group)), body,
                  len);
    ev.traceparent = tk_http_req_header(req, "traceparent");
    tk_event_doc doc;
    char why[512];
    int rc = tk_event_decode(body, len, &ev, &doc, why, sizeof(why));
    if (rc == TK_ENOMEM) { /* not the event's fault: Dapr delivers it again */
        tk_logf(inst->name, TK_LOG_ERROR, "dapr delivery: %s; asking for a retry", why);
        return tk_http_json_reply(resp, 200, json_pack("{s:s}", "status", "RETRY"));
    }
    if (rc != 0) {
        tk_logf(inst->name, TK_LOG_WARN, "dapr delivery dropped: %s", why);
        return tk_http_json_reply(resp, 200, json_pack("{s:s}", "status", "DROP"));
    }
    const tk_event *one = &ev;
    tk_consume_result r;
    tk_instance_consume(inst, &one, 1, &r);
    tk_event_doc_free(&doc);
    return tk_http_json_reply(resp, 200,
                              json_pack("{s:s}", "status",
                                        r == TK_CONSUME_OK      ? "SUCCESS"
                                        : r == TK_CONSUME_RETRY ? "RETRY"
                                                                : "DROP"));
}

/* clang-format off */
static const char SUBSCRIBE_DOC[] =
    "{\"paths\": {\"/dapr/subscribe\": {\"get\": {\"operationId\": \"dapr_subscribe\","
    " \"summary\": \"Dapr programmatic subscription\", \"description\": \"Asked by the Dapr"
    " sidecar at start: the topics the loaded consumer instances want and the route each is"
    " delivered to.\", \"security\": [], \"responses\": {\"200\": {\"description\":"
    " \"The subscriptions\", \"content\": {\"application/json\": {\"schema\": {\"type\":"
    " \"array\", \"items\": {\"type\": \"object\", \"required\": [\"pubsubname\","
    " \"topic\", \"route\"], \"properties\": {\"pubsubname\": {\"type\": \"string\"},"
    " \"topic\": {\"type\": \"string\"}, \"route\": {\"type\": \"string\"}}}}}}}}}}}}";

static const char EVENTS_DOC[] =
    "{\"paths\": {\"/dapr/events/{instance}\": {\"post\": {\"operationId\": \"dapr_event\","
    " \"summary\": \"An event pushed by the Dapr sidecar\", \"description\": \"Hands the"
    " CloudEvent to the consumer instance named in the path; the answer tells Dapr to ack, retry"
    " or drop it.\", \"security\": [{\"daprApiToken\": []}], \"parameters\": [{\"name\":"
    " \"instance\", \"in\": \"path\", \"required\": true, \"description\": \"A consumer"
    " instance's name\", \"schema\": {\"type\": \"string\"}}], \"requestBody\": {\"required\":"
    " true, \"content\": {\"application/cloudevents+json\": {\"schema\": {\"type\":"
    " \"object\"}}, \"application/json\": {\"schema\": {\"type\": \"object\"}}}},"
    " \"responses\": {\"200\": {\"description\": \"What Dapr does with the event\","
    " \"content\": {\"application/json\": {\"schema\": {\"type\": \"object\", \"required\":"
    " [\"status\"], \"properties\": {\"status\": {\"enum\": [\"SUCCESS\", \"RETRY\","
    " \"DROP\"]}}}}}}, \"401\": {\"$ref\": \"#/components/responses/Unauthorized\"},"
    " \"404\": {\"$ref\": \"#/components/responses/NotFound\"}}}}},"
    " \"components\": {\"securitySchemes\": {\"daprApiToken\": {\"type\": \"apiKey\","
    " \"in\": \"header\", \"name\": \"dapr-api-token\", \"description\": \"The sidecar's"
    " app API token (dapr.app_token)\"}}}}";
/* clang-format on */

/* Describes what was registered; the fragments are the core's, so a failure is a bug. */
static int describe(tk_http_server *http, const char *fragment)
{
    char err[512];
    int rc = tk_http_describe(http, "core", fragment, err, sizeof(err));
    if (rc)
        tk_logf(NULL, TK_LOG_ERROR, "dapr: its routes' description: %s", err);
    return rc;
}

int tk_dapr_routes(tk_http_server *http, tk_loader *loader, const char *pubsub,
                   const char *app_token)
{
    free(g_dapr.pubsub);
    free(g_dapr.token);
    g_dapr.loader = loader;
    g_dapr.pubsub = strdup(pubsub && *pubsub ? pubsub : "pubsub");
    g_dapr.token = app_token && *app_token ? strdup(app_token) : NULL;
    if (!g_dapr.pubsub || (app_token && *app_token && !g_dapr.token))
        return TK_ENOMEM;
    int rc = tk_http_route(http, "GET", "/dapr/subscribe", route_subscribe, &g_dapr, "core");
    if (rc == 0)
        rc = describe(http, SUBSCRIBE_DOC);
    /* Deliveries push events into consumers (and on to users' streams): without a token
     * anyone who reaches the port could forge them, so the route is then not served. */
    if (rc == 0 && g_dapr.token) {
        rc = tk_http_route(http, "POST", "/dapr/events/{instance}", route_event, &g_dapr, "core");
        rc = rc ? rc : describe(http, EVENTS_DOC);
    } else if (rc == 0)
        tk_logf(NULL, TK_LOG_WARN,
                "dapr: no dapr.app_token, so POST /dapr/events/{instance} is not served (set it "
                "to the sidecar's app API token)");
    return rc;
}

void tk_dapr_free(void)
{
    free(g_dapr.pubsub);
    free(g_dapr.token);
    memset(&g_dapr, 0, sizeof(g_dapr));
}

/* A fake of the whole host table, so a plugin can be unit-tested without taskorad. */
#ifndef TK_FAKE_HOST_H
#define TK_FAKE_HOST_H

#include <jansson.h>

#include "taskora/plugin.h"

/* The fake's instance: config given by the test, routes and metrics recorded. */
typedef struct fake_route {
    char method[16];
    char pattern[256];
    tk_http_handler handler;
    void *ud;
} fake_route;

struct tk_instance {
    const char *name;
    json_t *config;
    fake_route routes[16];
    int nroutes;
    json_t *metrics; /* {"name{v1,v2}": value} */
};

/* A fake request: the test fills what the handler reads. */
struct tk_http_request {
    const char *method, *path, *body;
    json_t *params, *query, *headers; /* objects of strings, may be NULL */
};

struct tk_http_response {
    int status;
    char *content_type;
    char *body;
    size_t len;
    json_t *headers;
};

/* The table: every entry works on the structures above. */
extern const tk_host fake_host;

void fake_instance_init(tk_instance *inst, const char *name, const char *config_json);
void fake_instance_clear(tk_instance *inst);
/* Calls the handler registered for method+pattern; returns its return code. */
int fake_call(tk_instance *inst, const char *method, const char *pattern,
              const tk_http_request *req, tk_http_response *resp);
void fake_response_clear(tk_http_response *resp);
/* The value of a metric series, e.g. "taskora_hello_events_total{task.created}". */
double fake_metric(const tk_instance *inst, const char *key);

#endif

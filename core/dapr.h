/* Dapr interop: the programmatic subscription list and push delivery to consume handlers. */
#ifndef TK_CORE_DAPR_H
#define TK_CORE_DAPR_H

#include "http_server.h"
#include "loader.h"

/*
 * Registers GET /dapr/subscribe (the topics of every instance with a
 * `consume` section, with its `dapr_route`, else /dapr/events/<instance>)
 * and POST /dapr/events/{instance} (a Dapr-delivered event handed to the
 * instance's handler; {"status": SUCCESS | RETRY | DROP}). `pubsub` names
 * the Dapr component. Deliveries must carry `app_token` in the
 * dapr-api-token header (Dapr's APP_API_TOKEN; 401 otherwise); with a NULL
 * or empty `app_token` the delivery route is not registered at all (404).
 * Before the server starts. 0, TK_EEXIST when a plugin took a route, or TK_ENOMEM.
 */
int tk_dapr_routes(tk_http_server *http, tk_loader *loader, const char *pubsub,
                   const char *app_token);
/* Frees what tk_dapr_routes kept (after the server stopped). */
void tk_dapr_free(void);

#endif

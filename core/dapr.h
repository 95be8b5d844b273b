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
 * the Dapr component; a non-empty `app_token` must come in the
 * dapr-api-token header (Dapr's APP_API_TOKEN). Before the server starts.
 */
int tk_dapr_routes(tk_http_server *http, tk_loader *loader, const char *pubsub,
                   const char *app_token);
/* Frees what tk_dapr_routes kept (after the server stopped). */
void tk_dapr_free(void);

#endif

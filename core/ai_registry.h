/* AI providers by instance name, and the chat calls made through them (the host's ai_chat). */
#ifndef TK_CORE_AI_REGISTRY_H
#define TK_CORE_AI_REGISTRY_H

#include "instance.h"
#include "taskora/plugin.h"

typedef struct tk_ai_registry tk_ai_registry;

/* An empty registry, or NULL when out of memory. */
tk_ai_registry *tk_ai_registry_new(void);
void tk_ai_registry_free(tk_ai_registry *r);

/*
 * Registers inst under its name when its plugin provides AI functions (other
 * instances are left out). Before the instances are initialised: the registry
 * is read without a lock afterwards. 0, or TK_ENOMEM.
 */
int tk_ai_registry_add(tk_ai_registry *r, tk_instance *inst);

/* The initialised provider instance named `name`, with its functions in *ai; or NULL. */
tk_instance *tk_ai_registry_find(const tk_ai_registry *r, const char *name,
                                 const tk_ai_provider **ai);

/*
 * One chat call from `caller` through the provider instance named `provider`
 * (see the host table's ai_chat): retried and broken per the runtime's
 * resiliency under the target "ai.<provider>", counted in the taskora_ai_*
 * metrics, logged when it fails.
 */
int tk_ai_chat(const tk_instance *caller, const char *provider, const char *request_json,
               char **response_json, tk_failure *f);

#endif

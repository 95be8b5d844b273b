/* The host function table handed to plugins: each entry forwards to a core module. */
#ifndef TK_CORE_HOST_H
#define TK_CORE_HOST_H

#include "instance.h"
#include "taskora/plugin.h"

/* The host function table given to plugins. */
const tk_host *tk_host_table(void);

/* Frees the metric handles an instance was given. */
void tk_instance_free_metrics(tk_instance *inst);

#endif

/* The plugin loader: finds, checks and loads plugin types, and runs instances' lifecycles. */
#ifndef TK_CORE_LOADER_H
#define TK_CORE_LOADER_H

#include <stddef.h>

#include "instance.h"
#include "runtime.h"
#include "settings.h"

typedef struct tk_loader {
    tk_plugin_type *types;
    tk_instance **inst;
    size_t n;
    tk_runtime *rt;
} tk_loader;

/*
 * Loads every configured plugin type and checks it (file, ELF, entry
 * symbol, ABI, descriptor) and each instance's config, running no plugin
 * code but the entry function and the descriptor's `check` (ABI 1.9). On failure: one line in err
 * naming the file and reason; the loader is left for tk_loader_close.
 */
int tk_loader_open(tk_loader *l, const tk_settings *s, tk_runtime *rt, char *err, size_t errlen);
/* init() each instance in order; on failure destroys the ones already initialised. */
int tk_loader_init(tk_loader *l, char *err, size_t errlen);
/* start() each instance in order; on failure stops the ones already started. */
int tk_loader_start(tk_loader *l, char *err, size_t errlen);
/* reload() each started instance that has the hook (SIGHUP), in order. */
void tk_loader_reload(tk_loader *l);
/* stop() started instances in reverse order. */
void tk_loader_stop(tk_loader *l);
/* destroy() initialised instances in reverse order. */
void tk_loader_destroy(tk_loader *l);
/* Frees everything and unloads the plugin files. */
void tk_loader_close(tk_loader *l);

/* The folders searched for a plugin name, in order (colon-separated), for messages. */
void tk_loader_search_path(const tk_settings *s, char *buf, size_t len);

/* The instance of that name, or NULL. */
tk_instance *tk_loader_find(tk_loader *l, const char *name);

#endif

/* A plugin whose second migration fails half-way: migrate must roll it back, name it, and not
 * go on to the third. */
#include <taskora/plugin.h>

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    (void)host;
    (void)inst;
    *state = 0;
    return TK_OK;
}

static const char *const migrations[] = {
    "CREATE TABLE bad_migration_ok (id integer PRIMARY KEY)",
    "CREATE TABLE bad_migration_half (id integer); SELECT 1 / 0",
    "CREATE TABLE bad_migration_after (id integer)",
    NULL,
};

static const tk_plugin desc = {
    TK_PLUGIN_HEADER, .name = "bad_migration", .version = "1.0.0", .migrations = migrations,
    .init = init,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

/* A plugin built for a newer ABI minor than the host provides: the host must refuse it. */
#include <taskora/plugin.h>

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    (void)host;
    (void)inst;
    *state = 0;
    return TK_OK;
}

static const tk_plugin desc = {
    .abi_major = TK_PLUGIN_ABI_MAJOR,
    .abi_minor = TK_PLUGIN_ABI_MINOR + 1,
    .struct_size = sizeof(tk_plugin),
    .name = "abi_minor",
    .version = "9.9.9",
    .init = init,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

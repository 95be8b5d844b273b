/* A plugin whose descriptor is smaller than any ABI 1.x descriptor: the host must refuse it. */
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
    .abi_minor = 0,
    .struct_size = 16,
    .name = "small_descriptor",
    .version = "9.9.9",
    .init = init,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }

/* A shared object that exports a misspelt entry symbol: not a Taskora plugin. */
#include <taskora/plugin.h>

TK_PLUGIN_EXPORT int taskora_plugin_entri(void);
int taskora_plugin_entri(void) { return 0; }

/* `taskorad run`: start the configured plugins, serve, and shut down cleanly on a signal. */
#ifndef TK_CORE_DAEMON_H
#define TK_CORE_DAEMON_H

#include <signal.h>

#include "settings.h"

/* Blocks the signals `run` and `broker` handle themselves; call before any thread starts. */
void tk_signals_block(sigset_t *set);

/* Runs until SIGTERM/SIGINT. Returns the process exit code (0 clean, 1 runtime, 2 config). */
int tk_daemon_run(const tk_settings *s);

#endif

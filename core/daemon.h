/* `taskorad run`: start the configured plugins, serve, and shut down cleanly on a signal. */
#ifndef TK_CORE_DAEMON_H
#define TK_CORE_DAEMON_H

#include <signal.h>

#include "settings.h"

/* The signals the host handles itself; blocked in every thread from the start of main. */
void tk_signals_block(sigset_t *set);

/* Runs until SIGTERM/SIGINT. Returns the process exit code (0 clean, 1 runtime, 2 config). */
int tk_daemon_run(const tk_settings *s);

#endif

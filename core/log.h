/* Logging for the host and its plugins: JSON lines or a readable dev format. */
#ifndef TK_CORE_LOG_H
#define TK_CORE_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "taskora/plugin.h"

typedef enum tk_log_format { TK_LOG_FORMAT_JSON = 0, TK_LOG_FORMAT_TEXT = 1 } tk_log_format;

/* Sets level and format; output goes to `out` (stderr by default). Main thread, before threads
 * start. */
void tk_log_setup(tk_log_level level, tk_log_format format, FILE *out);
/* Parses "debug|info|warn|error" / "json|text". Return 0 or TK_EINVAL. */
int tk_log_level_parse(const char *s, tk_log_level *out);
int tk_log_format_parse(const char *s, tk_log_format *out);
int tk_log_enabled(tk_log_level level);

/* Writes one line: `plugin` may be NULL (the core); `kv` holds nkv key/value pairs. Any thread. */
void tk_log_write(const char *plugin, tk_log_level level, const char *msg, const char *const *kv,
                  size_t nkv);
void tk_logf(const char *plugin, tk_log_level level, const char *fmt, ...) TK_PRINTF(3, 4);
void tk_logv(const char *plugin, tk_log_level level, const char *fmt, va_list ap);

/*
 * Sets what the calling thread is working on (an HTTP request, a consumed
 * event), or clears it with NULLs: its JSON log lines then carry
 * request_id / traceparent, and outbox_append uses the traceparent when the
 * caller gives none. The strings must outlive the context.
 */
void tk_log_context(const char *request_id, const char *traceparent);
const char *tk_log_context_traceparent(void);

/* Non-zero when a field of this name must never be printed. */
int tk_log_key_is_secret(const char *key);

/* The current UTC time as ISO 8601 with microseconds and +00:00 into buf (>= 40 bytes). */
void tk_time_iso8601(char *buf, size_t len);

#endif

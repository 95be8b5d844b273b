/* Resiliency for remote calls: retries with backoff and a circuit breaker per target. */
#ifndef TK_CORE_RESILIENCE_H
#define TK_CORE_RESILIENCE_H

#include <jansson.h>

#include "metrics.h"
#include "taskora/plugin.h"

/* The "resiliency" section's schema (defaults: 3 attempts 1 s apart, open after 5 failures
 * for 30 s, 60 s for a whole call), for the settings. */
extern const tk_config_field tk_resilience_fields[];

typedef struct tk_resilience_policy {
    int attempts;     /* tries in all, >= 1 */
    int delay_ms;     /* before the first retry; each next one is `backoff` times longer */
    double backoff;   /* >= 1 */
    int max_delay_ms; /* a longer wait (the server's Retry-After included) is not made */
    int timeout_ms;   /* the whole call, attempts and waits together */
    int failures;     /* consecutive failed attempts that open the circuit */
    int open_ms;      /* how long it stays open before one trial call (half-open) */
} tk_resilience_policy;

typedef struct tk_resilience tk_resilience;

/*
 * Reads a validated "resiliency" section (NULL: defaults). "targets" holds
 * per-target overrides of the same keys, e.g. {"ai.gemini": {"retry":
 * {"attempts": 5}}}; they are validated here. NULL with a reason in err.
 */
tk_resilience *tk_resilience_new(json_t *section, tk_metrics *metrics, char *err, size_t errlen);
void tk_resilience_free(tk_resilience *r);

/* The policy that applies to target (its overrides over the defaults). */
tk_resilience_policy tk_resilience_policy_for(tk_resilience *r, const char *target);

/*
 * Calls fn under target's policy and breaker (see the host table's
 * resilient_call in plugin.h for the rules); with r NULL, once. Any thread.
 */
int tk_resilient_call(tk_resilience *r, const char *target, tk_attempt_fn fn, void *ud,
                      tk_failure *f);

/* Shutdown: retry waits end now and no new ones start (calls return their last failure). */
void tk_resilience_stop(tk_resilience *r);

/* "closed", "open" or "half-open" (for tests and logs). */
const char *tk_resilience_state(tk_resilience *r, const char *target);

#endif

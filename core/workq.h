/* A fixed pool of threads running queued jobs, with a bounded queue. */
#ifndef TK_CORE_WORKQ_H
#define TK_CORE_WORKQ_H

#include <stddef.h>

typedef struct tk_workq tk_workq;

/* Starts `threads` threads; at most `max_queued` jobs wait; `name` (static) is for messages.
 * NULL when out of memory or threads. */
tk_workq *tk_workq_new(const char *name, int threads, int max_queued);
/*
 * Queues fn(arg) for a pool thread. TK_OK, or TK_EUNAVAILABLE when the
 * queue is full or the pool is stopping (fn is then not called).
 */
int tk_workq_push(tk_workq *q, void (*fn)(void *arg), void *arg);
/*
 * Stops taking jobs (push answers TK_EUNAVAILABLE from now on), hands every
 * job not yet started to cancel(arg) (NULL: runs them), and joins the
 * threads once the running ones return. The pool stays valid until freed.
 */
void tk_workq_stop(tk_workq *q, void (*cancel)(void *arg));
/* Stops (running what is queued) if not stopped yet, and frees the pool. */
void tk_workq_free(tk_workq *q);

#endif

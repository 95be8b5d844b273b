/* What `taskorad migrate` and its --status/--dry-run share: the components and the connection. */
#ifndef TK_CORE_MIGRATE_INTERNAL_H
#define TK_CORE_MIGRATE_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "loader.h"

/* Called once per component; returns a count (steps applied, steps pending) or < 0 to stop. */
typedef int (*tk_migrate_visit_fn)(void *arg, const char *component, const char *const *steps,
                                   char *err, size_t errlen);

/*
 * Visits the components in the order migrate applies them: the core, each plugin type with
 * steps (in the order the config first names it), then each instance's own steps (ABI 1.9,
 * recorded under the instance's name). Returns the sum of the counts, or the first < 0.
 */
int tk_migrate_each(const tk_loader *l, tk_migrate_visit_fn fn, void *arg, char *err,
                    size_t errlen);

/* A connection for migrate (notices muted); NULL with err set when the server is unreachable. */
PGconn *tk_migrate_connect(const char *url, char *err, size_t errlen);

/* The error of a failed result; libpq gives no result at all when the connection broke. */
const char *tk_migrate_error(PGconn *c, const PGresult *r);

/* Runs SQL that returns nothing of interest; 0, or TK_ERR with the server's error in err. */
int tk_migrate_exec(PGconn *c, const char *sql, char *err, size_t errlen);

/* Strips trailing newlines and spaces (libpq's messages end in one). */
void tk_migrate_trim(char *s);

#endif

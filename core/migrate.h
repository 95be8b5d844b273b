/* Schema migrations: the core's and each configured plugin's, each applied once per database. */
#ifndef TK_CORE_MIGRATE_H
#define TK_CORE_MIGRATE_H

#include <stdio.h>

#include "loader.h"

/*
 * Applies pending migrations of the core, then of each plugin type in
 * config order, each step in its own transaction, under an advisory lock so
 * that concurrent runs apply every step once. Prints each step applied (or
 * that nothing was to do) to out. 0 on success; on failure a negative code
 * and a line in err naming the component and step.
 */
int tk_migrate(const char *url, const tk_loader *l, FILE *out, char *err, size_t errlen);

/* What a database holds against this build's steps. */
typedef struct {
    int pending; /* steps this build has that the database has not applied */
    int changed; /* applied steps whose text this build has changed: migrate refuses them */
    int unknown; /* applied steps this build does not have (a newer build ran them) */
} tk_migrate_summary;

/*
 * Compares the database with this build's steps in a read-only session, changing nothing
 * (a missing taskora_migrations table means every step is pending). With dry_run 0 it lists,
 * per component in apply order, every step as applied (with when) or pending; with dry_run 1
 * it prints each pending step with its SQL, indented. Both flag changed and unknown steps and
 * end with a summary line. 0 with sum filled in; TK_EUNAVAILABLE when the server cannot be
 * reached, another negative code when a query fails (err says which).
 */
int tk_migrate_status(const char *url, const tk_loader *l, int dry_run, FILE *out,
                      tk_migrate_summary *sum, char *err, size_t errlen);

#endif

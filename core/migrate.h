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

#endif

/*
 * A small SQL builder for statements with optional parts (the task list, a task's update). It
 * refuses to overflow: a part or a parameter that does not fit marks the statement as failed
 * (sqlb_check), and the statement is never run cut short.
 */
#ifndef HTTP_API_SQLB_H
#define HTTP_API_SQLB_H

#include <stddef.h>

#define SQLB_MAX_SQL 4096  /* bytes of the statement, its NUL included */
#define SQLB_MAX_PARAMS 24 /* parameters, $1 to $24 */

/* Start with sqlb b = {0}. */
typedef struct sqlb {
    char sql[SQLB_MAX_SQL];
    size_t len;
    const char *p[SQLB_MAX_PARAMS];
    int n;
    int overflow; /* a part or a parameter did not fit */
} sqlb;

/* Appends formatted text to the statement; after an overflow, nothing. */
void sqlb_add(sqlb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a parameter and returns its number ($n); 0 (and an overflow) when there are 24. */
int sqlb_param(sqlb *b, const char *value);
/* TK_OK when the statement was built whole; TK_ERR after an overflow: never run it. */
int sqlb_check(const sqlb *b);

#endif

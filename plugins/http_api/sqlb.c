/* The SQL builder (sqlb.h). */
#include "sqlb.h"

#include <stdarg.h>
#include <stdio.h>

#include <taskora/plugin.h>

void sqlb_add(sqlb *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    size_t room = sizeof(b->sql) - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->sql + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        b->overflow = 1;
        b->sql[b->len] = '\0'; /* the statement as it was, without half a part */
        return;
    }
    b->len += (size_t)n;
}

int sqlb_param(sqlb *b, const char *value)
{
    if (b->n >= SQLB_MAX_PARAMS) {
        b->overflow = 1;
        return 0;
    }
    b->p[b->n] = value;
    return ++b->n;
}

int sqlb_check(const sqlb *b) { return b->overflow ? TK_ERR : TK_OK; }

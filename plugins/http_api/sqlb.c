/* The SQL builder (sqlb.h). */
#include "sqlb.h"

#include <stdarg.h>
#include <stdio.h>

void sqlb_add(sqlb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->sql + b->len, sizeof(b->sql) - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len = b->len + (size_t)n < sizeof(b->sql) ? b->len + (size_t)n : sizeof(b->sql) - 1;
}

int sqlb_param(sqlb *b, const char *value)
{
    b->p[b->n] = value;
    return ++b->n;
}

/* A growing byte buffer for building strings: log lines, metrics text, substituted values. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(tk_buf *b, size_t more)
{
    if (b->oom)
        return TK_ENOMEM;
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + more + 1 > cap)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return TK_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int tk_buf_put(tk_buf *b, const void *data, size_t n)
{
    if (reserve(b, n))
        return TK_ENOMEM;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int tk_buf_puts(tk_buf *b, const char *s) { return tk_buf_put(b, s, strlen(s)); }

int tk_buf_printf(tk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n))
        return TK_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void tk_buf_free(tk_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

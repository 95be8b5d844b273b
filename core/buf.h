/* A growing byte buffer for building strings: log lines, metrics text, substituted values. */
#ifndef TK_CORE_BUF_H
#define TK_CORE_BUF_H

#include <stddef.h>

#include "taskora/plugin.h"

/* Zero-initialise; p is NUL-terminated once anything was put. After a failed
 * allocation `oom` is set and later puts do nothing. */
typedef struct tk_buf {
    char *p;
    size_t len, cap;
    int oom;
} tk_buf;

/* Each returns 0, or TK_ENOMEM (and sets oom). */
int tk_buf_put(tk_buf *b, const void *data, size_t n);
int tk_buf_puts(tk_buf *b, const char *s);
int tk_buf_printf(tk_buf *b, const char *fmt, ...) TK_PRINTF(2, 3);
/* Frees the memory and zeroes the buffer. */
void tk_buf_free(tk_buf *b);

#endif

/* A small SQL builder for statements with optional parts (the task list, a task's update). */
#ifndef HTTP_API_SQLB_H
#define HTTP_API_SQLB_H

#include <stddef.h>

typedef struct sqlb {
    char sql[4096];
    size_t len;
    const char *p[24];
    char own[24][32]; /* storage for parameters formatted here */
    int n;
} sqlb;

/* Appends formatted text to the statement. */
void sqlb_add(sqlb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a parameter and returns its number ($n). */
int sqlb_param(sqlb *b, const char *value);

#endif

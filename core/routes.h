/* The HTTP route registry: method + path pattern with {params}, literal segments first. */
#ifndef TK_CORE_ROUTES_H
#define TK_CORE_ROUTES_H

#include <stddef.h>

#include "taskora/plugin.h"

#define TK_ROUTE_MAX_SEGS 32

typedef struct tk_route {
    char *method;
    char *pattern;
    char **segs; /* "{id}" segments are parameters */
    size_t nsegs;
    tk_http_handler handler;
    void *ud;
    char *owner; /* instance name, or "core" */
    struct tk_route *next;
} tk_route;

typedef struct tk_routes tk_routes;

typedef struct tk_route_match {
    const tk_route *route;
    size_t nparams;
    const char *names[TK_ROUTE_MAX_SEGS];
    const char *values[TK_ROUTE_MAX_SEGS];
    char *buf;       /* the split path the values point into */
    char allow[128]; /* on TK_ESTATE: methods the path accepts, e.g. "GET, PUT" */
} tk_route_match;

tk_routes *tk_routes_new(void);
void tk_routes_free(tk_routes *r);

/*
 * Adds a route. TK_EINVAL for a bad method or pattern (must start with '/',
 * parameters are whole segments), TK_EEXIST when the method and pattern
 * (parameter names aside) is taken. Not thread-safe: only before serving.
 */
int tk_routes_add(tk_routes *r, const char *method, const char *pattern, tk_http_handler handler,
                  void *ud, const char *owner);

/*
 * Finds the route for method and path. 0 on a match (m->route set; free
 * with tk_route_match_clear), TK_ENOTFOUND when no pattern matches the
 * path, TK_ESTATE when patterns match but not for this method (m->allow
 * lists the methods). HEAD matches GET routes. Safe from many threads.
 */
int tk_routes_match(const tk_routes *r, const char *method, const char *path, tk_route_match *m);
void tk_route_match_clear(tk_route_match *m);

/* The first route, for listing. */
const tk_route *tk_routes_first(const tk_routes *r);

#endif

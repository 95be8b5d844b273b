/* The HTTP route registry: method + path pattern with {params}, literal segments first. */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tk_routes {
    tk_route *head, **tail;
};

tk_routes *tk_routes_new(void)
{
    tk_routes *r = calloc(1, sizeof(*r));
    if (r)
        r->tail = &r->head;
    return r;
}

static void route_free(tk_route *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt->method);
    free(rt->pattern);
    free(rt->owner);
    free(rt);
}

void tk_routes_free(tk_routes *r)
{
    if (!r)
        return;
    tk_route *rt = r->head;
    while (rt) {
        tk_route *next = rt->next;
        route_free(rt);
        rt = next;
    }
    free(r);
}

const tk_route *tk_routes_first(const tk_routes *r) { return r ? r->head : NULL; }

static int is_param(const char *seg) { return seg[0] == '{'; }

/* Splits "/a/b/" into "a","b" in place; returns the count or -1 when too many. */
static int split(char *path, char **segs)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(path, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (n == TK_ROUTE_MAX_SEGS)
            return -1;
        segs[n++] = tok;
    }
    return n;
}

static int valid_method(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return 0;
    for (; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return 0;
    return 1;
}

int tk_routes_add(tk_routes *r, const char *method, const char *pattern, tk_http_handler handler,
                  void *ud, const char *owner)
{
    if (!valid_method(method) || !pattern || pattern[0] != '/' || !handler)
        return TK_EINVAL;
    char *copy = strdup(pattern);
    char *segs[TK_ROUTE_MAX_SEGS];
    if (!copy)
        return TK_ENOMEM;
    int n = split(copy, segs);
    int rc = n < 0 ? TK_EINVAL : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t len = strlen(segs[i]);
        int open = strchr(segs[i], '{') != NULL, close = strchr(segs[i], '}') != NULL;
        if ((open || close) &&
            !(segs[i][0] == '{' && segs[i][len - 1] == '}' && len > 2 &&
              !strchr(segs[i] + 1, '{') && strchr(segs[i], '}') == segs[i] + len - 1))
            rc = TK_EINVAL;
    }
    for (tk_route *rt = r->head; rc == 0 && rt; rt = rt->next) {
        if (strcmp(rt->method, method) != 0 || rt->nsegs != (size_t)n)
            continue;
        int same = 1;
        for (int i = 0; same && i < n; i++) {
            if (is_param(rt->segs[i]) != is_param(segs[i]) ||
                (!is_param(segs[i]) && strcmp(rt->segs[i], segs[i]) != 0))
                same = 0;
        }
        if (same)
            rc = TK_EEXIST;
    }
    tk_route *rt = NULL;
    if (rc == 0) {
        rt = calloc(1, sizeof(*rt));
        if (!rt || !(rt->method = strdup(method)) || !(rt->pattern = strdup(pattern)) ||
            !(rt->owner = strdup(owner ? owner : "core")) ||
            !(rt->segs = calloc((size_t)n + 1, sizeof(char *))))
            rc = TK_ENOMEM;
        for (int i = 0; rc == 0 && i < n; i++) {
            if (!(rt->segs[i] = strdup(segs[i])))
                rc = TK_ENOMEM;
            else
                rt->nsegs++;
        }
    }
    free(copy);
    if (rc) {
        route_free(rt);
        return rc;
    }
    rt->handler = handler;
    rt->ud = ud;
    *r->tail = rt;
    r->tail = &rt->next;
    return 0;
}

/* A rank where a literal segment earlier in the path beats a parameter there. */
static unsigned long long rank(const tk_route *rt)
{
    unsigned long long k = 0;
    for (size_t i = 0; i < rt->nsegs; i++)
        k = (k << 1) | (is_param(rt->segs[i]) ? 0u : 1u);
    return k;
}

static int segs_match(const tk_route *rt, char **segs, int n)
{
    if (rt->nsegs != (size_t)n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!is_param(rt->segs[i]) && strcmp(rt->segs[i], segs[i]) != 0)
            return 0;
    return 1;
}

int tk_routes_match(const tk_routes *r, const char *method, const char *path, tk_route_match *m)
{
    memset(m, 0, sizeof(*m));
    m->buf = strdup(path ? path : "/");
    if (!m->buf)
        return TK_ENOMEM;
    char *segs[TK_ROUTE_MAX_SEGS];
    int n = split(m->buf, segs);
    if (n < 0)
        return TK_ENOTFOUND;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    const tk_route *best = NULL;
    int path_matched = 0;
    size_t alen = 0;
    for (const tk_route *rt = r->head; rt; rt = rt->next) {
        if (!segs_match(rt, segs, n))
            continue;
        path_matched = 1;
        if (strcmp(rt->method, want) == 0) {
            if (!best || rank(rt) > rank(best))
                best = rt;
        } else if (!strstr(m->allow, rt->method) &&
                   alen + strlen(rt->method) + 3 < sizeof(m->allow)) {
            alen += (size_t)snprintf(m->allow + alen, sizeof(m->allow) - alen, "%s%s",
                                     alen ? ", " : "", rt->method);
        }
    }
    if (!best)
        return path_matched ? TK_ESTATE : TK_ENOTFOUND;
    m->route = best;
    for (int i = 0; i < n; i++) {
        if (is_param(best->segs[i])) {
            m->names[m->nparams] = best->segs[i];
            m->values[m->nparams] = segs[i];
            m->nparams++;
        }
    }
    return 0;
}

void tk_route_match_clear(tk_route_match *m)
{
    free(m->buf);
    m->buf = NULL;
    m->route = NULL;
}

/*
 * The API description: fragments checked against the routes their owner
 * registered, merged, and built into one OpenAPI 3.1 document over the
 * whole route table (see http_openapi.h).
 */
#include "http_openapi.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_DEPTH 64 /* nesting of a fragment walked for $refs */
#define DESCRIPTION                                                                                \
    "Every route this taskorad serves, described by the plugin instance that registered it "       \
    "(its tag). Send `Authorization: Bearer <token>` (from POST /api/auth/login) unless an "       \
    "operation says it is public. Errors answer {\"detail\": ...}: a string, an object "           \
    "{code, message}, or a list of validation issues (422)."

struct tk_openapi {
    json_t *paths;      /* pattern -> {method -> operation} */
    json_t *components; /* kind -> {name -> value} */
    json_t *owners;     /* "kind/name" -> the owner that defined it first */
    json_t *tags;       /* tag name -> description */
};

static const char *const methods[] = {"get",     "put",  "post",  "delete", "patch",
                                      "options", "head", "trace", NULL};
static const char *const kinds[] = {
    "schemas", "responses", "parameters", "examples", "requestBodies", "headers", "securitySchemes",
    "links",   "callbacks", "pathItems",  NULL};

/* What one fragment is checked in: the store, the route table, the fragment's components. */
typedef struct check {
    const tk_openapi *oa;
    const tk_routes *routes;
    const char *owner;
    json_t *own;     /* the fragment's components, or NULL */
    json_t *op_ids;  /* operationIds the fragment uses -> "METHOD /path" */
    const char *ctx; /* where, for messages: "GET /x", "components" */
    char *err;
    size_t errlen;
} check;

static int fail(const check *c, int rc, const char *fmt, ...) TK_PRINTF(3, 4);
static int fail(const check *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

tk_openapi *tk_openapi_new(void)
{
    tk_openapi *oa = calloc(1, sizeof(*oa));
    if (!oa)
        return NULL;
    oa->paths = json_object();
    oa->components = json_object();
    oa->owners = json_object();
    oa->tags = json_object();
    if (!oa->paths || !oa->components || !oa->owners || !oa->tags) {
        tk_openapi_free(oa);
        return NULL;
    }
    return oa;
}

void tk_openapi_free(tk_openapi *oa)
{
    if (!oa)
        return;
    json_decref(oa->paths);
    json_decref(oa->components);
    json_decref(oa->owners);
    json_decref(oa->tags);
    free(oa);
}

int tk_openapi_tag(tk_openapi *oa, const char *name, const char *description)
{
    if (!name || !description)
        return TK_EINVAL;
    return json_object_set_new(oa->tags, name, json_string(description)) ? TK_ENOMEM : TK_OK;
}

/* "GET" for "get" (methods are at most 16 characters, see routes.c). */
static void upper(const char *m, char *out, size_t len)
{
    size_t i = 0;
    for (; m[i] && i + 1 < len; i++)
        out[i] = (char)toupper((unsigned char)m[i]);
    out[i] = '\0';
}

static void lower(const char *m, char *out, size_t len)
{
    size_t i = 0;
    for (; m[i] && i + 1 < len; i++)
        out[i] = (char)tolower((unsigned char)m[i]);
    out[i] = '\0';
}

/* The registered route of that method (upper-case) and exact pattern, or NULL. */
static const tk_route *find_route(const tk_routes *routes, const char *method, const char *pattern)
{
    for (const tk_route *rt = tk_routes_first(routes); rt; rt = rt->next)
        if (strcmp(rt->method, method) == 0 && strcmp(rt->pattern, pattern) == 0)
            return rt;
    return NULL;
}

/* Whether `pattern` has the parameter segment {name}. */
static int pattern_has(const char *pattern, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{'))
        if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}')
            return 1;
    return 0;
}

/* Reads one JSON pointer token of `s` (up to '/' or the end) into tok, unescaping ~0 and ~1. */
static const char *pointer_token(const char *s, char *tok, size_t len)
{
    size_t n = 0;
    for (; *s && *s != '/'; s++) {
        char c = *s;
        if (c == '~' && (s[1] == '0' || s[1] == '1'))
            c = *++s == '0' ? '~' : '/';
        if (n + 1 < len)
            tok[n++] = c;
    }
    tok[n] = '\0';
    return *s == '/' ? s + 1 : NULL;
}

/* What "#/components/KIND/NAME/..." points at in the fragment's or the merged components. */
static json_t *resolve(const json_t *merged, const json_t *own, const char *ref)
{
    static const char prefix[] = "#/components/";
    if (strncmp(ref, prefix, sizeof(prefix) - 1) != 0)
        return NULL;
    char kind[64], name[256], tok[256];
    const char *s = pointer_token(ref + sizeof(prefix) - 1, kind, sizeof(kind));
    if (!s)
        return NULL;
    s = pointer_token(s, name, sizeof(name));
    json_t *v = json_object_get(json_object_get(own, kind), name);
    if (!v)
        v = json_object_get(json_object_get(merged, kind), name);
    while (v && s) {
        s = pointer_token(s, tok, sizeof(tok));
        if (json_is_array(v)) {
            char *end;
            long i = strtol(tok, &end, 10);
            v = *tok && !*end && i >= 0 ? json_array_get(v, (size_t)i) : NULL;
        } else {
            v = json_object_get(v, tok);
        }
    }
    return v;
}

/* Every "$ref" string under j must be a local reference that resolves. */
static int check_refs(const check *c, json_t *j, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(c, TK_EINVAL, "%s: nested more than %d levels deep", c->ctx, MAX_DEPTH);
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            int rc = check_refs(c, v, depth + 1);
            if (rc)
                return rc;
        }
    }
    if (!json_is_object(j))
        return 0;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "$ref") == 0 && json_is_string(v)) {
            const char *ref = json_string_value(v);
            if (!resolve(c->oa->components, c->own, ref))
                return fail(c, TK_EINVAL,
                            "%s: $ref \"%s\" does not resolve (references are "
                            "\"#/components/KIND/NAME\", defined in this fragment, by the core or "
                            "by an instance initialised earlier)",
                            c->ctx, ref);
            continue;
        }
        int rc = check_refs(c, v, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* Component names, as OpenAPI allows them. */
static int name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
            return 0;
    return 1;
}

static int check_components(check *c)
{
    const char *kind, *name;
    json_t *group, *v;
    if (!c->own)
        return 0;
    if (!json_is_object(c->own))
        return fail(c, TK_EINVAL, "\"components\" must be an object");
    json_object_foreach(c->own, kind, group)
    {
        if (!in_list(kinds, kind))
            return fail(c, TK_EINVAL,
                        "components.%s: not a kind of component (schemas, responses, parameters, "
                        "examples, requestBodies, headers, securitySchemes, links, callbacks, "
                        "pathItems)",
                        kind);
        if (!json_is_object(group))
            return fail(c, TK_EINVAL, "components.%s must be an object", kind);
        json_object_foreach(group, name, v)
        {
            if (!name_ok(name))
                return fail(c, TK_EINVAL,
                            "components.%s.%s: a name is made of letters, digits, '.', '_', '-'",
                            kind, name);
            if (!json_is_object(v) && !(json_is_boolean(v) && strcmp(kind, "schemas") == 0))
                return fail(c, TK_EINVAL, "components.%s.%s must be an object", kind, name);
            json_t *have = json_object_get(json_object_get(c->oa->components, kind), name);
            if (have && !json_equal(have, v)) {
                char key[512];
                snprintf(key, sizeof(key), "%s/%s", kind, name);
                return fail(c, TK_EEXIST, "components.%s.%s is already defined differently by %s",
                            kind, name, json_string_value(json_object_get(c->oa->owners, key)));
            }
        }
    }
    c->ctx = "components";
    return check_refs(c, c->own, 0);
}

/* The parameters of an operation: objects (or references to them) whose path ones are the
 * pattern's. */
static int check_params(const check *c, json_t *params, const char *pattern)
{
    size_t i;
    json_t *p;
    if (!params)
        return 0;
    if (!json_is_array(params))
        return fail(c, TK_EINVAL, "%s: \"parameters\" must be an array", c->ctx);
    json_array_foreach(params, i, p)
    {
        json_t *ref = json_object_get(p, "$ref");
        if (json_is_string(ref))
            p = resolve(c->oa->components, c->own, json_string_value(ref));
        if (!json_is_object(p))
            return fail(c, TK_EINVAL, "%s: parameter %zu is not an object", c->ctx, i);
        const char *in = json_string_value(json_object_get(p, "in"));
        const char *name = json_string_value(json_object_get(p, "name"));
        if (!in || !name)
            return fail(c, TK_EINVAL, "%s: parameter %zu needs \"name\" and \"in\"", c->ctx, i);
        if (strcmp(in, "path") == 0 && !pattern_has(pattern, name))
            return fail(c, TK_EINVAL, "%s: path parameter \"%s\" is not in the pattern", c->ctx,
                        name);
    }
    return 0;
}

/* Whether a merged operation has the operationId id. */
static int op_id_used(const json_t *paths, const char *id)
{
    const char *path, *m;
    json_t *item, *op;
    json_object_foreach((json_t *)paths, path, item)
    {
        json_object_foreach(item, m, op)
        {
            const char *have = json_string_value(json_object_get(op, "operationId"));
            if (have && strcmp(have, id) == 0)
                return 1;
        }
    }
    return 0;
}

static int check_operation(check *c, const char *path, const char *m, json_t *op)
{
    char up[17];
    upper(m, up, sizeof(up));
    const tk_route *rt = find_route(c->routes, up, path);
    if (!rt || strcmp(rt->owner, c->owner) != 0)
        return fail(c, TK_EINVAL, "describes %s %s, which it does not serve", up, path);
    if (json_object_get(json_object_get(c->oa->paths, path), m))
        return fail(c, TK_EEXIST, "%s: already described", c->ctx);
    if (!json_is_object(op))
        return fail(c, TK_EINVAL, "%s: the operation must be an object", c->ctx);
    json_t *id = json_object_get(op, "operationId"), *tags = json_object_get(op, "tags");
    if (id && !json_is_string(id))
        return fail(c, TK_EINVAL, "%s: \"operationId\" must be a string", c->ctx);
    if (id && (op_id_used(c->oa->paths, json_string_value(id)) ||
               json_object_get(c->op_ids, json_string_value(id))))
        return fail(c, TK_EINVAL, "%s: operationId \"%s\" is already used", c->ctx,
                    json_string_value(id));
    if (id && json_object_set_new(c->op_ids, json_string_value(id), json_string(c->ctx)))
        return fail(c, TK_ENOMEM, "out of memory");
    if (tags && !json_is_array(tags))
        return fail(c, TK_EINVAL, "%s: \"tags\" must be an array of names", c->ctx);
    int rc = check_params(c, json_object_get(op, "parameters"), path);
    return rc ? rc : check_refs(c, op, 0);
}

static int check_paths(check *c, json_t *paths)
{
    const char *path, *m;
    json_t *item, *op;
    if (!json_is_object(paths))
        return fail(c, TK_EINVAL, "a fragment needs \"paths\", an object of path items");
    json_object_foreach(paths, path, item)
    {
        if (!json_is_object(item))
            return fail(c, TK_EINVAL, "paths.%s must be an object", path);
        json_object_foreach(item, m, op)
        {
            if (!in_list(methods, m))
                return fail(c, TK_EINVAL,
                            "paths.%s.%s: a path item holds only operations (get, put, post, "
                            "delete, patch, ...); put parameters in each operation",
                            path, m);
            char ctx[1100], up[17];
            upper(m, up, sizeof(up));
            snprintf(ctx, sizeof(ctx), "%s %.1000s", up, path);
            c->ctx = ctx;
            int rc = check_operation(c, path, m, op);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Takes what the checked fragment adds into the store. */
static int merge(tk_openapi *oa, json_t *f, const char *owner)
{
    const char *kind, *name, *path, *m;
    json_t *group, *v, *item, *op;
    int bad = 0;
    json_object_foreach(json_object_get(f, "components"), kind, group)
    {
        json_t *into = json_object_get(oa->components, kind);
        if (!into && (bad |= json_object_set_new(oa->components, kind, json_object())) == 0)
            into = json_object_get(oa->components, kind);
        json_object_foreach(group, name, v)
        {
            char key[512];
            snprintf(key, sizeof(key), "%s/%s", kind, name);
            if (!json_object_get(oa->owners, key))
                bad |= json_object_set_new(oa->owners, key, json_string(owner));
            bad |= json_object_set(into, name, v);
        }
    }
    json_object_foreach(json_object_get(f, "paths"), path, item)
    {
        json_t *into = json_object_get(oa->paths, path);
        if (!into && (bad |= json_object_set_new(oa->paths, path, json_object())) == 0)
            into = json_object_get(oa->paths, path);
        json_object_foreach(item, m, op) bad |= json_object_set(into, m, op);
    }
    return bad ? TK_ENOMEM : TK_OK;
}

int tk_openapi_add(tk_openapi *oa, const tk_routes *routes, const char *owner, const char *fragment,
                   char *err, size_t errlen)
{
    check c = {.oa = oa, .routes = routes, .owner = owner, .err = err, .errlen = errlen};
    json_error_t je;
    json_t *f = json_loads(fragment ? fragment : "", JSON_REJECT_DUPLICATES, &je);
    if (!f)
        return fail(&c, TK_EINVAL, "the description is not JSON: %s (line %d, column %d)", je.text,
                    je.line, je.column);
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(f))
        rc = fail(&c, TK_EINVAL, "the description must be an object {\"paths\", \"components\"}");
    json_object_foreach(json_is_object(f) ? f : NULL, key, v)
    {
        if (!rc && strcmp(key, "paths") != 0 && strcmp(key, "components") != 0)
            rc = fail(&c, TK_EINVAL, "unknown key \"%s\" (a fragment holds paths and components)",
                      key);
    }
    c.own = json_object_get(f, "components");
    c.op_ids = json_object();
    if (!rc && !c.op_ids)
        rc = fail(&c, TK_ENOMEM, "out of memory");
    rc = rc ? rc : check_components(&c);
    rc = rc ? rc : check_paths(&c, json_object_get(f, "paths"));
    if (!rc && (rc = merge(oa, f, owner)) != 0)
        fail(&c, rc, "out of memory");
    json_decref(c.op_ids);
    json_decref(f);
    return rc;
}

/* ---- the document ---------------------------------------------------------------------------- */

/* The operation's parameters, with each {name} of the pattern that it does not list added. */
static int add_path_params(const tk_openapi *oa, const tk_route *rt, json_t *op)
{
    json_t *params = json_object_get(op, "parameters");
    if (!params) {
        if (json_object_set_new(op, "parameters", json_array()))
            return TK_ENOMEM;
        params = json_object_get(op, "parameters");
    }
    for (size_t s = 0; s < rt->nsegs; s++) {
        if (rt->segs[s][0] != '{')
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)strlen(rt->segs[s]) - 2, rt->segs[s] + 1);
        int listed = 0;
        size_t i;
        json_t *p;
        json_array_foreach(params, i, p)
        {
            json_t *ref = json_object_get(p, "$ref");
            json_t *q =
                json_is_string(ref) ? resolve(oa->components, NULL, json_string_value(ref)) : p;
            const char *in = json_string_value(json_object_get(q, "in"));
            const char *n = json_string_value(json_object_get(q, "name"));
            listed |= in && n && strcmp(in, "path") == 0 && strcmp(n, name) == 0;
        }
        if (!listed && json_array_append_new(params, json_pack("{s:s,s:s,s:b,s:{s:s}}", "name",
                                                               name, "in", "path", "required", 1,
                                                               "schema", "type", "string")))
            return TK_ENOMEM;
    }
    if (json_array_size(params) == 0)
        json_object_del(op, "parameters");
    return TK_OK;
}

/* A unique operationId from the method and the pattern: "get_api_tasks_id". */
static int add_op_id(const tk_route *rt, json_t *op, json_t *ids)
{
    size_t len = strlen(rt->method) + strlen(rt->pattern) + 24;
    char *id = malloc(len);
    if (!id)
        return TK_ENOMEM;
    lower(rt->method, id, len);
    size_t n = strlen(id);
    for (const char *p = rt->pattern; *p; p++) {
        int ok = isalnum((unsigned char)*p);
        if (ok || id[n - 1] != '_')
            id[n++] = ok ? *p : '_';
    }
    while (n > 1 && id[n - 1] == '_')
        n--;
    id[n] = '\0';
    for (int k = 2; json_object_get(ids, id); k++)
        snprintf(id + n, len - n, "_%d", k);
    int rc = json_object_set_new(ids, id, json_true()) ||
             json_object_set_new(op, "operationId", json_string(id));
    free(id);
    return rc ? TK_ENOMEM : TK_OK;
}

/* Adds each of the operation's tags to the document's list, once, in order of appearance. */
static int add_tags(const tk_openapi *oa, json_t *op, const char *owner, json_t *tags, json_t *seen)
{
    if (!json_object_get(op, "tags") && json_object_set_new(op, "tags", json_pack("[s]", owner)))
        return TK_ENOMEM;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(op, "tags"), i, t)
    {
        const char *name = json_string_value(t);
        if (!name || json_object_get(seen, name))
            continue;
        json_t *desc = json_object_get(oa->tags, name);
        json_t *tag = desc ? json_pack("{s:s,s:O}", "name", name, "description", desc)
                           : json_pack("{s:s}", "name", name);
        if (json_array_append_new(tags, tag) || json_object_set_new(seen, name, json_true()))
            return TK_ENOMEM;
    }
    return TK_OK;
}

/* The operation a route is listed with: its description, or the mark of none (logged). */
static json_t *route_operation(const tk_openapi *oa, const tk_route *rt)
{
    char m[17];
    lower(rt->method, m, sizeof(m));
    json_t *op = json_object_get(json_object_get(oa->paths, rt->pattern), m);
    if (op)
        return json_deep_copy(op);
    const char *kv[] = {"method", rt->method, "route", rt->pattern, "instance", rt->owner};
    tk_log_write(rt->owner, TK_LOG_WARN,
                 "route has no description: /openapi.json lists it as undescribed (the instance "
                 "describes its routes with host->http_openapi in init)",
                 kv, 3);
    return json_pack("{s:s,s:b,s:{s:{s:s}}}", "summary", "Undescribed route",
                     "x-taskora-undescribed", 1, "responses", "default", "description",
                     "Not described");
}

/* Fills the document's paths and tags from the route table. */
static int build_paths(const tk_openapi *oa, const tk_routes *routes, json_t *paths, json_t *tags)
{
    json_t *ids = json_object(), *seen = json_object();
    int rc = ids && seen ? TK_OK : TK_ENOMEM;
    const char *path, *m;
    json_t *item, *op;
    json_object_foreach(oa->paths, path, item)
    {
        json_object_foreach(item, m, op)
        {
            const char *id = json_string_value(json_object_get(op, "operationId"));
            if (!rc && id && json_object_set_new(ids, id, json_true()))
                rc = TK_ENOMEM;
        }
    }
    for (const tk_route *rt = tk_routes_first(routes); rt && !rc; rt = rt->next) {
        char lm[17];
        lower(rt->method, lm, sizeof(lm));
        op = route_operation(oa, rt);
        item = json_object_get(paths, rt->pattern);
        if (!item && json_object_set_new(paths, rt->pattern, json_object()) == 0)
            item = json_object_get(paths, rt->pattern);
        rc = op && item ? TK_OK : TK_ENOMEM;
        if (!rc && !json_object_get(op, "operationId"))
            rc = add_op_id(rt, op, ids);
        rc = rc ? rc : add_path_params(oa, rt, op);
        rc = rc ? rc : add_tags(oa, op, rt->owner, tags, seen);
        if (!rc && json_object_set(item, lm, op))
            rc = TK_ENOMEM;
        json_decref(op);
    }
    json_decref(ids);
    json_decref(seen);
    return rc;
}

json_t *tk_openapi_build(tk_openapi *oa, const tk_routes *routes, const char *version)
{
    json_t *paths = json_object(), *tags = json_array();
    json_t *doc =
        json_pack("{s:s,s:{s:s,s:s,s:s}}", "openapi", "3.1.0", "info", "title", "Taskora API",
                  "version", version ? version : "", "description", DESCRIPTION);
    int rc = paths && tags && doc ? build_paths(oa, routes, paths, tags) : TK_ENOMEM;
    if (!rc && (json_object_set(doc, "tags", tags) ||
                json_object_set_new(doc, "security", json_pack("[{s:[]}]", "bearerAuth")) ||
                json_object_set(doc, "paths", paths) ||
                json_object_set_new(doc, "components", json_deep_copy(oa->components))))
        rc = TK_ENOMEM;
    json_decref(paths);
    json_decref(tags);
    if (rc) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

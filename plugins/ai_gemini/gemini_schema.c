/*
 * ai_gemini: tool parameters, given as JSON Schema, rewritten into the subset of OpenAPI 3.0's
 * Schema that Gemini takes (gemini.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemini.h"

/*
 * Tool parameters arrive as JSON Schema; Gemini takes a subset of OpenAPI 3.0's Schema and
 * answers 400 to any other field. These are the fields of its Schema message; a value of one of
 * the first ones is itself a schema (or an object or list of them).
 */
static const char *const schema_fields[] = {
    "properties", "items",    "anyOf", /* schemas inside */
    "type",       "format",   "title",    "description",      "nullable",      "enum",
    "maxItems",   "minItems", "required", "minProperties",    "maxProperties", "minLength",
    "maxLength",  "pattern",  "example",  "propertyOrdering", "default",       "minimum",
    "maximum",    NULL};

/* How deep references and nesting are followed; a recursive schema is cut there. */
#define SCHEMA_MAX_DEPTH 16
/*
 * How many schema fields one tool's parameters may take to rewrite: references inline copies,
 * so a small schema whose properties each refer back to the root grows exponentially with the
 * depth. What is left when the budget runs out is cut like a recursion.
 */
#define SCHEMA_BUDGET 10000

static int schema_field(const char *k)
{
    for (int i = 0; schema_fields[i]; i++)
        if (strcmp(k, schema_fields[i]) == 0)
            return 1;
    return 0;
}

/* The target of a local reference ("#", "#/$defs/tag", JSON Pointer escapes), or NULL. */
static json_t *schema_ref(json_t *root, const char *ref)
{
    if (ref[0] != '#' || (ref[1] && ref[1] != '/'))
        return NULL; /* another document: nothing to read it from */
    json_t *at = root;
    const char *p = ref + 1;
    while (at && *p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        for (; *p && *p != '/' && n + 1 < sizeof(tok); p++)
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
                tok[n++] = *++p == '0' ? '~' : '/';
            else
                tok[n++] = *p;
        tok[n] = '\0';
        at = json_object_get(at, tok);
    }
    return *p ? NULL : at;
}

static json_t *clean_schema(json_t *s, json_t *root, int depth, long *budget);

/* allOf: every part's fields in one schema; properties and required are joined. */
static void merge_schema(json_t *out, json_t *part)
{
    const char *k;
    json_t *v;
    json_object_foreach(part, k, v)
    {
        json_t *have = json_object_get(out, k);
        if (!have) {
            json_object_set(out, k, v);
        } else if (strcmp(k, "properties") == 0 && json_is_object(have)) {
            json_object_update_missing(have, v);
        } else if (strcmp(k, "required") == 0 && json_is_array(have)) {
            json_t *joined = json_copy(have); /* `have` may be the caller's own array */
            size_t i, j;
            json_t *r, *h;
            json_array_foreach(v, i, r)
            {
                int dup = 0;
                json_array_foreach(joined, j, h) dup |= json_equal(h, r);
                if (!dup)
                    json_array_append(joined, r);
            }
            json_object_set_new(out, k, joined);
        }
    }
}

/* JSON Schema's "type": ["string", "null"] is Gemini's type "string" with nullable. */
static void clean_type(json_t *out, json_t *type)
{
    if (json_is_string(type)) {
        json_object_set(out, "type", type);
        return;
    }
    json_t *kinds = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(type, i, t)
    {
        if (!json_is_string(t))
            continue;
        if (strcmp(json_string_value(t), "null") == 0)
            json_object_set_new(out, "nullable", json_true());
        else
            json_array_append(kinds, t);
    }
    if (json_array_size(kinds) == 1) {
        json_object_set(out, "type", json_array_get(kinds, 0));
    } else if (json_array_size(kinds) > 1 && !json_object_get(out, "anyOf")) {
        json_t *any = json_array();
        json_array_foreach(kinds, i, t) json_array_append_new(any, json_pack("{s:O}", "type", t));
        json_object_set_new(out, "anyOf", any);
    }
    json_decref(kinds);
}

/*
 * A copy of a JSON Schema in the form Gemini accepts, at any depth: local $refs inlined (the
 * keys beside a $ref win), allOf merged, oneOf sent as anyOf, a type list made one type with
 * nullable, a string "const" a one-value "enum", and every other field Gemini does not know
 * dropped. The keys of "properties" are parameter names, not keywords: a parameter may well be
 * called "const". An empty "properties" is dropped (Gemini: "should be non-empty for OBJECT
 * type"), and "required" keeps only the properties there are.
 */
static json_t *clean_schema(json_t *s, json_t *root, int depth, long *budget)
{
    if (!json_is_object(s) || depth > SCHEMA_MAX_DEPTH || *budget <= 0)
        return json_object(); /* true, or a recursion cut: any value */
    *budget -= 1 + (long)json_object_size(s);
    json_t *ref = json_object_get(s, "$ref"), *target;
    if (json_is_string(ref) && (target = schema_ref(root, json_string_value(ref)))) {
        json_t *m = json_is_object(target) ? json_copy(target) : json_object();
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v)
        {
            if (strcmp(k, "$ref") != 0)
                json_object_set(m, k, v);
        }
        json_t *out = clean_schema(m, root, depth + 1, budget);
        json_decref(m);
        return out;
    }
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v)
    {
        if (strcmp(k, "properties") == 0 && json_is_object(v)) {
            if (json_object_size(v) == 0)
                continue;
            json_t *props = json_object();
            const char *name;
            json_t *sub;
            json_object_foreach(v, name, sub)
                json_object_set_new(props, name, clean_schema(sub, root, depth + 1, budget));
            json_object_set_new(out, k, props);
        } else if (strcmp(k, "items") == 0) {
            json_object_set_new(out, k, clean_schema(v, root, depth + 1, budget));
        } else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) && json_is_array(v)) {
            json_t *any = json_array();
            size_t i;
            json_t *sub;
            json_array_foreach(v, i, sub)
                json_array_append_new(any, clean_schema(sub, root, depth + 1, budget));
            json_object_set_new(out, "anyOf", any);
        } else if (strcmp(k, "type") == 0) {
            clean_type(out, v);
        } else if (strcmp(k, "const") == 0) {
            /* the constraint survives as the one-value enum Gemini understands */
            if (json_is_string(v) && !json_object_get(s, "enum"))
                json_object_set_new(out, "enum", json_pack("[O]", v));
        } else if (schema_field(k)) {
            json_object_set(out, k, v);
        }
    }
    json_t *all = json_object_get(s, "allOf");
    size_t i;
    json_array_foreach(all, i, v)
    {
        json_t *part = clean_schema(v, root, depth + 1, budget);
        merge_schema(out, part);
        json_decref(part);
    }
    json_t *req = json_object_get(out, "required");
    if (req) {
        json_t *props = json_object_get(out, "properties"), *kept = json_array(), *r;
        json_array_foreach(req, i, r)
        {
            if (json_is_string(r) && json_object_get(props, json_string_value(r)))
                json_array_append(kept, r);
        }
        if (json_array_size(kept))
            json_object_set_new(out, "required", kept);
        else {
            json_object_del(out, "required");
            json_decref(kept);
        }
    }
    return out;
}

/* tools[{functionDeclarations[...]}], one declaration per normalised tool. */
json_t *gemini_tools_wire(json_t *tools)
{
    json_t *decls = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *d = json_object();
        json_object_set(d, "name", json_object_get(t, "name"));
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc))
            json_object_set(d, "description", desc);
        long budget = SCHEMA_BUDGET;
        json_t *params = clean_schema(json_object_get(t, "parameters"),
                                      json_object_get(t, "parameters"), 0, &budget);
        /* a function without parameters has no "parameters" at all */
        if (json_is_object(params) && json_object_get(params, "properties"))
            json_object_set_new(d, "parameters", params);
        else
            json_decref(params);
        json_array_append_new(decls, d);
    }
    json_t *tool = json_object();
    json_object_set_new(tool, "functionDeclarations", decls);
    json_t *out = json_array();
    json_array_append_new(out, tool);
    return out;
}

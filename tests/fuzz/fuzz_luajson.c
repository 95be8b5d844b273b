/*
 * Fuzzes the lua plugin's JSON bridge as a script meets it: any bytes as event.payload
 * (lp_json_push into a Lua state with the plugin's memory cap), then written back as a
 * script would (lp_json_encode). What decodes must encode again, and to the same document:
 * numbers by value (Lua has one number type), everything else exactly.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "luap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Equal documents, numbers compared as Lua holds them (doubles). */
static int same(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return (double)json_number_value(a) == (double)json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !same(v, w))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

/* Keys with a NUL cannot round-trip through lua_setfield; numbers beyond 2^53 lose digits. */
static int comparable(json_t *v)
{
    if (json_is_integer(v))
        return llabs((long long)json_integer_value(v)) < (1LL << 53);
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        size_t klen;
        void *tmp;
        json_object_keylen_foreach_safe(v, tmp, k, klen, x)
        {
            if (strlen(k) != klen || !comparable(x))
                return 0;
        }
    }
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (!comparable(x)) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L; /* one state for all inputs, as a worker's serves many events */
    if (!L)
        L = luaL_newstate();
    char err[256];
    if (lp_json_push(L, (const char *)data, size, err, sizeof(err)) == 0) {
        char *out = lp_json_encode(L, -1, err, sizeof(err));
        json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!out && in && comparable(in)) {
            fprintf(stderr, "decoded but cannot be encoded again: %s\n", err);
            abort();
        }
        json_t *back = out ? json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
        if (out && !back) {
            fprintf(stderr, "encoded text that is not JSON: %s\n", out);
            abort();
        }
        if (in && back && comparable(in) && !same(in, back)) {
            fprintf(stderr, "round trip changed the document: %s\n", out);
            abort();
        }
        json_decref(in);
        json_decref(back);
        free(out);
    }
    lua_settop(L, 0);
    return 0;
}

/*
 * JSON to Lua and back, through jansson: objects are tables, arrays are sequences, null is
 * taskora.null (a light userdata), numbers are Lua numbers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "luap.h"

#define MAX_DEPTH 64
#define ARRAY_MT "taskora.json_array"

/* Decoded arrays share a metatable, so that one that is (or becomes) empty still encodes as
 * [] and not as {} (an empty Lua table is otherwise an object): tags = [] stays a list. */
static void mark_array(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, ARRAY_MT);
    }
    lua_setmetatable(L, -2);
}

/* The table at idx is empty and came from a JSON array. */
static int empty_array(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (lua_next(L, idx)) {
        lua_pop(L, 2);
        return 0;
    }
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static int push_value(lua_State *L, json_t *v, int depth)
{
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4))
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v));
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (push_value(L, x, depth + 1))
                return -1;
            lua_setfield(L, -2, k);
        }
        return 0;
    }
    case JSON_ARRAY: {
        lua_createtable(L, (int)json_array_size(v), 0);
        mark_array(L);
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (push_value(L, x, depth + 1))
                return -1;
            lua_rawseti(L, -2, (int)i + 1);
        }
        return 0;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); return 0;
    case JSON_INTEGER: lua_pushnumber(L, (lua_Number)json_integer_value(v)); return 0;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); return 0;
    case JSON_TRUE: lua_pushboolean(L, 1); return 0;
    case JSON_FALSE: lua_pushboolean(L, 0); return 0;
    default: lua_pushlightuserdata(L, NULL); return 0;
    }
}

int lp_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    int top = lua_gettop(L);
    int rc = push_value(L, v, 0);
    json_decref(v);
    if (rc) {
        lua_settop(L, top);
        snprintf(err, errlen, "JSON nested deeper than %d levels", MAX_DEPTH);
    }
    return rc;
}

/* The table at idx is a sequence 1..n with n > 0 (an array), else an object. */
static size_t array_length(lua_State *L, int idx)
{
    size_t n = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Number k = lua_tonumber(L, -1);
        if (k < 1 || k != floor(k)) {
            lua_pop(L, 1);
            return 0;
        }
        n++;
        if ((size_t)k > max)
            max = (size_t)k;
    }
    return n == max ? n : 0;
}

static json_t *encode(lua_State *L, int idx, int depth, char *err, size_t errlen);

static json_t *encode_table(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    size_t n = array_length(L, idx);
    json_t *out = n || empty_array(L, idx) ? json_array() : json_object();
    for (size_t i = 1; out && i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        json_t *x = encode(L, lua_gettop(L), depth + 1, err, errlen);
        lua_pop(L, 1);
        if (!x || json_array_append_new(out, x)) {
            json_decref(out);
            return NULL;
        }
    }
    if (n || !out || json_is_array(out))
        return out;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char key[64];
        const char *k = NULL;
        if (lua_type(L, -2) == LUA_TSTRING) {
            k = lua_tostring(L, -2);
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
            snprintf(key, sizeof(key), "%.17g", lua_tonumber(L, -2));
            k = key;
        }
        json_t *x = k ? encode(L, lua_gettop(L), depth + 1, err, errlen) : NULL;
        if (!k)
            snprintf(err, errlen, "a JSON object's keys are strings or numbers");
        if (!x || json_object_set_new(out, k, x)) {
            lua_pop(L, 2);
            json_decref(out);
            return NULL;
        }
        lua_pop(L, 1);
    }
    return out;
}

static json_t *encode(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4)) {
        snprintf(err, errlen, "nested deeper than %d levels (a table that contains itself?)",
                 MAX_DEPTH);
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        lua_Number v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
            snprintf(err, errlen, "JSON has no NaN or infinity");
            return NULL;
        }
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            return json_integer((json_int_t)v);
        return json_real(v);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json_t *x = json_stringn(s, len);
        if (!x)
            snprintf(err, errlen, "a string that is not UTF-8 cannot be JSON");
        return x;
    }
    case LUA_TTABLE: return encode_table(L, idx, depth, err, errlen);
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return json_null();
        /* fall through */
    default: snprintf(err, errlen, "a %s cannot be JSON", luaL_typename(L, idx)); return NULL;
    }
}

char *lp_json_encode(lua_State *L, int idx, char *err, size_t errlen)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    json_t *v = encode(L, idx, 0, err, errlen);
    if (!v)
        return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

int lp_json_encode_fn(lua_State *L)
{
    luaL_checkany(L, 1);
    char err[256];
    char *s = lp_json_encode(L, 1, err, sizeof(err));
    if (!s)
        return luaL_error(L, "taskora.json.encode: %s", err);
    lua_pushstring(L, s);
    free(s);
    return 1;
}

int lp_json_decode_fn(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[256];
    if (lp_json_push(L, s, len, err, sizeof(err)))
        return luaL_error(L, "taskora.json.decode: %s", err);
    return 1;
}

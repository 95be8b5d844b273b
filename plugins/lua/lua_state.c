/*
 * A script's Lua state: LuaJIT with the compiler off (compiled loops never see a hook, so a
 * budget could not stop them), memory counted against the instance's cap, a sandbox table as
 * the script's globals, and a count hook that enforces the per-call budgets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>

#include "luap.h"

#define HOOK_EVERY 1000 /* instructions between two budget checks */

int64_t lp_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int lp_read_script(const char *path, char **text, size_t *len, struct stat *st, char *err,
                   size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the script: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), st) != 0 || !S_ISREG(st->st_mode) || st->st_size > 16 * 1024 * 1024) {
        snprintf(err, errlen, "%s: not a regular file of at most 16 MiB", path);
        fclose(f);
        return -1;
    }
    char *buf = malloc((size_t)st->st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st->st_size, f) : 0;
    fclose(f);
    if (!buf || n != (size_t)st->st_size) {
        snprintf(err, errlen, "%s: cannot read the script%s", path, buf ? "" : ": out of memory");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The allocator: every state of the instance draws on one cap (config memory_mb). */
static void *lp_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lp_instance *li = ud;
    if (nsize == 0) {
        free(ptr);
        atomic_fetch_sub(&li->used, (long long)osize);
        return NULL;
    }
    long long grow = (long long)nsize - (long long)(ptr ? osize : 0);
    if (grow > 0 && atomic_fetch_add(&li->used, grow) + grow > li->memory_bytes) {
        atomic_fetch_sub(&li->used, grow);
        return NULL; /* Lua raises "not enough memory" */
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (grow > 0)
            atomic_fetch_sub(&li->used, grow);
        return NULL;
    }
    if (grow < 0)
        atomic_fetch_add(&li->used, grow);
    return p;
}

/* Stops the script when it used its budget; keeps stopping it if it catches the error. */
static void lp_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, "taskora.state");
    lp_state *st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!st)
        return;
    st->ins += HOOK_EVERY;
    if (!st->aborted) {
        if (st->ins > st->li->budget_ins)
            snprintf(st->abort_msg, sizeof(st->abort_msg), "instruction budget of %lld exceeded",
                     (long long)st->li->budget_ins);
        else if (lp_now_ns() > st->deadline_ns)
            snprintf(st->abort_msg, sizeof(st->abort_msg), "time budget of %lld ms exceeded",
                     (long long)st->li->budget_ms);
        else
            return;
        st->aborted = 1;
        /* where it was stopped, kept for the rethrows of a script that catches the error */
        luaL_where(L, 0); /* in a hook, level 0 is the function it interrupted */
        char msg[sizeof(st->abort_msg)];
        snprintf(msg, sizeof(msg), "%s%s", lua_tostring(L, -1), st->abort_msg);
        lua_pop(L, 1);
        memcpy(st->abort_msg, msg, sizeof(msg));
    }
    lua_pushstring(L, st->abort_msg);
    lua_error(L);
}

/* Names a script may not touch: reading one is an error naming it, with file and line. */
static const char *const forbidden[] = {
    "io",      "debug",   "package", "require",        "dofile",   "loadfile", "ffi",        "jit",
    "getfenv", "setfenv", "module",  "collectgarbage", "newproxy", "gcinfo",   "os.execute", NULL,
};

static int forbidden_index(lua_State *L)
{
    const char *prefix = lua_tostring(L, lua_upvalueindex(1));
    const char *k = lua_tostring(L, 2);
    if (!k)
        return 0;
    char full[128];
    snprintf(full, sizeof(full), "%s%s", prefix ? prefix : "", k);
    int bad = prefix && *prefix; /* os.<anything but time/date/clock> */
    for (size_t i = 0; !bad && forbidden[i]; i++)
        bad = strcmp(forbidden[i], full) == 0;
    if (!bad)
        return 0;
    return luaL_error(L, "forbidden: %s is not available to scripts", full);
}

/* Sets a metatable on the table at the top: unknown forbidden names raise; it cannot be
 * replaced (__metatable). prefix: "" for the globals, "os." for os. */
static void guard_table(lua_State *L, const char *prefix)
{
    lua_newtable(L);
    lua_pushstring(L, prefix);
    lua_pushcclosure(L, forbidden_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

static int forbidden_dump(lua_State *L)
{
    return luaL_error(L, "forbidden: string.dump is not available to scripts");
}

/* pcall / xpcall / coroutine.resume that cannot swallow the budget's error. */
static int safe_pcall(lua_State *L)
{
    lp_state *st = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    lp_check_abort(L, st);
    lua_pushboolean(L, status == 0);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int safe_xpcall(lua_State *L)
{
    lp_state *st = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_insert(L, 1); /* handler, f */
    int status = lua_pcall(L, 0, LUA_MULTRET, 1);
    lp_check_abort(L, st);
    lua_remove(L, 1);
    lua_pushboolean(L, status == 0);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int safe_resume(lua_State *L)
{
    lp_state *st = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2)); /* the real coroutine.resume */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    lp_check_abort(L, st);
    return lua_gettop(L);
}

/* load / loadstring: text only, in the sandbox. */
static int safe_load(lua_State *L)
{
    size_t len = 0;
    const char *s = lua_tolstring(L, 1, &len);
    if (!s)
        return luaL_error(L, "load: only a string of Lua text can be loaded");
    const char *name = luaL_optstring(L, 2, "=(load)");
    if (luaL_loadbufferx(L, s, len, name, "t") != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the sandbox */
    lua_setfenv(L, -2);
    return 1;
}

/* print(...): one info line of the instance's log. */
static int lp_print(lua_State *L)
{
    lp_state *st = lua_touserdata(L, lua_upvalueindex(1));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    lua_getglobal(L, "tostring");
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    st->li->host->log(st->li->inst, TK_LOG_INFO, "%s", lua_tostring(L, -1));
    return 0;
}

/* Copies the listed fields of the table at src (not the top) into the table at the top. */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
    if (src < 0)
        src = lua_gettop(L) + src + 1;
    for (size_t i = 0; names[i]; i++) {
        lua_getfield(L, src, names[i]);
        lua_setfield(L, -2, names[i]);
    }
}

static void copy_lib(lua_State *L, const char *lib, const char *const *skip)
{
    lua_newtable(L);
    lua_getglobal(L, lib);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        int skipped = 0;
        for (size_t i = 0; skip && skip[i] && lua_type(L, -2) == LUA_TSTRING; i++)
            skipped |= strcmp(lua_tostring(L, -2), skip[i]) == 0;
        if (!skipped) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Builds the sandbox (the script's globals) and leaves it on the stack. */
static void push_sandbox(lp_state *st)
{
    lua_State *L = st->L;
    static const char *const base[] = {
        "assert",   "error",        "ipairs",       "next",     "pairs",    "select",
        "tonumber", "tostring",     "type",         "unpack",   "rawequal", "rawget",
        "rawset",   "setmetatable", "getmetatable", "_VERSION", NULL};
    lua_newtable(L);
    int env = lua_gettop(L);
    for (size_t i = 0; base[i]; i++) {
        lua_getglobal(L, base[i]);
        lua_setfield(L, env, base[i]);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    static const char *const no_dump[] = {"dump", NULL};
    copy_lib(L, "string", no_dump);
    lua_setfield(L, env, "string");
    copy_lib(L, "table", NULL);
    lua_setfield(L, env, "table");
    copy_lib(L, "math", NULL);
    lua_setfield(L, env, "math");
    copy_lib(L, "bit", NULL);
    lua_setfield(L, env, "bit");
    copy_lib(L, "coroutine", NULL);
    lua_pushlightuserdata(L, st);
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "resume");
    lua_remove(L, -2);
    lua_pushcclosure(L, safe_resume, 2);
    lua_setfield(L, -2, "resume");
    lua_setfield(L, env, "coroutine");
    lua_getglobal(L, "os");
    lua_newtable(L); /* os: the clock only */
    static const char *const os_ok[] = {"time", "date", "clock", NULL};
    copy_fields(L, -2, os_ok);
    lua_remove(L, -2);
    guard_table(L, "os.");
    lua_setfield(L, env, "os");
    lua_pushlightuserdata(L, st);
    lua_pushcclosure(L, safe_pcall, 1);
    lua_setfield(L, env, "pcall");
    lua_pushlightuserdata(L, st);
    lua_pushcclosure(L, safe_xpcall, 1);
    lua_setfield(L, env, "xpcall");
    lua_pushlightuserdata(L, st);
    lua_pushcclosure(L, lp_print, 1);
    lua_setfield(L, env, "print");
    lua_pushvalue(L, env);
    lua_pushcclosure(L, safe_load, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, env, "load");
    lua_setfield(L, env, "loadstring");
    lp_push_api(st);
    lua_setfield(L, env, "taskora");
    guard_table(L, "");
}

/* The libraries the sandbox copies from; no io, os beyond the clock, package, debug, ffi, jit. */
static int open_libs(lua_State *L)
{
    static const lua_CFunction libs[] = {luaopen_base, luaopen_string, luaopen_table,
                                         luaopen_math, luaopen_bit,    luaopen_os};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        lua_pushcfunction(L, libs[i]);
        lua_call(L, 0, 0);
    }
    /* strings' metatable reaches the real string table: no dump there either */
    lua_getglobal(L, "string");
    lua_pushcfunction(L, forbidden_dump);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    return 0;
}

typedef struct load_args {
    lp_state *st;
    const char *src;
    size_t len;
} load_args;

/* In protected mode: libraries, sandbox, the script's chunk run in it, handle() found. */
static int load_script(lua_State *L)
{
    load_args *a = lua_touserdata(L, 1);
    lp_state *st = a->st;
    open_libs(L);
    lua_pushlightuserdata(L, st);
    lua_setfield(L, LUA_REGISTRYINDEX, "taskora.state");
    push_sandbox(st);
    int env = lua_gettop(L);
    char chunkname[PATH_MAX + 2];
    snprintf(chunkname, sizeof(chunkname), "@%s", st->li->path);
    if (luaL_loadbufferx(L, a->src, a->len, chunkname, "t") != 0)
        return lua_error(L);
    lua_pushvalue(L, env);
    lua_setfenv(L, -2);
    lua_call(L, 0, 0);
    lp_check_abort(L, st);
    lua_getfield(L, env, "handle");
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "%s: the script defines no function handle(event)", st->li->path);
    st->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, env);
    lua_setfield(L, LUA_REGISTRYINDEX, "taskora.sandbox");
    return 0;
}

lp_state *lp_state_new(lp_instance *li, lp_mode mode, const char *src, size_t len, char *err,
                       size_t errlen)
{
    lp_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->li = li;
    st->mode = mode;
    st->handle_ref = LUA_NOREF;
    st->L = lua_newstate(lp_alloc, li);
    if (!st->L) {
        snprintf(err, errlen, "%s: cannot create a Lua state (memory_mb is %lld)", li->path,
                 (long long)(li->memory_bytes >> 20));
        free(st);
        return NULL;
    }
    luaJIT_setmode(st->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_sethook(st->L, lp_hook, LUA_MASKCOUNT, HOOK_EVERY);
    st->deadline_ns = lp_now_ns() + li->budget_ms * 1000000;
    load_args a = {st, src, len};
    if (lua_cpcall(st->L, load_script, &a) != 0) {
        const char *m = lua_tostring(st->L, -1);
        snprintf(err, errlen, "%s", m ? m : "the script failed to load");
        lp_state_free(st);
        return NULL;
    }
    lua_settop(st->L, 0);
    return st;
}

void lp_state_free(lp_state *st)
{
    if (!st)
        return;
    if (st->pg)
        st->li->host->pg_release(st->pg);
    if (st->L)
        lua_close(st->L);
    free(st);
}

int lp_call(lp_state *st, int nargs, int nresults)
{
    st->ins = 0;
    st->aborted = 0;
    st->abort_msg[0] = '\0';
    st->deadline_ns = lp_now_ns() + st->li->budget_ms * 1000000;
    return lua_pcall(st->L, nargs, nresults, 0);
}

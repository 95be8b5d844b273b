/*
 * The lua plugin type: an instance is a consumer written as a Lua script. Each worker thread
 * has its own Lua state (no lock on the way to handle()); a reload (SIGHUP, or the file
 * changing) publishes the new text and each thread picks it up before its next event.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "luap.h"

/* Reads the config into li (no state, no thread): what check, migrations and init share. */
static int configure(lp_instance *li, const tk_host *host, tk_instance *inst, char *err,
                     size_t errlen)
{
    li->host = host;
    li->inst = inst;
    const char *script = host->config_string(inst, "script");
    const char *cfg = host->struct_size >= offsetof(tk_host, config_file) + sizeof(void *)
                          ? host->config_file(inst)
                          : "";
    if (!script || !*script) {
        snprintf(err, errlen, "config.script: the script's path is required");
        return TK_EINVAL;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", cfg && *cfg ? cfg : ".");
    const char *base = cfg && *cfg ? dirname(dir) : ".";
    if ((size_t)snprintf(li->path, sizeof(li->path), "%s%s%s", script[0] == '/' ? "" : base,
                         script[0] == '/' ? "" : "/", script) >= sizeof(li->path)) {
        snprintf(err, errlen, "config.script: the path is too long");
        return TK_EINVAL;
    }
    li->budget_ms = host->config_int(inst, "budget_ms");
    li->budget_ins = host->config_int(inst, "budget_instructions");
    li->memory_bytes = host->config_int(inst, "memory_mb") << 20;
    li->watch = host->config_bool(inst, "watch");
    const char *target = host->config_string(inst, "http_target");
    snprintf(li->target, sizeof(li->target), "%s%s", target && *target ? "" : "lua.",
             target && *target ? target : host->instance_name(inst));
    li->settings_json = host->config_json(inst, "settings");
    return TK_OK;
}

/* A state of the script as it is on disk, made for checking (or init); closed by the caller. */
static lp_state *state_from_file(lp_instance *li, lp_mode mode, char *err, size_t errlen)
{
    char *src = NULL;
    size_t len = 0;
    if (lp_read_script(li->path, &src, &len, &li->st, err, errlen))
        return NULL;
    lp_state *st = lp_state_new(li, mode, src, len, err, errlen);
    if (st && mode == LP_INIT) {
        li->source = src;
        li->source_len = len;
    } else {
        free(src);
    }
    return st;
}

static int check(const tk_host *host, tk_instance *inst, char *err, size_t errlen)
{
    lp_instance li = {0};
    int rc = configure(&li, host, inst, err, errlen);
    lp_state *st = rc ? NULL : state_from_file(&li, LP_CHECK, err, errlen);
    lp_state_free(st);
    host->free(li.settings_json);
    return rc ? rc : st ? TK_OK : TK_EINVAL;
}

/* The list migrations() returns (on the stack top) as malloc'd strings. */
static int copy_steps(lua_State *L, char ***steps, const char *path, char *err, size_t errlen)
{
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: migrations() must return a list of SQL strings", path);
        return TK_EINVAL;
    }
    size_t n = lua_objlen(L, -1);
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out && i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        const char *sql = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        out[i] = sql ? strdup(sql) : NULL;
        lua_pop(L, 1);
        if (!out[i]) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            snprintf(err, errlen, "%s: migrations() step %zu is not a string", path, i + 1);
            return TK_EINVAL;
        }
    }
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    *steps = out;
    return TK_OK;
}

static int instance_migrations(const tk_host *host, tk_instance *inst, char ***steps, char *err,
                               size_t errlen)
{
    *steps = NULL;
    lp_instance li = {0};
    int rc = configure(&li, host, inst, err, errlen);
    lp_state *st = rc ? NULL : state_from_file(&li, LP_CHECK, err, errlen);
    if (!rc && !st)
        rc = TK_EINVAL;
    if (st) {
        lua_State *L = st->L;
        lua_getfield(L, LUA_REGISTRYINDEX, "taskora.sandbox");
        lua_getfield(L, -1, "migrations");
        if (lua_isfunction(L, -1)) {
            if (lp_call(st, 0, 1) != 0) {
                snprintf(err, errlen, "%s", lua_tostring(L, -1));
                rc = TK_EINVAL;
            } else {
                rc = copy_steps(L, steps, li.path, err, errlen);
            }
        }
    }
    lp_state_free(st);
    host->free(li.settings_json);
    return rc;
}

/* Reads and checks the file; on success it is what threads load next. 0 or -1 (logged). */
static int reload(lp_instance *li, const char *why)
{
    char *src = NULL, err[1024];
    size_t len = 0;
    struct stat sb;
    lp_state *st = NULL;
    int seen = lp_read_script(li->path, &src, &len, &sb, err, sizeof(err)) == 0;
    if (seen)
        st = lp_state_new(li, LP_VALIDATE, src, len, err, sizeof(err));
    else
        seen = stat(li->path, &sb) == 0;
    pthread_mutex_lock(&li->lock);
    if (seen)
        li->st = sb; /* a file that fails is not read again until it changes again */
    if (st) {
        free(li->source);
        li->source = src;
        li->source_len = len;
        atomic_fetch_add(&li->generation, 1);
    }
    pthread_mutex_unlock(&li->lock);
    if (!st) {
        free(src);
        li->host->log_kv(li->inst, TK_LOG_ERROR, "reload failed; the script loaded before goes on",
                         "reason", why, "error", err, NULL);
        return -1;
    }
    lp_state_free(st);
    li->host->log_kv(li->inst, TK_LOG_INFO, "script reloaded", "reason", why, "script", li->path,
                     NULL);
    return 0;
}

static void on_sighup(void *state) { reload(state, "SIGHUP"); }

/* Polls the file once a second (a ConfigMap's swap shows as a new inode). */
static void *watch_main(void *arg)
{
    lp_instance *li = arg;
    pthread_mutex_lock(&li->wlock);
    while (!li->stopping) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&li->wcond, &li->wlock, &t);
        if (li->stopping)
            break;
        pthread_mutex_unlock(&li->wlock);
        struct stat sb;
        int changed = 0;
        if (stat(li->path, &sb) == 0) {
            pthread_mutex_lock(&li->lock);
            changed = sb.st_mtim.tv_sec != li->st.st_mtim.tv_sec ||
                      sb.st_mtim.tv_nsec != li->st.st_mtim.tv_nsec ||
                      sb.st_size != li->st.st_size || sb.st_ino != li->st.st_ino;
            pthread_mutex_unlock(&li->lock);
        }
        if (changed)
            reload(li, "the script file changed");
        pthread_mutex_lock(&li->wlock);
    }
    pthread_mutex_unlock(&li->wlock);
    return NULL;
}

/* ---- events ------------------------------------------------------------- */

/* Takes st out of the instance's list and frees it. */
static void forget_state(lp_instance *li, lp_state *st)
{
    pthread_mutex_lock(&li->lock);
    for (lp_state **p = &li->states; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    pthread_mutex_unlock(&li->lock);
    lp_state_free(st);
}

/* This thread's state, (re)made from the current script when there is none or a newer one. */
static lp_state *thread_state(lp_instance *li)
{
    lp_state *st = pthread_getspecific(li->key);
    unsigned gen = atomic_load(&li->generation);
    if (st && st->generation == gen && !st->dirty)
        return st;
    if (st && st->dirty) {
        /* stopped in the middle or holding much memory: of no use, and in the new one's way */
        forget_state(li, st);
        st = NULL;
        pthread_setspecific(li->key, NULL);
    }
    pthread_mutex_lock(&li->lock);
    gen = atomic_load(&li->generation);
    char *src = li->source ? malloc(li->source_len + 1) : NULL;
    size_t len = li->source_len;
    if (src)
        memcpy(src, li->source, len + 1);
    pthread_mutex_unlock(&li->lock);
    char err[1024] = "out of memory";
    lp_state *fresh = src ? lp_state_new(li, LP_RUN, src, len, err, sizeof(err)) : NULL;
    free(src);
    if (!fresh) {
        li->host->log_kv(li->inst, TK_LOG_ERROR, "cannot load the script on this thread", "error",
                         err, NULL);
        return st; /* the one loaded before, if any, goes on */
    }
    fresh->generation = gen;
    pthread_mutex_lock(&li->lock);
    fresh->next = li->states;
    li->states = fresh;
    pthread_mutex_unlock(&li->lock);
    if (st)
        forget_state(li, st);
    pthread_setspecific(li->key, fresh);
    return fresh;
}

/* What handle() answered (the value on the stack top) as a consume result. */
static tk_consume_result result_of(lua_State *L, char *err, size_t errlen)
{
    if (lua_isnil(L, -1))
        return TK_CONSUME_OK;
    const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (r && strcmp(r, "ok") == 0)
        return TK_CONSUME_OK;
    if (r && strcmp(r, "retry") == 0) {
        snprintf(err, errlen, "handle returned \"retry\"");
        return TK_CONSUME_RETRY;
    }
    if (r && strcmp(r, "fail") == 0) {
        snprintf(err, errlen, "handle returned \"fail\"");
        return TK_CONSUME_FAIL;
    }
    snprintf(err, errlen, "handle returned %s%s%s; expected \"ok\", \"retry\", \"fail\" or nothing",
             r ? "\"" : "a ", r ? r : luaL_typename(L, -1), r ? "\"" : "");
    return TK_CONSUME_RETRY;
}

static tk_consume_result consume(void *state, const tk_event *ev)
{
    lp_instance *li = state;
    lp_state *st = thread_state(li);
    if (!st) {
        li->host->consume_reason(li->inst, "the script cannot be loaded (see the log)");
        return TK_CONSUME_RETRY;
    }
    lua_State *L = st->L;
    st->ev = ev;
    st->seq++;
    st->duplicate = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->handle_ref);
    lp_push_event(st);
    char err[512] = "";
    tk_consume_result r;
    if (lp_call(st, 1, 1) != 0) {
        snprintf(err, sizeof(err), "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        r = st->duplicate ? TK_CONSUME_OK : TK_CONSUME_RETRY;
    } else {
        r = result_of(L, err, sizeof(err));
    }
    if (lp_tx_end(st, r == TK_CONSUME_OK && !st->duplicate, err, sizeof(err)) != 0)
        r = TK_CONSUME_RETRY;
    lua_settop(L, 0);
    st->ev = NULL;
    if (st->duplicate)
        li->host->log(li->inst, TK_LOG_DEBUG, "%s", err);
    else if (r != TK_CONSUME_OK)
        li->host->consume_reason(li->inst, err);
    if (r != TK_CONSUME_OK)
        li->host->log_kv(li->inst, TK_LOG_WARN, "handle did not finish the event", "event",
                         ev->id ? ev->id : "", "error", err, NULL);
    /* stopped in the middle, or holding over half the cap: the next event gets a new one */
    st->dirty = st->aborted || lua_gc(L, LUA_GCCOUNT, 0) > (int)(li->memory_bytes >> 11);
    return r;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void destroy(void *state)
{
    lp_instance *li = state;
    for (lp_state *st = li->states, *next; st; st = next) {
        next = st->next;
        lp_state_free(st);
    }
    if (li->key_made)
        pthread_key_delete(li->key);
    pthread_mutex_destroy(&li->lock);
    pthread_mutex_destroy(&li->wlock);
    pthread_cond_destroy(&li->wcond);
    li->host->free(li->settings_json);
    free(li->source);
    curl_global_cleanup();
    free(li);
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    if (host->struct_size < offsetof(tk_host, consume_reason) + sizeof(void *))
        return TK_ESTATE; /* needs a 1.9 host (the loader refuses older ones anyway) */
    lp_instance *li = calloc(1, sizeof(*li));
    if (!li)
        return TK_ENOMEM;
    pthread_mutex_init(&li->lock, NULL);
    pthread_mutex_init(&li->wlock, NULL);
    pthread_cond_init(&li->wcond, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[1024];
    int rc = configure(li, host, inst, err, sizeof(err));
    lp_state *st = rc ? NULL : state_from_file(li, LP_INIT, err, sizeof(err));
    if (!rc && !st)
        rc = TK_EINVAL;
    if (!rc && pthread_key_create(&li->key, NULL) != 0)
        rc = TK_ENOMEM;
    li->key_made = rc == 0;
    lp_state_free(st);
    if (rc) {
        host->log(inst, TK_LOG_ERROR, "%s", err);
        destroy(li);
        return rc;
    }
    host->log_kv(inst, TK_LOG_INFO, "script loaded", "script", li->path, NULL);
    *state = li;
    return TK_OK;
}

static int start(void *state)
{
    lp_instance *li = state;
    if (li->watch && pthread_create(&li->watcher, NULL, watch_main, li) == 0)
        li->watching = 1;
    return TK_OK;
}

static void stop(void *state)
{
    lp_instance *li = state;
    if (!li->watching)
        return;
    pthread_mutex_lock(&li->wlock);
    li->stopping = 1;
    pthread_cond_signal(&li->wcond);
    pthread_mutex_unlock(&li->wlock);
    pthread_join(li->watcher, NULL);
    li->watching = 0;
}

static const tk_config_field config[] = {
    {"script", TK_CFG_STRING, 1, NULL, NULL, "the Lua script, relative to the config file's folder",
     NULL, TK_CFG_NO_RANGE},
    {"budget_ms", TK_CFG_INT, 0, "5000", NULL, "time one handle(event) call may take", NULL,
     TK_CFG_RANGE(1, 3600000)},
    {"budget_instructions", TK_CFG_INT, 0, "100000000", NULL,
     "Lua VM instructions one handle(event) call may run", NULL, TK_CFG_RANGE(1000, 1e15)},
    {"memory_mb", TK_CFG_INT, 0, "64", NULL, "memory of the instance's Lua states together", NULL,
     TK_CFG_RANGE(1, 65536)},
    {"watch", TK_CFG_BOOL, 0, "true", NULL, "reload when the script file changes", NULL,
     TK_CFG_NO_RANGE},
    {"http_target", TK_CFG_STRING, 0, "\"\"", NULL,
     "resiliency target of taskora.http (default lua.<instance>)", NULL, TK_CFG_NO_RANGE},
    {"settings", TK_CFG_JSON, 0, "{}", NULL, "handed to the script as taskora.settings", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "lua",
    .version = "1.0.0",
    .description = "a consumer written as a Lua script (sandboxed, budgeted, reloadable)",
    .config = config,
    .init = init,
    .start = start,
    .stop = stop,
    .destroy = destroy,
    .consume = consume,
    .check = check,
    .instance_migrations = instance_migrations,
    .reload = on_sighup,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }

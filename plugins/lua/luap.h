/*
 * The lua plugin: consumers written as Lua scripts (LuaJIT, interpreter only), run in a
 * sandbox with per-event budgets, one Lua state per worker thread, reloaded between events.
 */
#ifndef TASKORA_LUAP_H
#define TASKORA_LUAP_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <lua.h>

#include <taskora/plugin.h>

#define LP_MAX_COUNTERS 32
#define LP_MAX_LABELS 8

/* A counter a script registered (taskora.metrics.counter) when the instance started. */
typedef struct lp_counter {
    char name[128];
    tk_metric *m;
    size_t nlabels;
    char labels[LP_MAX_LABELS][64];
} lp_counter;

/* What a state is made for: checking, registering counters (init), or handling events. */
typedef enum lp_mode { LP_CHECK, LP_INIT, LP_VALIDATE, LP_RUN } lp_mode;

typedef struct lp_state lp_state;

/* One configured instance. */
typedef struct lp_instance {
    const tk_host *host;
    tk_instance *inst;
    char path[PATH_MAX]; /* the script, resolved against the config file's folder */
    int64_t budget_ms, budget_ins, memory_bytes;
    int watch;
    char target[256];    /* resiliency target of taskora.http */
    char *settings_json; /* config "settings", compact JSON (host->free) */

    pthread_mutex_t lock; /* source, stat, states, counters */
    char *source;         /* the script in use */
    size_t source_len;
    struct stat st;         /* the file as last read */
    atomic_uint generation; /* bumped by each successful reload */
    atomic_llong used;      /* bytes held by the instance's Lua states */
    pthread_key_t key;      /* this thread's lp_state */
    int key_made;
    lp_state *states; /* every state, for destroy */
    lp_counter counters[LP_MAX_COUNTERS];
    size_t ncounters;

    pthread_t watcher; /* polls the file once a second (watch) */
    int watching;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    int stopping;
} lp_instance;

/* A Lua state and the event it is handling. */
struct lp_state {
    lp_instance *li;
    lp_mode mode;
    lua_State *L;
    unsigned generation;
    int handle_ref; /* registry ref of handle() */
    lp_state *next;
    /* the event being handled (LP_RUN) */
    const tk_event *ev;
    unsigned seq;        /* counts events; an event table answers only during its own */
    int64_t deadline_ns; /* monotonic */
    int64_t ins;         /* instructions counted by the hook */
    char abort_msg[256]; /* set: stop handle(), whatever pcall says */
    int aborted, duplicate;
    int dirty; /* replaced before the next event */
    tk_pg *pg; /* the event's transaction, opened by the first db call or emit */
};

/* ---- lua_state.c ---- */
/* Reads the script file (malloc'd text) and its stat. 0, or -1 with err. */
int lp_read_script(const char *path, char **text, size_t *len, struct stat *st, char *err,
                   size_t errlen);
/* A sandboxed state with the script loaded and handle() found. NULL with err ("file:line: ..."). */
lp_state *lp_state_new(lp_instance *li, lp_mode mode, const char *src, size_t len, char *err,
                       size_t errlen);
void lp_state_free(lp_state *st);
/* Calls fn (on the stack top, with nargs above it) under the budget: lua_pcall's result. */
int lp_call(lp_state *st, int nargs, int nresults);
/* The monotonic clock in ns. */
int64_t lp_now_ns(void);

/* ---- lua_api.c ---- */
/* Puts the `taskora` table on the stack (for the sandbox). */
void lp_push_api(lp_state *st);
/* Pushes the event table for st->ev. */
void lp_push_event(lp_state *st);
/* Ends the event's transaction: commit (commit != 0) or roll back. 0, or -1 with err. */
int lp_tx_end(lp_state *st, int commit, char *err, size_t errlen);
/* Raises the budget error when the state is aborted (after a caught error). */
void lp_check_abort(lua_State *L, lp_state *st);

/* ---- lua_json.c ---- */
/* Pushes JSON text as a Lua value (null -> taskora.null). 0, or -1 with err. */
int lp_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen);
/* The Lua value at idx as compact JSON (malloc'd), or NULL with err. */
char *lp_json_encode(lua_State *L, int idx, char *err, size_t errlen);
/* taskora.json.encode / decode */
int lp_json_encode_fn(lua_State *L);
int lp_json_decode_fn(lua_State *L);

/* ---- lua_http.c ---- */
int lp_http_request(lua_State *L); /* taskora.http.request{...}; upvalue 1: the lp_state */

#endif
